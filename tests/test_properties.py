"""Property-based: whatever a caller or Kustomer hands the public calls, the protocol holds.

Hypothesis drives one conversation through random sequences of every public entry point
(start_assistant, receive, dispatch, sync, send_message, choose, visit_article,
end_assistant, flush) with valid, odd and hostile input: lone surrogates, bytes, huge numbers,
deep nesting, repeated and reordered assistant messages. After every call:

* it returned, or raised an AssistantFlowError (any other exception fails the test);
* after an error nothing was sent and the stored record is unchanged;
* after a success every message sent obeys the protocol for the state the conversation was in:
  ``isInAssistantMode`` as the state says, ``initAssistantPayload`` exactly when one was owed,
  ``lastDeflection`` exactly when a deflection was pending, a choice's ``payload`` among the
  values on offer; and it encodes as UTF-8 JSON, and the record reads back from its JSON.

The same machine runs over Flow and over AsyncFlow.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from payloads import greeting, init_response, quick_replies

from assistant_flow import (
    KUSTOMER_EVENTS,
    AssistantFlowError,
    AsyncFlow,
    ConversationRecord,
    Flow,
    MemoryStore,
    MemoryTransport,
)

CONVERSATION = "conv_1"

# Text as callers and servers hand it over: mostly ordinary, sometimes not encodable.
surrogates = st.text(
    alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=2
)
texts = st.one_of(st.text(max_size=12), st.sampled_from(["Billing", "billing", "Yes", "y"]))
hostile_texts = st.one_of(texts, surrogates, st.text(max_size=3).map(lambda t: t + "\udc80"))

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_texts,
    st.binary(max_size=3),
)
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.one_of(texts, st.integers(0, 3)), children, max_size=3)
    ),
    max_leaves=12,
)


def deep(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


buttons = st.lists(st.tuples(hostile_texts, hostile_texts), min_size=1, max_size=3).map(
    lambda labels: quick_replies("Pick", *labels)
)
tree_nodes = st.lists(
    st.fixed_dictionaries(
        {"id": hostile_texts, "displayName": hostile_texts, "children": st.just([])}
    ),
    min_size=1,
    max_size=3,
)
templates = st.one_of(
    buttons,
    tree_nodes.map(
        lambda nodes: {"templateType": "mll", "body": "?", "actions": {"tree": {"children": nodes}}}
    ),
    st.lists(st.fixed_dictionaries({"displayText": texts, "value": texts}), max_size=3).map(
        lambda items: {"templateType": "list", "body": "Pick", "actions": items}
    ),
    st.just({"templateType": "text", "body": "Hello"}),
    st.dictionaries(texts, json_values, max_size=3),
    st.just({"templateType": "text", "deep": deep(300)}),
    json_values,
)
articles = st.lists(
    st.one_of(
        st.fixed_dictionaries({"id": st.sampled_from(["art_1", "art_2"]), "title": texts}),
        st.fixed_dictionaries({"articleId": st.sampled_from(["art_3"]), "webLink": texts}),
        st.dictionaries(texts, json_values, max_size=2),
    ),
    max_size=2,
)
created = st.one_of(
    st.none(),
    st.sampled_from(
        [f"2026-11-25T10:00:0{second}.000Z" for second in range(4)] + ["yesterday", ""]
    ),
)


@st.composite
def assistant_messages(draw: st.DrawFn) -> Any:
    message: dict[str, Any] = {"conversationId": CONVERSATION, "direction": "out"}
    if draw(st.booleans()):
        message["messageId"] = draw(st.sampled_from(["m_1", "m_2", "m_3", "m_4"]))
    if (at := draw(created)) is not None:
        message["createdAt"] = at
    meta: dict[str, Any] = {}
    if draw(st.booleans()):
        meta["template"] = draw(templates)
    if draw(st.booleans()):
        meta["articles"] = draw(articles)
    message["meta"] = meta
    if draw(st.integers(0, 9)) == 0:  # sometimes anything at all
        return draw(json_values)
    return message


init_responses = st.one_of(
    st.builds(lambda t: init_response(greeting(t)), templates),
    st.just(init_response()),
    st.dictionaries(texts, json_values, max_size=4),
    st.builds(
        lambda lang: init_response(greeting({"templateType": "text"}, lang=lang)), hostile_texts
    ),
)


class Driver:
    """Calls a handle method, sync or async, the same way."""

    def __init__(self, asynchronous: bool) -> None:
        self.transport = MemoryTransport()
        store = MemoryStore()
        self.flow: Flow | AsyncFlow
        self.loop = asyncio.new_event_loop() if asynchronous else None
        self.flow = (
            AsyncFlow(self.transport, store) if asynchronous else Flow(self.transport, store)
        )

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "dispatch":
            method: Callable[..., Any] = self.flow.dispatch
        else:
            method = getattr(self.flow.conversation(CONVERSATION), name)
        result = method(*args, **kwargs)
        if self.loop is not None:
            awaited: Awaitable[Any] = result
            return self.loop.run_until_complete(awaited)
        return result

    def snapshot(self) -> ConversationRecord:
        return self.call("snapshot")  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.loop is not None:
            self.loop.close()


class Protocol(RuleBasedStateMachine):
    asynchronous = False

    def __init__(self) -> None:
        super().__init__()
        self.driver = Driver(self.asynchronous)
        self.payloads_owed = 0  # successful start_assistant calls

    def teardown(self) -> None:
        self.driver.close()

    def attempt(self, name: str, *args: Any, choosing: bool = False, **kwargs: Any) -> None:
        before = self.driver.snapshot()
        sent_before = len(self.driver.transport.sent)
        try:
            self.driver.call(name, *args, **kwargs)
        except AssistantFlowError:
            assert len(self.driver.transport.sent) == sent_before, "an error after a send"
            assert self.driver.snapshot() == before, "an error moved the conversation"
            return
        if name == "start_assistant":
            self.payloads_owed += 1
        for message in self.driver.transport.sent[sent_before:]:
            check_message(message, before, choosing=choosing)

    @rule(response=init_responses)
    def start(self, response: Any) -> None:
        self.attempt("start_assistant", response)

    @rule(message=assistant_messages())
    def receive(self, message: Any) -> None:
        self.attempt("receive", message)

    @rule(
        name=st.one_of(st.sampled_from(sorted(KUSTOMER_EVENTS)), texts),
        payload=st.one_of(
            st.none(),
            assistant_messages(),
            st.fixed_dictionaries(
                {"conversationId": st.just(CONVERSATION), "isInAssistantMode": json_values}
            ),
        ),
    )
    def dispatch(self, name: str, payload: Any) -> None:
        self.attempt("dispatch", name, payload)

    @rule(
        snapshot=st.fixed_dictionaries({"isInAssistantMode": st.one_of(st.booleans(), json_values)})
    )
    def sync(self, snapshot: Any) -> None:
        self.attempt("sync", snapshot)

    @rule(body=st.one_of(st.none(), hostile_texts), payload=st.one_of(st.none(), hostile_texts))
    def send(self, body: Any, payload: Any) -> None:
        self.attempt("send_message", body, payload=payload)

    @rule(data=st.data())
    def choose(self, data: st.DataObject) -> None:
        offered = [c.display_text for c in self.driver.snapshot().choices]
        choice = data.draw(
            st.one_of(st.sampled_from(offered), hostile_texts) if offered else hostile_texts
        )
        self.attempt("choose", choice, choosing=True)

    @rule(article=st.one_of(st.sampled_from(["art_1", "art_2", "art_3"]), hostile_texts))
    def visit(self, article: str) -> None:
        self.attempt("visit_article", article)

    @rule()
    def end(self) -> None:
        self.attempt("end_assistant")

    @rule()
    def flush(self) -> None:
        self.attempt("flush")

    @invariant()
    def at_most_one_payload_per_start(self) -> None:
        carried = sum("initAssistantPayload" in m for m in self.driver.transport.sent)
        assert carried <= self.payloads_owed

    @invariant()
    def the_record_reads_back_from_its_json(self) -> None:
        record = self.driver.snapshot()
        assert ConversationRecord.from_json(record.to_json()) == record


def check_message(message: dict[str, Any], before: ConversationRecord, *, choosing: bool) -> None:
    """The message obeys the protocol for the state the conversation was in."""
    json.dumps(message, ensure_ascii=False).encode("utf-8")  # sendable as it is
    assert message["conversationId"] == CONVERSATION
    mode = before.in_assistant_mode
    if mode is None:
        assert "isInAssistantMode" not in message
    else:
        assert message["isInAssistantMode"] is mode
    if before.init_payload is None:
        assert "initAssistantPayload" not in message
    else:
        assert message["initAssistantPayload"] == before.init_payload.to_wire()
    if before.articles:
        sent_ids = [a["id"] for a in message["lastDeflection"]["articles"]]
        assert sent_ids == [a.id for a in before.articles]
    else:
        assert "lastDeflection" not in message
    if choosing:
        assert message["payload"] in {choice.value for choice in before.choices}


class AsyncProtocol(Protocol):
    asynchronous = True


PROPERTY_SETTINGS = settings(
    max_examples=150,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("machine", [Protocol, AsyncProtocol], ids=["sync", "async"])
def test_every_public_call_keeps_the_protocol(machine: type[Protocol]) -> None:
    test_case = machine.TestCase
    test_case.settings = PROPERTY_SETTINGS
    test_case().runTest()
