"""HTTPTransport and AsyncHTTPTransport over httpx.MockTransport: a scripted Kustomer.

Every test runs twice, as ``[sync]`` (HTTPTransport, Flow) and ``[async]``
(AsyncHTTPTransport, AsyncFlow), under the same name. Sleeping, the clocks and the random
source are fakes, so retries run instantly and the waits asked for can be asserted exactly.
"""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import io
import json
import logging
import socket
import threading
import time
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import SyncHandleView
from payloads import greeting, init_response, quick_replies
from structlog.testing import capture_logs

from assistant_flow import (
    AsyncFlow,
    AsyncHTTPTransport,
    Attachment,
    AttachmentError,
    AttachmentLimits,
    ConfigurationError,
    Flow,
    HTTPTransport,
    InvalidInputError,
    KustomerAPIError,
    KustomerConnectionError,
    KustomerTimeoutError,
    RateLimitedError,
    RetriesExhaustedError,
    Retry,
    Routes,
    SendMessageOptions,
    SentMessage,
    State,
    TransportError,
    UnexpectedResponseError,
)
from assistant_flow.transports import DEFAULT_TIMEOUT, default_idempotency_key

BASE = "https://acme.api.kustomerapp.com"
KEY = "sk-live-0123456789abcdefSECRET"
NOW = 1_800_000_000.0  # the fake wall clock: 2027-01-15


def created(message_id: str = "msg_1", conversation_id: str = "conv_1", **extra: Any) -> Any:
    """Kustomer's JSON:API 201 for a message."""
    attributes = {
        "body": "Billing",
        "createdAt": "2026-11-25T10:00:00.000Z",
        "direction": "in",
        "conversationId": conversation_id,
        "attachments": [],
        **extra,
    }
    return httpx.Response(
        201, json={"data": {"type": "message", "id": message_id, "attributes": attributes}}
    )


def error(status: int, headers: dict[str, str] | None = None, body: Any = None) -> httpx.Response:
    body = body if body is not None else {"errors": [{"code": "oops", "message": "it failed"}]}
    return httpx.Response(status, json=body, headers=headers)


Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class FakeKustomer:
    """Answers requests from a script (then with a 201), and keeps every request."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.script: list[Answer] = []

    def answer(self, *answers: Answer) -> None:
        self.script.extend(answers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        answer: Answer = self.script.pop(0) if self.script else created()
        if isinstance(answer, Exception):
            if isinstance(answer, httpx.RequestError):
                answer.request = request
            raise answer
        if callable(answer):
            return answer(request)
        # A copy, so one scripted answer can be given twice and by both drivers.
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    def json(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)


@dataclass
class FakeTime:
    """Monotonic and wall clocks that only move when the transport sleeps."""

    monotonic: float = 0.0
    slept: list[float] = field(default_factory=list)
    jitter: float = 0.5

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.monotonic += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)

    def retry(self, **options: Any) -> Retry:
        return Retry(
            sleep=self.sleep,
            async_sleep=self.async_sleep,
            random=lambda: self.jitter,
            clock=lambda: self.monotonic,
            now=lambda: NOW + self.monotonic,
            **options,
        )


@dataclass
class HTTP:
    """One driver's view: its transport class, a client on the fake, and ``await send``."""

    mode: str
    kustomer: FakeKustomer
    time: FakeTime
    client: httpx.Client | httpx.AsyncClient
    opened: list[HTTPTransport | AsyncHTTPTransport] = field(default_factory=list)

    def transport(self, **options: Any) -> HTTPTransport | AsyncHTTPTransport:
        options.setdefault("client", self.client)
        options.setdefault("retry", self.time.retry())
        kind = HTTPTransport if self.mode == "sync" else AsyncHTTPTransport
        made = kind(options.pop("base_url", BASE), options.pop("api_key", KEY), **options)
        self.opened.append(made)
        return made

    async def send(
        self, transport: HTTPTransport | AsyncHTTPTransport, message: SendMessageOptions
    ) -> SentMessage:
        if isinstance(transport, HTTPTransport):
            return transport.send(message)
        return await transport.asend(message)

    async def close(self, transport: HTTPTransport | AsyncHTTPTransport) -> None:
        if isinstance(transport, HTTPTransport):
            transport.close()
        else:
            await transport.aclose()

    def conversation(self, transport: Any, conversation_id: str = "conv_1") -> Any:
        """A flow handle, awaited the same way in both modes."""
        if isinstance(transport, HTTPTransport):
            return SyncHandleView(Flow(transport).conversation(conversation_id))
        return AsyncFlow(transport).conversation(conversation_id)

    @property
    def closed(self) -> bool:
        return self.client.is_closed


@pytest.fixture(params=["sync", "async"])
async def http(request: pytest.FixtureRequest) -> AsyncIterator[HTTP]:
    kustomer = FakeKustomer()
    mock = httpx.MockTransport(kustomer)
    client: httpx.Client | httpx.AsyncClient
    if request.param == "sync":
        client = httpx.Client(transport=mock)
    else:
        client = httpx.AsyncClient(transport=mock)
    view = HTTP(request.param, kustomer, FakeTime(), client)
    yield view
    for transport in view.opened:
        await view.close(transport)
    if isinstance(client, httpx.Client):
        client.close()
    else:
        await client.aclose()


def message(**fields: Any) -> SendMessageOptions:
    fields.setdefault("conversation_id", "conv_1")
    fields.setdefault("body", "Billing")
    return SendMessageOptions(**fields)


# --- routes, headers, bodies, responses ------------------------------------------------------


@pytest.mark.parametrize(
    ("assistant_mode", "route"),
    [
        (True, "/v2.1/chat/assistant/messages"),
        (False, "/v2.1/chat/messages"),
        (None, "/v2.1/chat/messages"),
    ],
)
async def test_the_route_follows_assistant_mode(
    http: HTTP, assistant_mode: bool | None, route: str
) -> None:
    await http.send(http.transport(), message(is_in_assistant_mode=assistant_mode))
    [sent] = http.kustomer.requests
    assert (sent.method, str(sent.url)) == ("POST", BASE + route)


async def test_routes_and_a_base_url_path_are_configurable(http: HTTP) -> None:
    routes = Routes(assistant_messages="/x/assistant", messages="/x/messages")
    transport = http.transport(base_url=BASE + "/proxy/", routes=routes)
    await http.send(transport, message(is_in_assistant_mode=True))
    await http.send(transport, message())
    assert [str(r.url) for r in http.kustomer.requests] == [
        BASE + "/proxy/x/assistant",
        BASE + "/proxy/x/messages",
    ]


