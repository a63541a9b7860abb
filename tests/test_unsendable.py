"""Nothing that can never be sent is accepted: it is refused at the call, naming the field.

A lone surrogate is a valid Python ``str`` but no valid UTF-8, so no JSON on the wire can
carry it; bytes and huge integers are not JSON; deep nesting exhausts parsers. Each is refused
with InvalidInputError before anything is stored or sent, on every store.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from conftest import Harness
from payloads import assistant_message, greeting, init_response, quick_replies

from assistant_flow import (
    AssistantFlowError,
    Flow,
    InvalidInputError,
    MemoryTransport,
    SQLiteStore,
)
from assistant_flow._sendable import MAX_ID_CHARS, MAX_JSON_ITEMS, MAX_NESTING, MAX_TEXT_CHARS

LONE = "a\udc80b"


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": True}
    for _ in range(depth):
        value = {"child": value}
    return value


def with_template(template: dict[str, Any]) -> dict[str, Any]:
    return init_response(greeting(template))


BAD_STARTS = {
    "lone surrogate in template text": (
        with_template({"templateType": "text", "body": LONE}),
        "initialMessages.0.meta.template.body",
    ),
    "lone surrogate in lang": (
        init_response(greeting({"templateType": "text", "body": "hi"}, lang=LONE)),
        "initialMessages.0.lang",
    ),
    "bytes in a template": (
        with_template({"templateType": "text", "body": b"hi"}),
        "initialMessages.0.meta.template.body",
    ),
    "a greeting nested 256 deep": (
        with_template({"templateType": "text", "extra": nested(256)}),
        None,
    ),
    "an integer no JSON client reads back": (
        with_template({"templateType": "text", "n": 10**30}),
        "initialMessages.0.meta.template.n",
    ),
    "a greeting without its template": (
        init_response({}),
        "initialMessages.0.meta.template",
    ),
    "too many values": (
        with_template({"templateType": "text", "list": list(range(MAX_JSON_ITEMS + 1))}),
        "",
    ),
}


@pytest.mark.parametrize("case", list(BAD_STARTS), ids=list(BAD_STARTS))
async def test_an_unsendable_init_response_is_refused_and_nothing_is_stored(
    harness: Harness, case: str
) -> None:
    response, field = BAD_STARTS[case]
    conv = harness.conversation("conv_1")
    with pytest.raises(InvalidInputError) as caught:
        await conv.start_assistant(response)
    if field:
        assert caught.value.field == field
    assert len(harness.store) == 0
    await conv.send_message("Hi")
    assert harness.transport.sent == [{"conversationId": "conv_1", "body": "Hi"}]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"body": LONE}, "body"),
        ({"body": "hi", "payload": LONE}, "payload"),
        ({"body": "hi", "lang": LONE}, "lang"),
        ({"body": "x" * (MAX_TEXT_CHARS + 1)}, "body"),
    ],
)
async def test_an_unsendable_message_is_refused_before_anything_moves(
    harness: Harness, kwargs: dict[str, str], field: str
) -> None:
    conv = await harness.started()
    before = await conv.snapshot()
    with pytest.raises(InvalidInputError) as caught:
        await conv.send_message(**kwargs)
    assert caught.value.field == field
    assert LONE not in str(caught.value)
    assert harness.transport.sent == []
    assert await conv.snapshot() == before
    await conv.send_message("Hi")
    assert "initAssistantPayload" in harness.transport.sent[0]


async def test_choices_and_articles_are_checked_too(harness: Harness) -> None:
    conv = await harness.started()
    with pytest.raises(InvalidInputError):
        await conv.choose(LONE)
    with pytest.raises(InvalidInputError):
        await conv.visit_article(LONE)
    bad = assistant_message("conv_1", quick_replies("Pick", ("Yes", LONE)))
    with pytest.raises(InvalidInputError):
        await conv.receive(bad)
    deep = assistant_message("conv_1", {"templateType": "text", "x": nested(MAX_NESTING)})
    with pytest.raises(InvalidInputError):
        await conv.receive(deep)
    assert harness.transport.sent == []


@pytest.mark.parametrize("conversation_id", [LONE, "x" * (MAX_ID_CHARS + 1)])
def test_an_unsendable_conversation_id_is_refused(conversation_id: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        Flow(MemoryTransport()).conversation(conversation_id)
    assert caught.value.field == "conversation_id"


def test_sqlite_never_sees_text_it_cannot_store(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "c.db")
    transport = MemoryTransport()
    conv = Flow(transport, store).conversation("conv_1")
    for bad in (
        lambda: conv.start_assistant(with_template({"templateType": "text", "body": LONE})),
        lambda: conv.send_message(LONE),
    ):
        with pytest.raises(InvalidInputError):
            bad()
    conv.start_assistant(init_response())
    conv.send_message("Hi")
    assert transport.sent[0]["body"] == "Hi"
    store.close()


def test_a_model_instance_is_checked_like_a_dict() -> None:
    from assistant_flow import InitAssistantResponse

    response = InitAssistantResponse.model_validate(
        with_template({"templateType": "text", "n": 10**30})
    )
    conv = Flow(MemoryTransport()).conversation("conv_1")
    with pytest.raises(AssistantFlowError):
        conv.start_assistant(copy.deepcopy(response))
