"""HTTPTransport and AsyncHTTPTransport against the Kustomer stub, over real loopback HTTP.

Each test runs as ``[sync]`` and ``[async]`` under the same name. The stub injects every fault
the transport must survive (429 with ``x-ratelimit-reset`` or ``Retry-After``, 5xx, a slow
answer, a dropped connection) and keeps a log of what it received, so the tests check what
went over the wire, not what the transport believes it sent. Retry delays are hundredths of a
second; the waits the transport chose are recorded, never timed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import SyncHandleView

from assistant_flow import (
    AsyncFlow,
    AsyncHTTPTransport,
    Attachment,
    Flow,
    HTTPTransport,
    KustomerAPIError,
    RateLimitedError,
    RetriesExhaustedError,
    Retry,
    SendMessageOptions,
    SentMessage,
    State,
)
from assistant_flow.testing import KustomerStub, StubClient

CUSTOMER = "cust_1"
Transport = HTTPTransport | AsyncHTTPTransport


@dataclass
class StubView:
    """One driver against the stub: transports with tiny retry delays, and ``await send``."""

    mode: str
    stub: KustomerStub
    waits: list[float] = field(default_factory=list)
    opened: list[Transport] = field(default_factory=list)

    def _sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(seconds)

    async def _async_sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(seconds)

    def retry(self, **options: Any) -> Retry:
        options = {"backoff": 0.01, "max_backoff": 0.05, "max_elapsed": 5.0, **options}
        return Retry(sleep=self._sleep, async_sleep=self._async_sleep, **options)

    def transport(self, **options: Any) -> Transport:
        options.setdefault("retry", self.retry())
        options.setdefault("customer_id", CUSTOMER)
        kind = HTTPTransport if self.mode == "sync" else AsyncHTTPTransport
        made = kind(self.stub.url, options.pop("api_key", self.stub.api_key), **options)
        self.opened.append(made)
        return made

    async def send(self, transport: Transport, message: SendMessageOptions) -> SentMessage:
        if isinstance(transport, HTTPTransport):
            return transport.send(message)
        return await transport.asend(message)

    def session(self, assistant: str | None = None) -> str:
        """A new conversation on the stub (what createConversation does in the browser)."""
        with StubClient(self.stub.url, self.stub.api_key) as client:
            created = client.create_session(CUSTOMER, "Help", assistant=assistant)
        conversation_id: str = created["conversationId"]
        return conversation_id

    def conversation(self, transport: Transport, conversation_id: str) -> Any:
        if isinstance(transport, HTTPTransport):
            return SyncHandleView(Flow(transport).conversation(conversation_id))
        return AsyncFlow(transport).conversation(conversation_id)

    def messages(self) -> list[dict[str, Any]]:
        """The stub's log of message requests (either route), oldest first."""
        return [
            entry
            for entry in self.stub.requests()
            if entry["route"] in ("messages", "assistant_messages")
        ]


@pytest.fixture(params=["sync", "async"])
async def on_stub(
    request: pytest.FixtureRequest, kustomer_stub: KustomerStub
) -> AsyncIterator[StubView]:
    view = StubView(request.param, kustomer_stub)
    yield view
    for transport in view.opened:
        if isinstance(transport, HTTPTransport):
            transport.close()
        else:
            await transport.aclose()


def text(conversation_id: str, body: str = "Hello") -> SendMessageOptions:
    return SendMessageOptions(conversation_id=conversation_id, body=body)


def settle(stub: KustomerStub, timeout: float = 5.0) -> None:
    """Wait until every request the stub received has been answered (or dropped)."""
    deadline = time.monotonic() + timeout
    while any(entry.get("status") is None for entry in stub.requests()):
        if time.monotonic() > deadline:
            pytest.fail("the stub still has requests in flight")
        time.sleep(0.02)


async def test_a_message_is_delivered_and_answered_as_kustomer_would(on_stub: StubView) -> None:
    conversation_id = on_stub.session()
    sent = await on_stub.send(on_stub.transport(), text(conversation_id))
    assert sent.message_id
    assert (sent.conversation_id, sent.direction, sent.body) == (conversation_id, "in", "Hello")
    assert on_stub.stub.sent() == [
        {"conversationId": conversation_id, "customerId": CUSTOMER, "body": "Hello"}
    ]