async def test_a_route_must_be_a_path() -> None:
    with pytest.raises(InvalidInputError) as caught:
        Routes(messages="v2.1/chat/messages")
    assert caught.value.field == "messages"


async def test_every_request_carries_bearer_auth_json_and_an_idempotency_key(http: HTTP) -> None:
    await http.send(http.transport(), message())
    headers = http.kustomer.requests[0].headers
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["content-type"] == "application/json"
    assert headers["accept"] == "application/json"
    assert len(headers["idempotency-key"]) >= 16


async def test_the_body_is_the_wire_payload_plus_the_customer_id(http: HTTP) -> None:
    first = message(
        is_in_assistant_mode=True,
        payload="billing",
        lang="en",
        init_assistant_payload={"assistant": "a", "dialog": "d", "node": "n"},
    )
    await http.send(http.transport(customer_id="cust_1"), first)
    assert http.kustomer.json() == {**first.to_wire(), "customerId": "cust_1"}


async def test_a_customer_id_callable_is_asked_per_conversation(http: HTTP) -> None:
    asked: list[str] = []

    def customer_of(conversation_id: str) -> str | None:
        asked.append(conversation_id)
        return None if conversation_id == "conv_anon" else f"cust_of_{conversation_id}"

    transport = http.transport(customer_id=customer_of)
    await http.send(transport, message(conversation_id="conv_7"))
    await http.send(transport, message(conversation_id="conv_anon"))
    assert asked == ["conv_7", "conv_anon"]
    assert http.kustomer.json(0)["customerId"] == "cust_of_conv_7"
    assert "customerId" not in http.kustomer.json(1)


async def test_without_a_customer_id_none_is_sent(http: HTTP) -> None:
    await http.send(http.transport(), message())
    assert "customerId" not in http.kustomer.json()


async def test_a_customer_id_callable_returning_a_non_string_is_refused(http: HTTP) -> None:
    transport = http.transport(customer_id=lambda conversation_id: 42)
    with pytest.raises(InvalidInputError) as caught:
        # with a file, so that a late check would already have announced it
        await http.send(transport, message(attachments=[one_png()]))
    assert caught.value.field == "customer_id"
    assert http.kustomer.requests == []


async def test_a_json_api_answer_becomes_a_sent_message(http: HTTP) -> None:
    http.kustomer.answer(created("msg_42", extra_field=1))
    sent = await http.send(http.transport(), message())
    assert (sent.message_id, sent.body, sent.direction) == ("msg_42", "Billing", "in")
    assert (sent.created_at, sent.conversation_id) == ("2026-11-25T10:00:00.000Z", "conv_1")


async def test_a_flat_callback_response_is_accepted_too(http: HTTP) -> None:
    flat = {"messageId": "msg_9", "createdAt": "2026-11-25T10:00:00.000Z", "direction": "in"}
    http.kustomer.answer(httpx.Response(200, json=flat))
    sent = await http.send(http.transport(), message())
    # conversationId is taken from the message when the answer leaves it out.
    assert (sent.message_id, sent.conversation_id) == ("msg_9", "conv_1")


@pytest.mark.parametrize(
    "answer",
    [
        lambda: httpx.Response(201, text="<html>ok</html>"),
        lambda: httpx.Response(201, json=["not", "an", "object"]),
        lambda: httpx.Response(
            201, json={"data": {"id": "msg_1", "attributes": {"body": "no date"}}}
        ),
    ],
    ids=["not-json", "not-an-object", "missing-fields"],
)
async def test_a_success_that_is_not_a_message_is_an_error_and_not_retried(
    http: HTTP, answer: Callable[[], httpx.Response]
) -> None:
    http.kustomer.answer(answer())
    with pytest.raises(UnexpectedResponseError) as caught:
        await http.send(http.transport(), message())
    assert caught.value.status_code == 201
    assert len(http.kustomer.requests) == 1


# --- retries ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": email.utils.formatdate(NOW + 12, usegmt=True)}, 12.0),
        ({"x-ratelimit-reset": str(int(NOW + 20))}, 20.0),
        ({"x-ratelimit-reset": "3"}, 3.0),
        ({"Retry-After": "2", "x-ratelimit-reset": str(int(NOW + 20))}, 2.0),
        ({"Retry-After": "soon", "x-ratelimit-reset": "4"}, 4.0),
        ({"x-ratelimit-reset": str(int(NOW - 5))}, 0.0),
    ],
    ids=[
        "retry-after-seconds",
        "retry-after-http-date",
        "reset-epoch",
        "reset-seconds",
        "retry-after-wins",
        "unreadable-retry-after-falls-back",
        "reset-in-the-past",
    ],
)
async def test_a_429_waits_as_long_as_kustomer_asks(
    http: HTTP, headers: dict[str, str], wait: float
) -> None:
    http.kustomer.answer(error(429, headers))
    sent = await http.send(http.transport(), message())
    assert sent.message_id == "msg_1"
    assert http.time.slept == [pytest.approx(wait)]
    assert len(http.kustomer.requests) == 2


async def test_a_429_naming_no_wait_backs_off(http: HTTP) -> None:
    http.kustomer.answer(error(429), error(429))
    await http.send(http.transport(retry=http.time.retry(backoff=1.0)), message())
    # full jitter: random() (0.5 here) times 1 s, then 2 s
    assert http.time.slept == [0.5, 1.0]


async def test_5xx_are_retried_with_capped_exponential_backoff_and_full_jitter(
    http: HTTP,
) -> None:
    http.time.jitter = 1.0  # the top of each jitter range, to see the caps
    http.kustomer.answer(*(error(status) for status in (500, 502, 503, 504, 500)))
    retry = http.time.retry(attempts=6, backoff=0.5, max_backoff=3.0, max_elapsed=100)
    await http.send(http.transport(retry=retry), message())
    assert http.time.slept == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert len(http.kustomer.requests) == 6


