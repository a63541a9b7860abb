"""The stub as a plain ASGI callable: routing, body reading, long polls, delays, dropped links.

No framework: a request costs a dict look-up for its route and one JSON parse, so that the stub
is never what a benchmark of the client measures. The answers themselves come from
:class:`~assistant_flow.testing._state.StubState`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from .._exceptions import InvalidInputError
from ._answers import Answer, json_answer, rejected
from ._faults import Fault
from ._state import Request, StubState
from ._uploads import MAX_MESSAGE

__all__ = ["StubApp"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_MAX_BODY = MAX_MESSAGE + 1024 * 1024

# (method, path) -> route, for the routes without a parameter.
_FIXED = {
    ("POST", "/v2.1/chat/sessions"): "sessions",
    ("POST", "/v2.1/chat/assistant/messages"): "assistant_messages",
    ("POST", "/v2.1/chat/messages"): "messages",
    ("POST", "/v2.1/chat/attachments"): "attachments",
}


class DroppedConnection(Exception):
    """Raised inside the app to make the server close a connection mid-answer (a fault)."""


class _QuietDrops(logging.Filter):
    """Keeps the server's log free of the tracebacks of deliberately dropped connections."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


_QUIET = _QuietDrops()


def quiet_dropped_connections() -> None:
    """Install the filter on uvicorn's error logger (once per process)."""
    logger = logging.getLogger("uvicorn.error")
    if _QUIET not in logger.filters:
        logger.addFilter(_QUIET)


# (method, fixed parts, index of the parameter, parameter name) for routes with one parameter.
_WITH_PARAMETER = (
    ("GET", ("v2.1", "chat", "sessions", None, "events"), "conversation", "events"),
    ("GET", ("v2.1", "chat", "assistants", None, "init"), "assistant", "init"),
    ("POST", ("_stub", "uploads", None), "attachment", "upload"),
)


def _match(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    route = _FIXED.get((method, path))
    if route is not None:
        return route, {}
    parts = path.strip("/").split("/")
    for verb, pattern, name, found in _WITH_PARAMETER:
        if verb != method or len(pattern) != len(parts):
            continue
        index = pattern.index(None)
        fixed = all(want is None or want == got for want, got in zip(pattern, parts, strict=True))
        if fixed and parts[index]:
            return found, {name: parts[index]}
    return None


class StubApp:
    """The ASGI application of :class:`~assistant_flow.testing.KustomerStub`."""

    def __init__(self, state: StubState) -> None:
        self.state = state
        self._waiters: dict[str, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._closing = False
        state.notify = self._notify

    # --- waking long polls --------------------------------------------------------------------

    def _notify(self, conversation_id: str) -> None:
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._wake(conversation_id)
        else:
            loop.call_soon_threadsafe(self._wake, conversation_id)

    def _wake(self, conversation_id: str) -> None:
        event = self._waiters.pop(conversation_id, None)
        if event is not None:
            event.set()

    def wake_all(self) -> None:
        """End every long poll now, and answer later ones at once (the server is stopping)."""
        self._closing = True
        for conversation_id in list(self._waiters):
            self._wake(conversation_id)

    # --- ASGI ---------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one HTTP request."""
        if scope["type"] != "http":
            return
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
        method: str = scope["method"]
        path: str = scope["path"]
        body = await _read_body(receive)
        if body is None:
            await _send(send, rejected(413, "payload_too_large", "the request body is too large"))
            return
        if path.startswith("/_stub/") and not path.startswith("/_stub/uploads/"):
            await _send(send, self._control(method, path, body))
            return
        matched = _match(method, path)
        if matched is None:
            await _send(send, rejected(404, "not_found", f"no route {method} {path}"))
            return
        route, params = matched
        request = _request(scope, body)
        entry, fault = self.state.begin(route, request)
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(fault.delay)
        elif fault is not None and fault.kind in ("429", "500"):
            answer = self.state.fault_answer(fault)
            self.state.finish(entry, answer.status)
            await _send(send, answer)
            return
        elif fault is not None and not fault.after_processing:
            self.state.finish(entry, "dropped")
            await _drop(send, 201)
        answer = self.state.process(route, params, request)
        if any(name == b"idempotent-replayed" for name, _ in answer.headers):
            entry["replayed"] = True
        if fault is not None and fault.kind == "drop":
            entry["processed"] = answer.status
            self.state.finish(entry, "dropped")
            await _drop(send, answer.status)
        if answer.poll is not None and answer.poll[2] > 0:
            answer = await self._long_poll(*answer.poll)
        self.state.finish(entry, answer.status)
        await _send(send, answer)

    async def _long_poll(self, conversation_id: str, after: int, wait: float) -> Answer:
        if self._closing:
            return self.state.events_answer(conversation_id, after)
        event = self._waiters.setdefault(conversation_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), wait)
        return self.state.events_answer(conversation_id, after)

    # --- control routes (no auth: the stub only listens on loopback) --------------------------

    def _control(self, method: str, path: str, body: bytes) -> Answer:
        state = self.state

        def emptied(clear: Callable[[], None]) -> Callable[[], Answer]:
            def answer() -> Answer:
                clear()
                return Answer(204)

            return answer

        simple: dict[tuple[str, str], Callable[[], Answer]] = {
            ("GET", "/_stub/health"): lambda: json_answer(200, {"ok": True}),
            ("GET", "/_stub/requests"): lambda: json_answer(
                200, {"requests": state.list_requests()}
            ),
            ("DELETE", "/_stub/requests"): emptied(state.clear_requests),
            ("GET", "/_stub/faults"): lambda: json_answer(200, {"faults": state.list_faults()}),
            ("DELETE", "/_stub/faults"): emptied(state.clear_faults),
            ("POST", "/_stub/reset"): emptied(state.reset),
            ("POST", "/_stub/faults"): lambda: self._add_faults(body),
        }
        handler = simple.get((method, path))
        if handler is not None:
            return handler()
        parts = path.strip("/").split("/")
        if method == "POST" and len(parts) == 4 and parts[1] == "sessions" and parts[3] == "agent":
            try:
                data = json.loads(body)
                state.agent_says(parts[2], str(data["body"]))
            except (ValueError, KeyError, TypeError):
                return rejected(400, "bad_request", 'send {"body": ...} for a known conversation')
            return Answer(204)
        return rejected(404, "not_found", f"no control route {method} {path}")

    def _add_faults(self, body: bytes) -> Answer:
        try:
            data = json.loads(body)
            items = data if isinstance(data, list) else [data]
            faults = [Fault.from_json(item) for item in items]
        except ValueError as error:
            field = error.field if isinstance(error, InvalidInputError) else "(body)"
            return rejected(400, "bad_request", str(error) or "not JSON", field)
        self.state.add_faults(faults)
        return json_answer(201, {"faults": self.state.list_faults()})


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks) if len(chunks) != 1 else chunks[0]


def _request(scope: Scope, body: bytes) -> Request:
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
    query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
    return Request(scope["method"], scope["path"], query, headers, body)


async def _send(send: Send, answer: Answer) -> None:
    headers = [*answer.headers, (b"content-length", str(len(answer.body)).encode())]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


async def _drop(send: Send, status: int) -> None:
    """Start an answer that promises a body, then give up: the server closes the connection."""
    headers = [(b"content-type", b"application/json"), (b"content-length", b"64")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b'{"data":', "more_body": True})
    raise DroppedConnection