async def test_a_429_with_x_ratelimit_reset_waits_for_the_reset(on_stub: StubView) -> None:
    conversation_id = on_stub.session()
    on_stub.stub.fault("429", "messages", reset=0.05)
    await on_stub.send(on_stub.transport(), text(conversation_id))
    assert [entry["status"] for entry in on_stub.messages()] == [429, 201]
    assert on_stub.waits == [pytest.approx(0.05)]
    assert len(on_stub.stub.sent()) == 1


async def test_a_429_with_retry_after_waits_what_it_says(on_stub: StubView) -> None:
    conversation_id = on_stub.session()
    on_stub.stub.fault("429", "messages", reset=30, retry_after=0.03)
    await on_stub.send(on_stub.transport(), text(conversation_id))
    assert [entry["status"] for entry in on_stub.messages()] == [429, 201]
    assert on_stub.waits == [pytest.approx(0.03)]


async def test_a_500_then_success(on_stub: StubView) -> None:
    conversation_id = on_stub.session()
    on_stub.stub.fault("500", "messages", status=503)
    sent = await on_stub.send(on_stub.transport(), text(conversation_id))
    assert [entry["status"] for entry in on_stub.messages()] == [503, 201]
    assert len(on_stub.waits) == 1
    assert 0 <= on_stub.waits[0] <= 0.01
    assert on_stub.stub.sent()[0]["body"] == "Hello" == sent.body


async def test_a_slow_answer_times_out_and_the_retry_is_not_processed_twice(
    on_stub: StubView,
) -> None:
    conversation_id = on_stub.session()
    on_stub.stub.fault("slow", "messages", delay=0.9)
    sent = await on_stub.send(on_stub.transport(timeout=0.3), text(conversation_id))
    assert sent.message_id
    settle(on_stub.stub)
    entries = on_stub.messages()
    assert entries[0]["fault"] == "slow"
    assert len(entries) >= 2  # a busy machine may time out a retry too; the key still holds
    assert len({entry["headers"]["idempotency-key"] for entry in entries}) == 1
    # The slow first attempt was processed too, late: the stub answered it with the answer it
    # gave the retry, so the message exists once.
    assert len(on_stub.stub.sent()) == 1


async def test_a_dropped_connection_is_retried(on_stub: StubView) -> None:
    conversation_id = on_stub.session()
    on_stub.stub.fault("drop", "messages")
    await on_stub.send(on_stub.transport(), text(conversation_id))
    assert [entry["status"] for entry in on_stub.messages()] == ["dropped", 201]
    assert len(on_stub.stub.sent()) == 1


async def test_an_answer_lost_after_processing_is_retried_and_processed_once(
    on_stub: StubView,
) -> None:
    conversation_id = on_stub.session()
    on_stub.stub.fault("drop", "messages", after_processing=True)
    sent = await on_stub.send(on_stub.transport(), text(conversation_id))
    entries = on_stub.messages()
    assert [entry["status"] for entry in entries] == ["dropped", 201]
    assert entries[0]["headers"]["idempotency-key"] == entries[1]["headers"]["idempotency-key"]
    assert entries[1].get("replayed") is True
    assert len(on_stub.stub.sent()) == 1
    assert sent.message_id


async def test_a_4xx_is_not_retried_and_carries_kustomers_error_body(on_stub: StubView) -> None:
    with pytest.raises(KustomerAPIError) as caught:
        await on_stub.send(on_stub.transport(), text("conv_unknown"))
    assert caught.value.status_code == 404
    [detail] = caught.value.errors
    assert detail.code == "not_found"
    assert "conversation" in detail.text
    assert len(on_stub.messages()) == 1
    assert on_stub.waits == []


async def test_a_wrong_key_is_a_401_that_does_not_quote_it(on_stub: StubView) -> None:
    conversation_id = on_stub.session()
    wrong = "sk-wrong-key-0123456789"
    with pytest.raises(KustomerAPIError) as caught:
        await on_stub.send(on_stub.transport(api_key=wrong), text(conversation_id))
    assert caught.value.status_code == 401
    assert caught.value.errors[0].code == "unauthorized"
    assert wrong not in str(caught.value)
    assert on_stub.stub.api_key not in str(caught.value)
    assert len(on_stub.messages()) == 1