async def test_the_jitter_scales_each_wait(http: HTTP) -> None:
    http.time.jitter = 0.25
    http.kustomer.answer(error(500), error(500))
    await http.send(http.transport(retry=http.time.retry(backoff=2.0)), message())
    assert http.time.slept == [0.5, 1.0]


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadError("connection reset by peer"),
        httpx.RemoteProtocolError("server disconnected without sending a response"),
        httpx.ConnectTimeout("timed out"),
        httpx.ReadTimeout("timed out"),
        httpx.PoolTimeout("timed out"),
        httpx.ProxyError("proxy answered 502"),
    ],
    ids=lambda failure: type(failure).__name__,
)
async def test_connection_errors_and_timeouts_are_retried(
    http: HTTP, failure: httpx.RequestError
) -> None:
    http.kustomer.answer(failure)
    sent = await http.send(http.transport(), message())
    assert sent.message_id == "msg_1"
    assert len(http.kustomer.requests) == 2
    assert http.time.slept == [0.25]


@pytest.mark.parametrize(
    "failure",
    [httpx.LocalProtocolError("bad request line"), httpx.UnsupportedProtocol("gopher://")],
    ids=lambda failure: type(failure).__name__,
)
async def test_an_error_a_retry_cannot_cure_is_not_retried(
    http: HTTP, failure: httpx.TransportError
) -> None:
    http.kustomer.answer(failure)
    with pytest.raises(KustomerConnectionError) as caught:
        await http.send(http.transport(), message())
    assert caught.value.__cause__ is failure
    assert len(http.kustomer.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 408, 409, 413, 422])
async def test_other_4xx_are_never_retried(http: HTTP, status: int) -> None:
    http.kustomer.answer(error(status))
    with pytest.raises(KustomerAPIError) as caught:
        await http.send(http.transport(), message())
    assert caught.value.status_code == status
    assert not isinstance(caught.value, RetriesExhaustedError)
    assert len(http.kustomer.requests) == 1
    assert http.time.slept == []


async def test_attempts_are_bounded_and_the_last_failure_is_kept(http: HTTP) -> None:
    http.kustomer.answer(*[error(503)] * 10)
    with pytest.raises(RetriesExhaustedError) as caught:
        await http.send(http.transport(retry=http.time.retry(attempts=3)), message())
    exhausted = caught.value
    assert len(http.kustomer.requests) == 3 == exhausted.attempts
    assert len(http.time.slept) == 2
    assert isinstance(exhausted.last_error, KustomerAPIError)
    assert exhausted.last_error.status_code == 503
    assert exhausted.__cause__ is exhausted.last_error
    assert isinstance(exhausted, TransportError)


async def test_a_timeout_to_the_end_is_reported_as_one(http: HTTP) -> None:
    http.kustomer.answer(*[httpx.ReadTimeout("timed out")] * 2)
    with pytest.raises(RetriesExhaustedError) as caught:
        await http.send(http.transport(retry=http.time.retry(attempts=2)), message())
    last = caught.value.last_error
    assert isinstance(last, KustomerTimeoutError)
    assert isinstance(last.__cause__, httpx.ReadTimeout)


async def test_one_attempt_means_no_retry(http: HTTP) -> None:
    http.kustomer.answer(error(500))
    with pytest.raises(RetriesExhaustedError) as caught:
        await http.send(http.transport(retry=http.time.retry(attempts=1)), message())
    assert caught.value.attempts == 1
    assert http.time.slept == []


async def test_a_429_asking_past_the_budget_raises_rate_limited_at_once(http: HTTP) -> None:
    # Kustomer's window is a minute; the caller learns when to come back, not "exhausted".
    http.kustomer.answer(error(429, {"Retry-After": "45"}))
    with pytest.raises(RateLimitedError) as caught:
        await http.send(http.transport(retry=http.time.retry(max_elapsed=30)), message())
    assert http.time.slept == []
    assert caught.value.retry_after == 45.0
    assert len(http.kustomer.requests) == 1


async def test_a_5xx_wait_past_the_budget_is_not_started(http: HTTP) -> None:
    http.kustomer.answer(error(503, {"Retry-After": "45"}))
    with pytest.raises(RetriesExhaustedError) as caught:
        await http.send(http.transport(retry=http.time.retry(max_elapsed=30)), message())
    assert http.time.slept == []
    assert caught.value.last_error.status_code == 503  # type: ignore[attr-defined]
    assert "max_elapsed=30" in str(caught.value)


async def test_a_503_waits_as_long_as_its_retry_after_asks(http: HTTP) -> None:
    http.time.jitter = 0.0  # a backoff would sleep 0: the 3 s below is the server's
    http.kustomer.answer(error(503, {"Retry-After": "3"}))
    await http.send(http.transport(), message())
    assert http.time.slept == [3.0]


