"""Lifecycle hooks after commit, flows that close, and a machine that refuses callbacks."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Harness
from payloads import ARTICLES, assistant_message, greeting, init_response, quick_replies
from structlog.testing import capture_logs

from assistant_flow import (
    AsyncFlow,
    ConfigurationError,
    Flow,
    InvalidInputError,
    KustomerConnectionError,
    MemoryStore,
    MemoryTransport,
    TransportError,
)
from assistant_flow._hooks import (
    AssistantEndedEvent,
    AssistantStartedEvent,
    ChoicesOfferedEvent,
    MessageSentEvent,
    SendFailedEvent,
    TransitionEvent,
)
from assistant_flow._machine import STATES, TRANSITIONS, _derive_table, _LifecycleMachine

BUTTONS = init_response(greeting(quick_replies("Pick", ("Billing", "billing"))))


def record_all(harness: Harness) -> list[Any]:
    seen: list[Any] = []
    for name in (
        "transition",
        "assistant_started",
        "assistant_ended",
        "choices_offered",
        "message_sent",
        "send_failed",
    ):
        harness.flow.on(name, seen.append)
    return seen


async def test_every_hook_reports_a_frozen_event_of_a_whole_dialog(harness: Harness) -> None:
    seen = record_all(harness)
    conv = await harness.started(response=BUTTONS)
    await conv.choose("Billing")
    await conv.receive(assistant_message("conv_1", quick_replies("More?", ("No", "no"))))
    await conv.end_assistant()
    kinds = [type(event) for event in seen]
    assert kinds == [
        TransitionEvent,  # init -> awaiting_first_reply
        AssistantStartedEvent,
        ChoicesOfferedEvent,  # the greeting's buttons
        TransitionEvent,  # the first reply
        MessageSentEvent,
        ChoicesOfferedEvent,  # the new question
        TransitionEvent,  # conversing -> ended
        AssistantEndedEvent,
    ]
    sent = next(event for event in seen if isinstance(event, MessageSentEvent))
    assert sent.message.payload == "billing"
    assert sent.sent.message_id == "msg_1"
    assert sent.redelivered is False
    assert all(event.conversation_id == "conv_1" for event in seen)
    with pytest.raises(AttributeError):
        sent.conversation_id = "other"  # type: ignore[misc]


async def test_a_hook_sees_the_committed_record(harness: Harness) -> None:
    stored: list[Any] = []

    def check(event: MessageSentEvent) -> None:
        # Run after the save: the store already holds what the event reports.
        stored.append(harness.store.load(event.conversation_id) == event.record)

    harness.flow.on("message_sent", check)
    conv = await harness.started()
    await conv.send_message("Hi")
    assert stored == [True]


async def test_a_hook_that_raises_is_logged_and_stops_nothing(harness: Harness) -> None:
    order: list[str] = []

    def broken(event: Any) -> None:
        order.append("broken")
        raise RuntimeError("bug in the app")

    harness.flow.on("message_sent", broken)
    harness.flow.on("message_sent", lambda event: order.append("second"))
    conv = await harness.started()
    with capture_logs() as logs:
        sent = await conv.send_message("Hi")
    assert sent.message_id == "msg_1"
    assert order == ["broken", "second"]
    [failure] = [log for log in logs if log["event"] == "hook_failed"]
    assert failure["hook"] == "message_sent"
    assert failure["error"] == "RuntimeError"
    assert (await conv.snapshot()).awaiting_first_reply is False


async def test_send_failed_says_whether_the_message_is_kept(harness: Harness) -> None:
    failures: list[SendFailedEvent] = []
    harness.flow.on("send_failed", failures.append)
    conv = await harness.started()
    harness.transport.fail_next(error=KustomerConnectionError("dropped"))
    with pytest.raises(TransportError):
        await conv.send_message("Hi")
    [kept] = failures
    assert kept.kept is True
    assert kept.record.outbox[0].message.body == "Hi"
    assert isinstance(kept.error, KustomerConnectionError)


async def test_a_server_started_assistant_is_reported(harness: Harness) -> None:
    seen = record_all(harness)
    await harness.dispatch(
        "onConversationCreate", {"conversationId": "conv_1", "isInAssistantMode": True}
    )
    started = [event for event in seen if isinstance(event, AssistantStartedEvent)]
    assert [event.server_started for event in started] == [True]


async def test_a_repeated_event_reports_nothing(harness: Harness) -> None:
    conv = await harness.started()
    question = assistant_message("conv_1", quick_replies("Pick", ("Yes", "y")))
    await conv.receive(question)
    seen = record_all(harness)
    await conv.receive(question)
    await conv.receive(assistant_message("conv_1", None, ARTICLES))
    assert seen == []  # a repeat, then a deflection without choices: nothing to report


async def test_a_hook_name_that_does_not_exist_is_refused(harness: Harness) -> None:
    with pytest.raises(InvalidInputError, match="message_sent"):
        harness.flow.on("on_message_sent", print)


def test_a_flow_refuses_an_async_hook_it_could_never_run() -> None:
    async def hook(event: Any) -> None:
        pass

    with pytest.raises(ConfigurationError, match="AsyncFlow"):
        Flow(MemoryTransport()).on("message_sent", hook)


async def test_an_async_flow_awaits_async_hooks() -> None:
    seen: list[str] = []

    async def hook(event: MessageSentEvent) -> None:
        seen.append(event.sent.message_id)

    flow = AsyncFlow(MemoryTransport())
    flow.on("message_sent", hook)
    conv = flow.conversation("conv_1")
    await conv.start_assistant(init_response())
    await conv.send_message("Hi")
    assert seen == ["msg_1"]


# --- flows that close -------------------------------------------------------------------------


class Closing(MemoryTransport):
    closed = 0

    def close(self) -> None:
        self.closed += 1

    async def aclose(self) -> None:
        self.closed += 1


class ClosingStore(MemoryStore):
    closed = 0

    def close(self) -> None:
        self.closed += 1

    async def aclose(self) -> None:
        self.closed += 1


def test_a_flow_closes_its_transport_and_store() -> None:
    transport, store = Closing(), ClosingStore()
    with Flow(transport, store) as flow:
        flow.conversation("conv_1").send_message("Hi")
    assert (transport.closed, store.closed) == (1, 1)


def test_the_store_is_closed_even_when_the_transport_fails_to() -> None:
    class Broken(Closing):
        def close(self) -> None:
            raise OSError("socket gone")

    store = ClosingStore()
    with pytest.raises(OSError, match="socket gone"):
        Flow(Broken(), store).close()
    assert store.closed == 1


async def test_an_async_flow_closes_its_transport_and_store() -> None:
    transport, store = Closing(), ClosingStore()
    async with AsyncFlow(transport, store) as flow:
        await flow.conversation("conv_1").send_message("Hi")
    assert (transport.closed, store.closed) == (1, 1)


def test_both_flows_share_their_repr() -> None:
    assert repr(Flow(MemoryTransport())) == "Flow(transport=MemoryTransport, store=MemoryStore)"
    assert repr(AsyncFlow(MemoryTransport())) == (
        "AsyncFlow(transport=MemoryTransport, store=MemoryStore)"
    )


# --- the machine refuses what its table would drop ---------------------------------------------


@pytest.mark.parametrize("callback", ["before", "after", "prepare", "conditions"])
def test_the_table_refuses_transition_callbacks(callback: str) -> None:
    transitions = [dict(t) for t in TRANSITIONS]
    transitions[0][callback] = "anything"
    machine = _LifecycleMachine(
        states=STATES, transitions=transitions, initial="init", auto_transitions=False
    )
    with pytest.raises(RuntimeError, match=callback):
        _derive_table(machine)


def test_the_table_refuses_state_callbacks() -> None:
    states: list[Any] = [{"name": "init", "on_enter": "anything"}, *STATES[1:]]
    machine = _LifecycleMachine(
        states=states, transitions=TRANSITIONS, initial="init", auto_transitions=False
    )
    with pytest.raises(RuntimeError, match="on_enter"):
        _derive_table(machine)