async def test_retries_end_when_the_attempts_run_out(on_stub: StubView) -> None:
    conversation_id = on_stub.session()
    on_stub.stub.fault("500", "messages", count=10)
    transport = on_stub.transport(retry=on_stub.retry(attempts=3))
    with pytest.raises(RetriesExhaustedError) as caught:
        await on_stub.send(transport, text(conversation_id))
    assert caught.value.attempts == 3
    last = caught.value.last_error
    assert isinstance(last, KustomerAPIError)
    assert last.status_code == 500
    assert last.errors[0].code == "internal_server_error"
    assert [entry["status"] for entry in on_stub.messages()] == [500, 500, 500]
    assert on_stub.stub.sent() == []


async def test_an_attachment_is_announced_uploaded_and_referenced(on_stub: StubView) -> None:
    conversation_id = on_stub.session()
    receipt = Attachment.from_bytes(b"%PDF-1.7 receipt", "receipt.pdf")
    message = SendMessageOptions(conversation_id=conversation_id, body="Hi", attachments=[receipt])
    sent = await on_stub.send(on_stub.transport(), message)
    routes = [entry["route"] for entry in on_stub.stub.requests()]
    assert routes == ["sessions", "attachments", "upload", "messages"]
    [reference] = on_stub.stub.sent()[0]["attachments"]
    assert reference["name"] == "receipt.pdf"
    assert reference["contentType"] == "application/pdf"
    assert reference["contentLength"] == len(b"%PDF-1.7 receipt")
    assert sent.attachments is not None
    assert sent.attachments[0]["id"] == reference["id"]


async def test_a_failed_upload_is_retried(on_stub: StubView) -> None:
    conversation_id = on_stub.session()
    on_stub.stub.fault("500", "upload")
    photo = Attachment.from_bytes(b"\x89PNG", "photo.png")
    message = SendMessageOptions(conversation_id=conversation_id, attachments=[photo])
    await on_stub.send(on_stub.transport(), message)
    statuses = [(entry["route"], entry["status"]) for entry in on_stub.stub.requests()][1:]
    assert statuses == [("attachments", 201), ("upload", 500), ("upload", 204), ("messages", 201)]


async def test_the_first_reply_survives_a_fault_and_the_assistant_accepts_it(
    on_stub: StubView,
) -> None:
    conversation_id = on_stub.session(assistant="asst_support")
    with StubClient(on_stub.stub.url, on_stub.stub.api_key) as client:
        init = client.init_assistant("asst_support")
    transport = on_stub.transport()
    conv = on_stub.conversation(transport, conversation_id)
    await conv.start_assistant(init)
    on_stub.stub.fault("500", "assistant_messages")
    sent = await conv.choose("Billing")
    assert sent.body == "Billing"
    entries = on_stub.messages()
    assert [entry["status"] for entry in entries] == [500, 201]
    assert all("initAssistantPayload" in entry["body"] for entry in entries)
    assert await conv.state == State.IN_ASSISTANT
    assert not (await conv.snapshot()).awaiting_first_reply


# --- a lost answer, the deadline, keyed announces, Kustomer's real 429 -------------------------


async def test_a_resend_after_a_lost_answer_reuses_the_key_and_the_flow_advances(
    on_stub: StubView,
) -> None:
    conversation_id = on_stub.session(assistant="asst_support")
    with StubClient(on_stub.stub.url, on_stub.stub.api_key) as client:
        init = client.init_assistant("asst_support")
    transport = on_stub.transport(retry=on_stub.retry(attempts=2))
    conv = on_stub.conversation(transport, conversation_id)
    await conv.start_assistant(init)
    # Stored by the stub, answer lost, on every attempt the transport makes.
    on_stub.stub.fault("drop", "assistant_messages", count=2, after_processing=True)
    with pytest.raises(RetriesExhaustedError):
        await conv.choose("Billing")
    assert (await conv.snapshot()).awaiting_first_reply  # the flow did not advance
    sent = await conv.choose("Billing")  # what the README tells the user to do
    assert sent.body == "Billing"
    assert await conv.state == State.IN_ASSISTANT
    assert not (await conv.snapshot()).awaiting_first_reply
    entries = on_stub.messages()
    assert [entry["status"] for entry in entries] == ["dropped", "dropped", 201]
    assert len({entry["headers"]["idempotency-key"] for entry in entries}) == 1
    assert entries[-1].get("replayed") is True
    assert len(on_stub.stub.sent()) == 1