@pytest.fixture
def away_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time 5 h behind UTC, so a date read as local time would be off by 5 h."""
    monkeypatch.setenv("TZ", "EST5")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("away_from_utc")
async def test_a_retry_after_date_in_minus_0000_is_read_as_utc(http: HTTP) -> None:
    when = email.utils.formatdate(NOW + 7)  # "..., 15 Jan 2027 08:00:07 -0000"
    assert when.endswith("-0000")
    http.kustomer.answer(error(429, {"Retry-After": when}))
    await http.send(http.transport(), message())
    assert http.time.slept == [7.0]


async def test_waits_add_up_to_the_budget_at_most(http: HTTP) -> None:
    http.time.jitter = 1.0
    http.kustomer.answer(*[error(500)] * 10)
    retry = http.time.retry(attempts=10, backoff=4.0, max_backoff=4.0, max_elapsed=10)
    with pytest.raises(RetriesExhaustedError):
        await http.send(http.transport(retry=retry), message())
    assert http.time.slept == [4.0, 4.0]
    assert sum(http.time.slept) <= 10


async def test_every_attempt_of_a_message_carries_the_same_idempotency_key(http: HTTP) -> None:
    http.kustomer.answer(
        error(500), httpx.ConnectError("refused"), error(429, {"Retry-After": "1"})
    )
    transport = http.transport()
    await http.send(transport, message())
    await http.send(transport, message())
    keys = [request.headers["idempotency-key"] for request in http.kustomer.requests]
    assert len(keys) == 5
    assert len(set(keys[:4])) == 1
    assert keys[4] != keys[0]  # a plain message sent twice is two messages


async def test_a_resent_state_changing_message_carries_the_same_key(http: HTTP) -> None:
    transport = http.transport(retry=http.time.retry(attempts=1))
    conv = http.conversation(transport)
    await conv.start_assistant(init_response())
    http.kustomer.answer(error(503))
    with pytest.raises(RetriesExhaustedError):
        await conv.send_message("Hi")  # the first reply: it moves the conversation
    await conv.send_message("Hi")  # the user's resend, from the same state
    await conv.send_message("thanks")  # a plain reply: changes nothing
    await conv.send_message("thanks")
    first, resent, plain, again = (r.headers["idempotency-key"] for r in http.kustomer.requests)
    assert resent == first
    assert len({first, plain, again}) == 3
    assert all(len(key) == 32 for key in (first, plain, again))


def test_the_default_key_follows_the_delivery_and_the_message() -> None:
    def key(**fields: Any) -> str:
        return default_idempotency_key(message(**fields))

    assert key(delivery_scope="conv_1@3") == key(delivery_scope="conv_1@3")
    assert key(delivery_scope="conv_1@3") != key(delivery_scope="conv_1@4")
    assert key(delivery_scope="conv_1@3") != key(delivery_scope="conv_1@3", body="Other")
    one = [Attachment.from_bytes(b"%PDF-1", "a.pdf")]
    other = [Attachment.from_bytes(b"%PDF-2", "a.pdf")]  # same name, type and size
    assert key(delivery_scope="s", attachments=one) != key(delivery_scope="s", attachments=other)
    assert key() != key()


async def test_the_delivery_scope_is_never_sent(http: HTTP) -> None:
    await http.send(http.transport(), message(delivery_scope="conv_1@7"))
    assert "conv_1@7" not in http.kustomer.requests[0].content.decode()
    assert "deliveryScope" not in http.kustomer.json()


async def test_the_idempotency_key_can_come_from_the_caller(http: HTTP) -> None:
    transport = http.transport(idempotency_key=lambda m: f"client-{m.conversation_id}-1")
    await http.send(transport, message())
    assert http.kustomer.requests[0].headers["idempotency-key"] == "client-conv_1-1"


@pytest.mark.parametrize(
    "options",
    [{"attempts": 0}, {"attempts": 1.5}, {"max_elapsed": -1}, {"backoff": "1"}],
    ids=str,
)
def test_a_retry_policy_that_makes_no_sense_is_refused(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError) as caught:
        Retry(**options)
    assert caught.value.field == next(iter(options))


async def test_each_retry_is_logged_without_text_or_secrets(http: HTTP) -> None:
    http.kustomer.answer(error(503), httpx.ConnectError("refused"))
    with capture_logs() as logs:
        await http.send(http.transport(), message())
    retries = [log for log in logs if log["event"] == "http_retry"]
    assert [(log["attempt"], log["status"], log["error"]) for log in retries] == [
        (1, 503, "KustomerAPIError"),
        (2, None, "KustomerConnectionError"),
    ]
    assert retries[0]["conversation_id"] == "conv_1"
    assert retries[0]["path"] == "/v2.1/chat/messages"


# --- errors -----------------------------------------------------------------------------------


async def test_kustomers_usual_error_body_is_parsed(http: HTTP) -> None:
    body = {"errors": [{"code": "bad_request", "message": "body is too long", "meta": {"max": 1}}]}
    http.kustomer.answer(error(400, body=body))
    with pytest.raises(KustomerAPIError) as caught:
        await http.send(http.transport(), message())
    [detail] = caught.value.errors
    assert (detail.code, detail.message, detail.meta) == (
        "bad_request",
        "body is too long",
        {"max": 1},
    )
    assert "400 Bad Request" in str(caught.value)
    assert "bad_request: body is too long" in str(caught.value)
    assert (caught.value.method, caught.value.path) == ("POST", "/v2.1/chat/messages")


async def test_the_json_api_error_body_is_parsed(http: HTTP) -> None:
    body = {
        "errors": [
            {
                "status": 422,
                "code": "invalid",
                "title": "Invalid attribute",
                "detail": "conversationId is unknown",
                "source": {"pointer": "/conversationId"},
            }
        ]
    }
    http.kustomer.answer(error(422, body=body))
    with pytest.raises(KustomerAPIError) as caught:
        await http.send(http.transport(), message())
    [detail] = caught.value.errors
    assert (detail.status, detail.code, detail.title) == ("422", "invalid", "Invalid attribute")
    assert detail.detail == "conversationId is unknown"
    assert detail.source == {"pointer": "/conversationId"}
    assert "invalid: conversationId is unknown" in str(caught.value)


async def test_a_single_json_api_error_object_is_parsed(http: HTTP) -> None:
    http.kustomer.answer(error(403, body={"status": 403, "code": "forbidden", "title": "Nope"}))
    with pytest.raises(KustomerAPIError) as caught:
        await http.send(http.transport(), message())
    assert [(e.code, e.text) for e in caught.value.errors] == [("forbidden", "Nope")]


@pytest.mark.parametrize(
    "answer",
    [
        lambda: httpx.Response(400, text="<html>Bad gateway</html>"),
        lambda: httpx.Response(400, json=[1, 2]),
    ],
    ids=["html", "a-list"],
)
async def test_an_error_without_a_kustomer_body_still_has_its_status(
    http: HTTP, answer: Callable[[], httpx.Response]
) -> None:
    http.kustomer.answer(answer())
    with pytest.raises(KustomerAPIError) as caught:
        await http.send(http.transport(), message())
    assert (caught.value.status_code, caught.value.errors) == (400, ())


async def test_a_429_raises_rate_limited_with_the_wait(http: HTTP) -> None:
    http.kustomer.answer(error(429, {"x-ratelimit-reset": "90"}))
    with pytest.raises(RetriesExhaustedError) as caught:
        await http.send(http.transport(retry=http.time.retry(attempts=1)), message())
    limited = caught.value.last_error
    assert isinstance(limited, RateLimitedError)
    assert (limited.status_code, limited.retry_after) == (429, 90.0)


# --- secrets ----------------------------------------------------------------------------------


def chain_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


async def test_the_api_key_is_not_in_the_repr(http: HTTP) -> None:
    transport = http.transport()
    assert KEY not in repr(transport)
    assert KEY not in str(transport)
    assert "[redacted]" in repr(transport)
    # nor in the repr of anything it holds
    assert KEY not in repr(vars(transport))


@pytest.mark.parametrize(
    "answers",
    [
        [error(401, body={"errors": [{"code": "unauthorized", "message": f"bad key {KEY}"}]})],
        [error(500, body={"errors": [{"code": "x", "message": f"Bearer {KEY}"}]})] * 2,
        [httpx.ConnectError(f"refused while sending Bearer {KEY}")] * 2,
        [httpx.ReadTimeout("timed out")] * 2,
    ],
    ids=["4xx-echoing-the-key", "5xx-echoing-the-key", "connection-error", "timeout"],
)
async def test_the_api_key_is_in_no_error_nor_its_chain_nor_any_log(
    http: HTTP, answers: list[Answer], caplog: pytest.LogCaptureFixture
) -> None:
    http.kustomer.answer(*answers)
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs, pytest.raises(TransportError) as caught:
        await http.send(http.transport(retry=http.time.retry(attempts=2)), message())
    assert KEY not in chain_text(caught.value)
    assert KEY not in repr(caught.value)
    if isinstance(caught.value, RetriesExhaustedError):
        assert KEY not in repr(caught.value.last_error)
    assert KEY not in caplog.text
    assert KEY not in repr(logs)


def echo_key(request: httpx.Request) -> str:
    return request.headers["authorization"]


@pytest.mark.parametrize(
    "answer",
    [
        lambda r: httpx.Response(
            400,
            json={
                "errors": [
                    {
                        "code": "bad",
                        "message": "m",
                        "source": {"pointer": echo_key(r), "nested": [{"at": echo_key(r)}]},
                        "meta": {"echo": echo_key(r), echo_key(r): 1},
                    }
                ]
            },
        ),
        lambda r: httpx.Response(201, text="oops " + echo_key(r)),
        lambda r: httpx.Response(
            201,
            json={
                "data": {
                    "id": "m1",
                    "attributes": {
                        "createdAt": echo_key(r),
                        "direction": "in",
                        "attachments": echo_key(r),
                    },
                }
            },
        ),
        lambda r: httpx.Response(201, json={"data": {"id": 7, "attributes": [echo_key(r)]}}),
    ],
    ids=["error-source-and-meta", "non-json-success", "mistyped-fields", "odd-json-api"],
)
async def test_an_answer_echoing_the_key_anywhere_does_not_bring_it_into_the_error(
    http: HTTP, answer: Callable[[httpx.Request], httpx.Response]
) -> None:
    http.kustomer.answer(answer)
    with pytest.raises(TransportError) as caught:
        await http.send(http.transport(), message())
    assert KEY not in chain_text(caught.value)
    assert KEY not in repr(caught.value)
    for detail in getattr(caught.value, "errors", ()):
        assert KEY not in repr(detail) + repr(detail.source) + repr(detail.meta)
    cause = caught.value.__cause__
    assert KEY not in repr(getattr(cause, "doc", ""))  # a JSON decode error keeps the body


async def test_the_error_details_keep_the_shape_of_source_and_meta(http: HTTP) -> None:
    body = {"errors": [{"code": "bad", "source": {"pointer": "/body"}, "meta": {"n": [1, 2]}}]}
    http.kustomer.answer(error(400, body=body))
    with pytest.raises(KustomerAPIError) as caught:
        await http.send(http.transport(), message())
    [detail] = caught.value.errors
    assert detail.source == {"pointer": "/body"}
    assert detail.meta == {"n": [1, 2]}


@pytest.mark.parametrize(
    "client_options",
    [
        {"headers": {"Authorization": f"Bearer {KEY}"}},
        {"auth": ("user", KEY)},
        {"auth": "callable"},  # a callable auth sees every request it is given
    ],
    ids=["default-headers", "basic-auth", "callable-auth"],
)
async def test_no_key_goes_to_the_storage_url_whatever_the_client_adds(
    http: HTTP, client_options: dict[str, Any]
) -> None:
    def stamp(request: httpx.Request) -> httpx.Request:
        request.headers["Authorization"] = f"Bearer {KEY}"
        return request

    if client_options.get("auth") == "callable":
        client_options = {"auth": stamp}
    mock = httpx.MockTransport(http.kustomer)
    client: httpx.Client | httpx.AsyncClient = (
        httpx.Client(transport=mock, **client_options)
        if http.mode == "sync"
        else httpx.AsyncClient(transport=mock, **client_options)
    )
    upload_answers(http.kustomer, 1)
    try:
        await http.send(http.transport(client=client), message(attachments=[one_png()]))
    finally:
        if isinstance(client, httpx.Client):
            client.close()
        else:
            await client.aclose()
    announce, upload, posted = http.kustomer.requests
    assert upload.url.host == "uploads.example.test"
    assert "authorization" not in upload.headers
    assert KEY not in repr(upload.headers.raw)
    assert "authorization" in announce.headers
    assert "authorization" in posted.headers


async def test_the_api_key_is_not_logged_through_a_flow_either(
    http: HTTP, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    http.kustomer.answer(error(500), error(400))
    conv = http.conversation(http.transport())
    with capture_logs() as logs, pytest.raises(KustomerAPIError) as caught:
        await conv.send_message("Hi")
    assert KEY not in caplog.text + repr(logs) + chain_text(caught.value)


@pytest.mark.parametrize("bad", ["", "two words", "line\nbreak", None, 42])
async def test_an_unusable_api_key_is_refused_without_being_quoted(http: HTTP, bad: Any) -> None:
    with pytest.raises(InvalidInputError) as caught:
        http.transport(api_key=bad)
    assert caught.value.field == "api_key"
    if isinstance(bad, str) and bad:
        assert bad not in str(caught.value)


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        "https://acme.api.kustomerapp.com",
        "https://api.prod2.kustomerapp.com/",
        "http://127.0.0.1:8000",
        "http://127.9.9.9",
        "http://localhost:5000",
        "http://[::1]:8080",
    ],
)
async def test_https_and_loopback_http_are_accepted(http: HTTP, base_url: str) -> None:
    transport = http.transport(base_url=base_url)
    await http.send(transport, message())
    assert str(http.kustomer.requests[0].url) == base_url.rstrip("/") + "/v2.1/chat/messages"


@pytest.mark.parametrize(
    "base_url",
    [
        "http://acme.api.kustomerapp.com",
        "http://10.0.0.7:8000",
        "http://[2001:db8::1]",
        "http://localhost.example.com",
        "ftp://acme.api.kustomerapp.com",
        "acme.api.kustomerapp.com",
        "https://user:pass@acme.api.kustomerapp.com",
        "https://acme.api.kustomerapp.com/?key=1",
        42,
    ],
)
async def test_plain_http_and_non_urls_are_refused(http: HTTP, base_url: Any) -> None:
    with pytest.raises(InvalidInputError) as caught:
        http.transport(base_url=base_url)
    assert caught.value.field == "base_url"
    assert http.kustomer.requests == []


async def test_plain_http_refusal_says_why(http: HTTP) -> None:
    with pytest.raises(InvalidInputError, match=r"clear text: use https://"):
        http.transport(base_url="http://acme.api.kustomerapp.com")


async def test_a_client_of_the_other_kind_is_refused_naming_the_right_transport(
    http: HTTP,
) -> None:
    other: httpx.Client | httpx.AsyncClient
    if http.mode == "sync":
        other, twin = httpx.AsyncClient(), "AsyncHTTPTransport"
    else:
        other, twin = httpx.Client(), "HTTPTransport"
    try:
        with pytest.raises(ConfigurationError, match=f"use {twin}"):
            http.transport(client=other)
    finally:
        if isinstance(other, httpx.Client):
            other.close()
        else:
            await other.aclose()


async def test_a_flow_of_the_other_kind_names_the_twin(http: HTTP) -> None:
    transport = http.transport()
    if isinstance(transport, HTTPTransport):
        with pytest.raises(ConfigurationError, match="use AsyncHTTPTransport with AsyncFlow"):
            AsyncFlow(transport)  # type: ignore[arg-type]
    else:
        with pytest.raises(ConfigurationError, match="use HTTPTransport with Flow"):
            Flow(transport)  # type: ignore[arg-type]


async def test_a_callers_client_is_used_and_left_open(http: HTTP) -> None:
    transport = http.transport()
    assert transport.client is http.client
    await http.send(transport, message())
    await http.close(transport)
    assert not http.closed
    await http.send(http.transport(), message())
    assert len(http.kustomer.requests) == 2


async def test_a_client_the_transport_opened_is_closed_with_it(http: HTTP) -> None:
    transport = http.transport(client=None)
    assert transport.client is not http.client
    assert transport.client.timeout == DEFAULT_TIMEOUT
    await http.close(transport)
    assert transport.client.is_closed


async def test_the_context_managers_close_only_what_they_opened(http: HTTP) -> None:
    own = http.transport(client=None)
    callers = http.transport()
    if isinstance(own, HTTPTransport) and isinstance(callers, HTTPTransport):
        with own, callers:
            pass
    elif isinstance(own, AsyncHTTPTransport) and isinstance(callers, AsyncHTTPTransport):
        async with own, callers:
            pass
    assert own.client.is_closed
    assert not http.closed


async def test_timeouts_are_on_by_default_and_settable(http: HTTP) -> None:
    await http.send(http.transport(), message())
    await http.send(http.transport(timeout=2.5), message())
    first, second = (request.extensions["timeout"] for request in http.kustomer.requests)
    # A caller's client keeps its own timeout (httpx's default is on, 5 s) unless one is given.
    assert first == httpx.Timeout(5.0).as_dict()
    assert second == httpx.Timeout(2.5).as_dict()
    assert DEFAULT_TIMEOUT.connect is not None
    assert DEFAULT_TIMEOUT.read is not None


async def test_each_attempt_is_cut_to_the_time_left_of_the_send(http: HTTP) -> None:
    http.time.jitter = 1.0
    http.kustomer.answer(error(500))
    retry = http.time.retry(backoff=4.0, max_elapsed=6.0)
    await http.send(http.transport(timeout=5.0, retry=retry), message())
    first, second = (request.extensions["timeout"] for request in http.kustomer.requests)
    assert first == httpx.Timeout(5.0).as_dict()  # 6 s left: the configured 5 s holds
    assert second == httpx.Timeout(2.0).as_dict()  # 4 s slept: 2 s left


async def test_a_budget_spent_before_a_request_sends_nothing_more(http: HTTP) -> None:
    def slow_announce(request: httpx.Request) -> httpx.Response:
        http.time.monotonic += 10.0  # the announce took all of the budget
        return httpx.Response(
            201,
            json={"data": {"id": "att_0"}, "meta": {"upload": {"url": "https://up.test/0"}}},
        )

    http.kustomer.answer(slow_announce)
    retry = http.time.retry(max_elapsed=5.0)
    with pytest.raises(RetriesExhaustedError) as caught:
        await http.send(http.transport(retry=retry), message(attachments=[one_png()]))
    assert isinstance(caught.value.last_error, KustomerTimeoutError)
    assert "max_elapsed=5" in str(caught.value)
    assert len(http.kustomer.requests) == 1


# --- attachments ------------------------------------------------------------------------------

MB = 1_000_000


def upload_answers(kustomer: FakeKustomer, count: int) -> None:
    """Announce answers (with where to upload) and upload answers for ``count`` files."""
    for index in range(count):
        kustomer.answer(
            httpx.Response(
                201,
                json={
                    "data": {"type": "attachment", "id": f"att_{index}", "attributes": {}},
                    "meta": {
                        "upload": {
                            "url": f"https://uploads.example.test/bucket/{index}",
                            "fields": {"key": f"uploads/{index}", "policy": "p0"},
                        }
                    },
                },
            ),
            httpx.Response(204),
        )


async def test_files_are_announced_uploaded_then_referenced_in_the_message(
    http: HTTP, tmp_path: Path
) -> None:
    picture = tmp_path / "receipt.png"
    picture.write_bytes(b"\x89PNG" + b"0" * 96)
    files = [
        Attachment.from_path(picture),
        Attachment.from_bytes(b"%PDF-1.7 ...", "invoice.pdf"),
    ]
    upload_answers(http.kustomer, 2)
    await http.send(http.transport(), message(attachments=files))
    announce, upload, _, _, posted = http.kustomer.requests
    assert str(announce.url) == BASE + "/v2.1/chat/attachments"
    assert announce.headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(announce.content) == {
        "conversationId": "conv_1",
        "name": "receipt.png",
        "contentType": "image/png",
        "contentLength": 100,
    }
    assert str(upload.url) == "https://uploads.example.test/bucket/0"
    assert "authorization" not in upload.headers
    # Both carry a key derived from the message's, so a retried announce is recognised.
    key = posted.headers["idempotency-key"]
    assert announce.headers["idempotency-key"] == upload.headers["idempotency-key"] == f"{key}:att0"
    assert http.kustomer.requests[2].headers["idempotency-key"] == f"{key}:att1"
    assert upload.headers["content-type"].startswith("multipart/form-data")
    form = upload.content
    # the storage fields come before the file, and the file is the bytes given
    assert form.index(b'name="key"') < form.index(b'name="policy"') < form.index(b'name="file"')
    assert b"uploads/0" in form
    assert b"\x89PNG" + b"0" * 96 in form
    assert json.loads(posted.content)["attachments"] == [
        {"id": "att_0", "name": "receipt.png", "contentType": "image/png", "contentLength": 100},
        {
            "id": "att_1",
            "name": "invoice.pdf",
            "contentType": "application/pdf",
            "contentLength": 12,
        },
    ]


async def test_an_upload_is_retried_like_any_request(http: HTTP) -> None:
    upload_answers(http.kustomer, 1)
    http.kustomer.script.insert(1, error(503))
    await http.send(http.transport(), message(attachments=[Attachment.from_bytes(b"v", "a.mp4")]))
    assert [str(r.url).rsplit("/", 1)[-1] for r in http.kustomer.requests] == [
        "attachments",
        "0",
        "0",
        "messages",
    ]


@pytest.mark.parametrize(
    ("files", "name", "limit"),
    [
        ([Attachment.from_bytes(b"hi", "notes.txt")], "notes.txt", "types"),
        ([Attachment.from_bytes(b"PK", "report.docx")], "report.docx", "types"),
        ([Attachment.from_bytes(b"0" * (5 * MB + 1), "huge.png")], "huge.png", "5 MB a file"),
        (
            [
                Attachment.from_bytes(b"0" * (5 * MB), "a.jpg"),
                Attachment.from_bytes(b"0" * (4 * MB), "b.mp4"),
                Attachment.from_bytes(b"0" * (MB // 2 + 1), "c.pdf"),
            ],
            "c.pdf",
            "9.5 MB a message",
        ),
    ],
    ids=["text", "docx", "file-too-big", "message-too-big"],
)
async def test_a_file_breaking_a_rule_is_refused_before_any_request(
    http: HTTP, files: list[Attachment], name: str, limit: str
) -> None:
    with pytest.raises(AttachmentError) as caught:
        await http.send(http.transport(), message(attachments=files))
    refused = caught.value
    assert (refused.name, isinstance(refused, InvalidInputError)) == (name, True)
    assert refused.limit.startswith(limit)
    assert name in str(refused)
    assert limit in str(refused)
    assert refused.field == f"attachments.{len(files) - 1}"
    assert http.kustomer.requests == []


async def test_files_at_the_limits_pass(http: HTTP) -> None:
    files = [
        Attachment.from_bytes(b"0" * (5 * MB), "a.jpg"),
        Attachment.from_bytes(b"0" * (4 * MB + MB // 2), "b.mov"),
    ]
    upload_answers(http.kustomer, 2)
    await http.send(http.transport(), message(attachments=files))
    assert len(http.kustomer.requests) == 5


async def test_attachment_limits_are_configurable(http: HTTP) -> None:
    limits = AttachmentLimits(max_file_bytes=10, types=("text/plain",))
    transport = http.transport(attachment_limits=limits)
    with pytest.raises(AttachmentError, match="10 bytes"):
        await http.send(transport, message(attachments=[Attachment.from_bytes(b"0" * 11, "a.txt")]))
    upload_answers(http.kustomer, 1)
    await http.send(transport, message(attachments=[Attachment.from_bytes(b"hello", "a.txt")]))
    assert len(http.kustomer.requests) == 3


@pytest.mark.parametrize(
    "url", ["http://uploads.example.test/x", "file:///etc/passwd", "not a url at all"]
)
async def test_an_upload_url_that_is_not_https_is_refused(http: HTTP, url: str) -> None:
    http.kustomer.answer(
        httpx.Response(201, json={"data": {"id": "att_0"}, "meta": {"upload": {"url": url}}})
    )
    with pytest.raises(UnexpectedResponseError):
        await http.send(http.transport(), message(attachments=[one_png()]))
    assert len(http.kustomer.requests) == 1


async def test_an_announce_without_an_upload_target_is_an_error(http: HTTP) -> None:
    http.kustomer.answer(httpx.Response(201, json={"data": {"id": "att_0"}}))
    with pytest.raises(UnexpectedResponseError):
        await http.send(http.transport(), message(attachments=[one_png()]))


def one_png() -> Attachment:
    return Attachment.from_bytes(b"1", "a.png")


def test_attachments_come_from_paths_bytes_and_binary_files(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpeg"
    path.write_bytes(b"jpeg bytes")
    with path.open("rb") as opened:
        from_open_file = Attachment.from_file(opened)
    made = [
        Attachment.from_path(path),
        Attachment.from_path(str(path), content_type="image/jpeg"),
        Attachment.from_bytes(b"jpeg bytes", "photo.jpeg"),
        from_open_file,
        Attachment.from_file(io.BytesIO(b"jpeg bytes"), name="photo.jpeg"),
    ]
    assert {(a.name, a.content_type, a.content) for a in made} == {
        ("photo.jpeg", "image/jpeg", b"jpeg bytes")
    }
    assert made[0].to_wire() == {"file": {"name": "photo.jpeg", "type": "image/jpeg", "size": 10}}


def test_a_huge_path_is_refused_from_its_size_without_being_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    huge = tmp_path / "film.mp4"
    with huge.open("wb") as sparse:
        sparse.truncate(1_000_000_000)  # 1 GB on paper, nothing on disk

    def no_reading(self: Path) -> bytes:
        raise AssertionError("the file was read")

    monkeypatch.setattr(Path, "read_bytes", no_reading)
    with pytest.raises(AttachmentError) as caught:
        Attachment.from_path(huge)
    assert caught.value.name == "film.mp4"
    assert "1000000000 bytes" in str(caught.value)
    small = tmp_path / "small.mp4"
    small.write_bytes(b"0" * 10)
    with pytest.raises(AttachmentError):
        Attachment.from_path(small, max_bytes=5)


def test_a_file_object_without_a_name_or_in_text_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as caught:
        Attachment.from_file(io.BytesIO(b"x"))
    assert caught.value.field == "name"
    with pytest.raises(InvalidInputError) as caught:
        Attachment.from_file(io.StringIO("x"), name="a.png")  # type: ignore[arg-type]
    assert caught.value.field == "file"


def test_an_unknown_extension_is_sent_as_octet_stream_and_refused_by_type() -> None:
    assert Attachment.from_bytes(b"x", "blob.unknownext").content_type == (
        "application/octet-stream"
    )


# --- a whole dialog through Flow --------------------------------------------------------------


async def test_a_dialog_through_the_flow_over_http(http: HTTP) -> None:
    transport = http.transport(customer_id="cust_1")
    conv = http.conversation(transport)
    greeting_ = greeting(quick_replies("How can I help?", ("Billing", "billing")))
    await conv.start_assistant(init_response(greeting_))

    http.kustomer.answer(created("msg_1"), created("msg_2"), created("msg_3"))
    first = await conv.choose("Billing")
    await conv.send_message("It is about an invoice")
    await conv.end_assistant()
    await conv.send_message("Hello, agent?")

    assert first.message_id == "msg_1"
    paths = [request.url.path for request in http.kustomer.requests]
    assert paths == [
        "/v2.1/chat/assistant/messages",
        "/v2.1/chat/assistant/messages",
        "/v2.1/chat/messages",
    ]
    bodies = [http.kustomer.json(index) for index in range(3)]
    assert bodies[0]["initAssistantPayload"]["assistant"] == "asst_1"
    assert (bodies[0]["body"], bodies[0]["payload"]) == ("Billing", "billing")
    assert "initAssistantPayload" not in bodies[1]
    assert [body["isInAssistantMode"] for body in bodies] == [True, True, False]
    assert {body["customerId"] for body in bodies} == {"cust_1"}
    assert await conv.state == State.ENDED


async def test_a_failed_first_send_leaves_the_state_so_the_retry_carries_the_payload(
    http: HTTP,
) -> None:
    transport = http.transport(retry=http.time.retry(attempts=2))
    conv = http.conversation(transport)
    await conv.start_assistant(init_response())
    http.kustomer.answer(error(503), error(503))
    with pytest.raises(RetriesExhaustedError):
        await conv.send_message("Hi")
    assert (await conv.snapshot()).awaiting_first_reply
    http.kustomer.answer(error(400))
    with pytest.raises(KustomerAPIError):
        await conv.send_message("Hi")
    assert (await conv.snapshot()).awaiting_first_reply

    await conv.send_message("Hi")
    bodies = [http.kustomer.json(index) for index in range(4)]
    assert all(body["initAssistantPayload"]["assistant"] == "asst_1" for body in bodies)
    assert not (await conv.snapshot()).awaiting_first_reply
    await conv.send_message("And then?")
    assert "initAssistantPayload" not in http.kustomer.json()


async def test_a_refused_attachment_through_the_flow_sends_nothing_and_moves_nothing(
    http: HTTP,
) -> None:
    conv = http.conversation(http.transport())
    await conv.start_assistant(init_response())
    before = await conv.snapshot()
    with pytest.raises(AttachmentError):
        await conv.send_message("See file", attachments=[Attachment.from_bytes(b"x", "a.exe")])
    assert http.kustomer.requests == []
    assert await conv.snapshot() == before


class TricklingServer:
    """A loopback server that answers 200 one byte every ``pause`` seconds (each read in time)."""

    def __init__(self, body: bytes, pause: float = 0.1, gzipped: bool = False) -> None:
        self.body, self.pause, self.gzipped = body, pause, gzipped
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)  # accept() ends even if no client ever comes
        self.port = self.listener.getsockname()[1]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            connection, _ = self.listener.accept()
        except OSError:
            return  # stopped before anyone connected
        with connection:
            connection.settimeout(10)
            read_request(connection)
            payload = gzip.compress(self.body) if self.gzipped else self.body
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            if self.gzipped:
                head += b"Content-Encoding: gzip\r\n"
            head += b"Content-Length: %d\r\n\r\n" % len(payload)
            try:
                connection.sendall(head)
                for byte in payload:
                    if self.stopped.wait(self.pause):
                        return
                    connection.sendall(bytes([byte]))
                connection.shutdown(socket.SHUT_WR)
                connection.recv(1)  # until the client closes: no reset under its last read
            except OSError:
                return  # the client gave up

    def stop(self) -> None:
        self.stopped.set()
        self.listener.close()
        self.thread.join(10)


def read_request(connection: socket.socket) -> None:
    """Read one whole request (head and Content-Length body), so closing resets nothing."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            return
        body += chunk


