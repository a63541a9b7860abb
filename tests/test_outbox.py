"""Delivery in doubt: a message whose answer was lost is kept, and delivered exactly once.

MemoryTransport.lose_next stands for Kustomer storing a message and the connection dropping
before its answer; like Kustomer it answers a repeated Idempotency-Key with what it stored.
Every test runs against Flow and AsyncFlow.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Harness
from payloads import ARTICLES, assistant_message, greeting, init_response, quick_replies

from assistant_flow import (
    KustomerAPIError,
    KustomerConnectionError,
    RetriesExhaustedError,
    TransportError,
    UnexpectedResponseError,
)

BUTTONS = greeting(quick_replies("What do you need?", ("Billing", "billing"), ("Other", "other")))


async def started_with_buttons(harness: Harness) -> Any:
    return await harness.started(response=init_response(BUTTONS))


def carrying(harness: Harness, field: str) -> list[dict[str, Any]]:
    return [sent for sent in harness.transport.sent if field in sent]


async def test_a_lost_answer_keeps_the_message_and_the_error_says_so(harness: Harness) -> None:
    conv = await started_with_buttons(harness)
    before = await conv.snapshot()
    harness.transport.lose_next()
    with pytest.raises(KustomerConnectionError) as caught:
        await conv.choose("Billing")
    assert caught.value.kept is True
    assert "kept" in " ".join(caught.value.__notes__)
    kept = await conv.snapshot()
    # State unmoved: the first reply is still owed until the kept one is confirmed.
    assert kept.machine_state == before.machine_state
    assert kept.init_payload == before.init_payload
    [entry] = kept.outbox
    assert entry.message.payload == "billing"
    assert entry.idempotency_key is not None


async def test_a_different_next_message_delivers_the_kept_one_first_and_owes_no_payload(
    harness: Harness,
) -> None:
    conv = await started_with_buttons(harness)
    harness.transport.lose_next()
    with pytest.raises(TransportError):
        await conv.choose("Billing")
    await conv.send_message("Actually, a question")
    # Kustomer holds the choice once; the next message follows it without a second payload.
    assert [sent.get("payload") for sent in harness.transport.sent] == ["billing", None]
    assert len(carrying(harness, "initAssistantPayload")) == 1
    assert "initAssistantPayload" not in harness.transport.sent[-1]
    after = await conv.snapshot()
    assert after.outbox == ()
    assert after.machine_state == "in_assistant.conversing"


async def test_sending_the_same_message_again_is_the_kept_one(harness: Harness) -> None:
    conv = await started_with_buttons(harness)
    harness.transport.lose_next()
    with pytest.raises(TransportError):
        await conv.choose("Billing")
    sent = await conv.choose("Billing")
    assert len(harness.transport.sent) == 1
    assert sent.message_id == "msg_1"  # the answer Kustomer stored the first time
    assert (await conv.snapshot()).outbox == ()


async def test_a_plain_reply_is_neither_lost_nor_doubled(harness: Harness) -> None:
    conv = await started_with_buttons(harness)
    await conv.send_message("Hi")
    harness.transport.lose_next()
    with pytest.raises(TransportError):
        await conv.send_message("Is anyone there?")
    await conv.send_message("Is anyone there?")  # the caller resends
    await conv.send_message("Hello?")  # then moves on
    bodies = [sent["body"] for sent in harness.transport.sent]
    assert bodies == ["Hi", "Is anyone there?", "Hello?"]


async def test_two_identical_plain_messages_are_two_messages(harness: Harness) -> None:
    conv = await started_with_buttons(harness)
    await conv.send_message("ok")
    await conv.send_message("ok")
    harness.transport.lose_next()
    with pytest.raises(TransportError):
        await conv.send_message("ok")
    await conv.send_message("ok")
    # Each "ok" is its own delivery with its own key: the third is not mistaken for the second.
    assert [sent["body"] for sent in harness.transport.sent] == ["ok", "ok", "ok"]


async def test_a_lost_deflection_reply_is_not_followed_by_a_second_last_deflection(
    harness: Harness,
) -> None:
    conv = await started_with_buttons(harness)
    await conv.send_message("Password help")
    await conv.receive(assistant_message("conv_1", None, ARTICLES))
    await conv.visit_article("art_1")
    harness.transport.lose_next()
    with pytest.raises(TransportError):
        await conv.send_message("That did not help")
    # The customer opens the article again: the kept reply goes first, then nothing is
    # pending, so the visit finds no deflection.
    with pytest.raises(Exception, match="no deflection is pending"):
        await conv.visit_article("art_1")
    await conv.send_message("Still stuck")
    deflections = carrying(harness, "lastDeflection")
    assert len(deflections) == 1
    assert deflections[0]["lastDeflection"]["articles"][0]["visited"] == 1
    assert [sent["body"] for sent in harness.transport.sent][-2:] == [
        "That did not help",
        "Still stuck",
    ]


async def test_flush_delivers_what_is_kept_and_nothing_else(harness: Harness) -> None:
    conv = await started_with_buttons(harness)
    assert await conv.flush() == []
    harness.transport.lose_next()
    with pytest.raises(TransportError):
        await conv.send_message("Hi")
    [confirmed] = await conv.flush()
    assert confirmed.message_id == "msg_1"
    assert await conv.flush() == []
    assert len(harness.transport.sent) == 1
    assert (await conv.snapshot()).awaiting_first_reply is False


async def test_a_kept_message_still_in_doubt_stops_the_next_call_and_stays(
    harness: Harness,
) -> None:
    conv = await started_with_buttons(harness)
    harness.transport.lose_next()
    with pytest.raises(TransportError):
        await conv.send_message("Hi")
    kept = await conv.snapshot()
    harness.transport.fail_next(error=KustomerConnectionError("still down"))
    with pytest.raises(KustomerConnectionError) as caught:
        await conv.send_message("Hello?")
    assert caught.value.kept is True
    assert await conv.snapshot() == kept  # nothing else happened
    await conv.send_message("Hello?")
    assert [sent["body"] for sent in harness.transport.sent] == ["Hi", "Hello?"]


async def test_a_refused_kept_message_is_dropped_and_the_call_can_be_made_again(
    harness: Harness,
) -> None:
    conv = await started_with_buttons(harness)
    harness.transport.fail_next(error=KustomerConnectionError("timed out"))
    with pytest.raises(TransportError):
        await conv.send_message("Hi")
    assert (await conv.snapshot()).outbox != ()
    harness.transport.fail_next(error=KustomerAPIError("bad", status_code=400))
    with pytest.raises(KustomerAPIError) as caught:
        await conv.send_message("Hello")
    assert caught.value.kept is False
    after = await conv.snapshot()
    assert after.outbox == ()
    assert after.awaiting_first_reply  # never delivered, so the payload is still owed
    await conv.send_message("Hello")
    assert [sent["body"] for sent in harness.transport.sent] == ["Hello"]
    assert "initAssistantPayload" in harness.transport.sent[0]


@pytest.mark.parametrize(
    ("error", "kept"),
    [
        (KustomerAPIError("bad request", status_code=400), False),
        (KustomerAPIError("not found", status_code=404), False),
        (KustomerAPIError("conflict", status_code=409), True),
        (KustomerAPIError("timeout", status_code=408), True),
        (KustomerAPIError("rate", status_code=429), True),
        (KustomerAPIError("oops", status_code=502), True),
        (KustomerConnectionError("dropped"), True),
        (UnexpectedResponseError("garbled", status_code=201), True),
        (
            RetriesExhaustedError(
                "gave up", attempts=3, elapsed=1.0, last_error=KustomerConnectionError("x")
            ),
            True,
        ),
        (TransportError("not delivered"), False),
    ],
)
async def test_only_a_definite_refusal_keeps_nothing(
    harness: Harness, error: TransportError, kept: bool
) -> None:
    conv = await started_with_buttons(harness)
    before = await conv.snapshot()
    harness.transport.fail_next(error=error)
    with pytest.raises(TransportError) as caught:
        await conv.send_message("Hi")
    assert caught.value.kept is kept
    after = await conv.snapshot()
    assert len(after.outbox) == (1 if kept else 0)
    assert after.machine_state == before.machine_state
    if not kept:
        assert after == before


async def test_every_call_delivers_the_kept_message_first(harness: Harness) -> None:
    conv = await started_with_buttons(harness)
    harness.transport.lose_next()
    with pytest.raises(TransportError):
        await conv.choose("Billing")
    # A new question arrives before anything else is sent: the kept answer is delivered
    # and applied first, so it withdraws the old buttons, not the new ones.
    await conv.receive(assistant_message("conv_1", quick_replies("Which?", ("Refund", "refund"))))
    assert len(harness.transport.sent) == 1
    await conv.choose("Refund")
    assert [sent["payload"] for sent in harness.transport.sent] == ["billing", "refund"]


async def test_another_worker_delivers_what_one_kept(harness: Harness) -> None:
    conv = await started_with_buttons(harness)
    harness.transport.lose_next()
    with pytest.raises(TransportError):
        await conv.send_message("Hi")
    other = harness.conversation("conv_1")  # another handle on the same store
    await other.send_message("From the other worker")
    assert [sent["body"] for sent in harness.transport.sent] == ["Hi", "From the other worker"]
    assert len(carrying(harness, "initAssistantPayload")) == 1