async def test_two_identical_plain_replies_are_two_messages(on_stub: StubView) -> None:
    conversation_id = on_stub.session()
    conv = on_stub.conversation(on_stub.transport(), conversation_id)
    await conv.send_message("Hello")
    await conv.send_message("Hello")
    keys = {entry["headers"]["idempotency-key"] for entry in on_stub.messages()}
    assert len(keys) == 2
    assert [message["body"] for message in on_stub.stub.sent()] == ["Hello", "Hello"]


async def test_max_elapsed_bounds_a_slow_answer(on_stub: StubView) -> None:
    conversation_id = on_stub.session()
    on_stub.stub.fault("slow", "messages", delay=3.0)
    transport = on_stub.transport(retry=on_stub.retry(max_elapsed=0.5))
    started = time.monotonic()
    with pytest.raises(RetriesExhaustedError):
        await on_stub.send(transport, text(conversation_id))
    took = time.monotonic() - started
    settle(on_stub.stub)
    # A generous bound: the slow answer alone would take 3 s (and the default timeout 10 s).
    assert took < 2.5


async def test_max_elapsed_bounds_a_message_with_files_as_a_whole(on_stub: StubView) -> None:
    conversation_id = on_stub.session()
    files = [Attachment.from_bytes(b"%PDF-1.7", f"{name}.pdf") for name in ("a", "b")]
    message = SendMessageOptions(conversation_id=conversation_id, attachments=files)
    # Five requests (two announces, two uploads, the message), each 0.6 s: 3 s in all.
    on_stub.stub.fault("slow", "*", delay=0.6, count=5)
    transport = on_stub.transport(retry=on_stub.retry(max_elapsed=0.8))
    started = time.monotonic()
    with pytest.raises(RetriesExhaustedError):
        await on_stub.send(transport, message)
    took = time.monotonic() - started
    settle(on_stub.stub)
    assert took < 2.5  # generous: a per-request budget would let all five through (3 s)
    assert on_stub.stub.sent() == []


async def test_a_retried_announce_is_recognised_and_makes_no_duplicate(
    on_stub: StubView,
) -> None:
    conversation_id = on_stub.session()
    on_stub.stub.fault("drop", "attachments", after_processing=True)
    receipt = Attachment.from_bytes(b"%PDF-1.7 receipt", "receipt.pdf")
    message = SendMessageOptions(conversation_id=conversation_id, attachments=[receipt])
    sent = await on_stub.send(on_stub.transport(), message)
    announces = [e for e in on_stub.stub.requests() if e["route"] == "attachments"]
    assert [entry["status"] for entry in announces] == ["dropped", 201]
    assert announces[1].get("replayed") is True
    keys = {entry["headers"]["idempotency-key"] for entry in announces}
    assert len(keys) == 1
    [message_entry] = on_stub.messages()
    assert keys.pop().startswith(message_entry["headers"]["idempotency-key"])
    assert len(on_stub.stub.state.uploads.files) == 1  # one file, not two
    assert sent.attachments is not None
    assert len(sent.attachments) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_kustomers_own_per_minute_429_is_raised_with_its_wait_at_once(mode: str) -> None:
    # Kustomer's reset is the end of a one-minute window, past the default 30 s budget: the
    # caller gets the RateLimitedError and its retry_after, to send again later.
    with KustomerStub(rate_limit=2) as stub:
        view = StubView(mode, stub)
        conversation_id = view.session()  # request 1 of 2
        transport = view.transport(retry=view.retry(max_elapsed=30.0))
        await view.send(transport, text(conversation_id, "one"))  # request 2 of 2
        with pytest.raises(RateLimitedError) as caught:
            await view.send(transport, text(conversation_id, "two"))
        for made in view.opened:
            if isinstance(made, HTTPTransport):
                made.close()
            else:
                await made.aclose()
        statuses = [entry["status"] for entry in view.messages()]
    assert caught.value.retry_after is not None
    assert 30 < caught.value.retry_after <= 61
    assert view.waits == []  # no waiting for a window the budget cannot cover
    assert statuses == [201, 429]