def created_body() -> bytes:
    return created().content  # type: ignore[no-any-return]


async def send_once(mode: str, port: int, **options: Any) -> SentMessage:
    message = SendMessageOptions(conversation_id="conv_1", body="Hi")
    if mode == "sync":
        blocking = HTTPTransport(f"http://127.0.0.1:{port}", KEY, **options)
        try:
            return await asyncio.to_thread(blocking.send, message)
        finally:
            blocking.close()
    async with AsyncHTTPTransport(f"http://127.0.0.1:{port}", KEY, **options) as transport:
        return await transport.asend(message)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_trickling_server_cannot_hold_a_send_past_max_elapsed(mode: str) -> None:
    # Each byte comes well within the read timeout; only the send's deadline can stop it.
    server = TricklingServer(created_body(), pause=0.1)  # about 20 s for the whole answer
    retry = Retry(attempts=1, max_elapsed=1.0)
    started = time.monotonic()
    try:
        with pytest.raises(RetriesExhaustedError):
            await send_once(mode, server.port, retry=retry, timeout=0.5)
        assert time.monotonic() - started < 10  # not the trickle's end (generous bound)
    finally:
        server.stop()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_streamed_answer_is_decoded_as_sent(mode: str) -> None:
    # The blocking transport reads the body itself: a gzip-encoded answer still decodes.
    server = TricklingServer(created_body(), pause=0.0, gzipped=True)
    try:
        sent = await send_once(mode, server.port)
    finally:
        server.stop()
    assert sent.message_id == "msg_1"


@pytest.mark.parametrize("root", ["https://acme.api.kustomerapp.com/v2.1", "https://a.test/v2.1/"])
def test_a_base_url_ending_in_the_version_is_refused_rather_than_doubled(root: str) -> None:
    from assistant_flow import InvalidInputError

    with pytest.raises(InvalidInputError, match=r"/v2\.1") as caught:
        HTTPTransport(root, api_key="k")
    assert caught.value.field == "base_url"
