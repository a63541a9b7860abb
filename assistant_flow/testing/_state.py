"""The stub's memory and its answers to each route, with no I/O: the ASGI app drives it.

Everything a request changes (sessions, assistant runs, events, attachments, idempotency keys,
the rate-limit window, the request log, the faults) lives in one :class:`StubState`, guarded by
one lock, because the test thread reads and changes it while the server thread answers.
"""

from __future__ import annotations

import hmac
import json
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._answers import Answer, Rejected, json_answer, kustomer_time, rejected
from ._assistants import Assistant
from ._checks import bad, check_assistant_reply, check_fields, check_plain_message
from ._conversations import Conversation, assistant_sender, new_id
from ._faults import Fault
from ._uploads import Uploads

__all__ = ["MAX_WAIT", "Request", "StubState"]

MAX_WAIT = 30.0
"""The longest long poll, in seconds."""
_WINDOW = 60.0
_IDEMPOTENT = frozenset({"sessions", "assistant_messages", "messages", "attachments"})


@dataclass(slots=True)
class Request:
    """What the ASGI layer read from one request."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        """The body as JSON; a 400 naming the body when it is not."""
        try:
            return json.loads(self.body)
        except ValueError as error:
            raise bad("the request body must be JSON", "(body)") from error


class StubState:
    """Sessions, assistant runs and events; auth, rate limit, idempotency, faults, request log."""

    def __init__(
        self,
        *,
        api_key: str,
        assistants: Mapping[str, Assistant],
        strict: bool = True,
        rate_limit: int = 1000,
        faults: Iterable[Fault] = (),
        keep_requests: int = 10_000,
    ) -> None:
        self._api_key = api_key.encode()
        self.assistants = dict(assistants)
        self.strict = strict
        self.rate_limit = rate_limit
        self._initial_faults = [Fault.from_json(f.to_json()) for f in faults]
        self._lock = threading.Lock()
        self._keep_requests = keep_requests
        self.base_url = ""
        """Where the stub listens (set by the server once bound); upload URLs point there."""
        self.notify: Callable[[str], None] = lambda conversation_id: None
        """Called (under the lock) when a conversation gets a new event; the app wakes pollers."""
        self._clear()

    # --- control ------------------------------------------------------------------------------

    def _clear(self) -> None:
        self.conversations: dict[str, Conversation] = {}
        self.uploads = Uploads()
        self.faults: list[Fault] = [Fault.from_json(f.to_json()) for f in self._initial_faults]
        self.requests: deque[dict[str, Any]] = deque(maxlen=self._keep_requests)
        self._replies: OrderedDict[str, tuple[str, object, Answer]] = OrderedDict()
        self._window_start = 0.0
        self._window_count = 0

    def reset(self) -> None:
        """Forget every session, event, request and idempotency key; restore the initial faults."""
        with self._lock:
            forgotten = list(self.conversations)
            self._clear()
            for conversation_id in forgotten:  # long polls on them answer now (404)
                self.notify(conversation_id)

    def add_faults(self, faults: Iterable[Fault]) -> None:
        """Queue faults; the first one matching a request's route is used."""
        with self._lock:
            self.faults.extend(faults)

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self.faults.clear()

    def list_faults(self) -> list[dict[str, Any]]:
        """The queued faults, with the counts left."""
        with self._lock:
            return [fault.to_json() for fault in self.faults]

    def list_requests(self) -> list[dict[str, Any]]:
        """What the stub received, oldest first (Authorization left out)."""
        with self._lock:
            return [dict(entry) for entry in self.requests]

    def clear_requests(self) -> None:
        """Forget the request log."""
        with self._lock:
            self.requests.clear()

    def agent_says(self, conversation_id: str, body: str, *, agent: str = "agent_1") -> None:
        """An agent's reply, delivered as ``onMessageReceived`` (for after the hand-off)."""
        with self._lock:
            conversation = self.conversations.get(conversation_id)
            if conversation is None:
                raise KeyError(conversation_id)
            message = conversation.outbound({"templateType": "text", "body": body})
            message["sentBy"] = {"type": "user", "id": agent}
            self._emit(conversation, "onMessageReceived", message)

    # --- each request -------------------------------------------------------------------------

    def begin(self, route: str, request: Request) -> tuple[dict[str, Any], Fault | None]:
        """Log the request and take the fault that applies to it, if any.

        Like Kustomer, the stub checks the key first: a request it would refuse for auth
        takes no fault (the upload route, a signed storage URL, takes no auth).
        """
        headers = {k: v for k, v in request.headers.items() if k != "authorization"}
        entry: dict[str, Any] = {
            "route": route,
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "headers": headers,
            "body": _loggable(request),
            "status": None,
        }
        with self._lock:
            self.requests.append(entry)
            if route != "upload" and self._authorized(request.headers.get("authorization")):
                return entry, None
            for fault in self.faults:
                if fault.matches(route):
                    fault.count -= 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                    entry["fault"] = fault.kind
                    return entry, fault
        return entry, None

    def fault_answer(self, fault: Fault) -> Answer:
        """The answer of a 429 or 5xx fault."""
        if fault.kind == "429":
            answer = rejected(
                429, "too_many_requests", "rate limit exceeded (injected); retry after the reset"
            )
            answer.headers += [
                (b"x-ratelimit-limit", str(self.rate_limit).encode()),
                (b"x-ratelimit-remaining", b"0"),
                (b"x-ratelimit-reset", _number(fault.reset)),
            ]
            if fault.retry_after is not None:
                answer.headers.append((b"retry-after", _number(fault.retry_after)))
            return answer
        return rejected(fault.status, "internal_server_error", "internal error (injected)")

    def process(self, route: str, params: dict[str, str], request: Request) -> Answer:
        """Authenticate, count against the rate limit, then answer the route."""
        if route == "upload":
            with self._lock:
                return self._guarded(
                    lambda: self.uploads.upload(
                        params["attachment"], request.headers, request.body, strict=self.strict
                    )
                )
        with self._lock:
            authorized = self._authorized(request.headers.get("authorization"))
            limit_headers, over = self._count() if authorized is None else (self._limits(), False)
            if authorized is not None:
                answer = authorized.answer()
            elif over:
                answer = rejected(
                    429,
                    "too_many_requests",
                    f"rate limit of {self.rate_limit} requests per minute exceeded; "
                    "retry after x-ratelimit-reset",
                )
            else:
                answer = self._guarded(lambda: self._route(route, params, request))
        answer.headers += limit_headers
        return answer

    def events_answer(self, conversation_id: str, after: int) -> Answer:
        """The events after ``after`` (the long-poll's second look), with the limit headers."""
        with self._lock:
            answer = self._events_page(conversation_id, after)
            answer.headers += self._limits()
        return answer

    def finish(self, entry: dict[str, Any], status: int | str) -> None:
        """Note the status (or ``"dropped"``) a logged request got."""
        entry["status"] = status

    # --- auth, rate limit, idempotency --------------------------------------------------------

    def _authorized(self, header: str | None) -> Rejected | None:
        scheme, _, key = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not key:
            return Rejected(
                401, "unauthorized", "missing Authorization header: send `Bearer <API key>`"
            )
        if not hmac.compare_digest(key.strip().encode(), self._api_key):
            return Rejected(401, "unauthorized", "the API key is not valid")
        return None

    def _count(self) -> tuple[list[tuple[bytes, bytes]], bool]:
        now = time.time()
        if now - self._window_start >= _WINDOW:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        return self._limits(), self._window_count > self.rate_limit

    def _limits(self) -> list[tuple[bytes, bytes]]:
        remaining = max(0, self.rate_limit - self._window_count)
        reset = math.ceil((self._window_start or time.time()) + _WINDOW)
        return [
            (b"x-ratelimit-limit", str(self.rate_limit).encode()),
            (b"x-ratelimit-remaining", str(remaining).encode()),
            (b"x-ratelimit-reset", str(reset).encode()),
        ]

    def _guarded(self, handler: Callable[[], Answer]) -> Answer:
        try:
            return handler()
        except Rejected as refusal:
            return refusal.answer()

    def _route(self, route: str, params: dict[str, str], request: Request) -> Answer:
        if route not in _IDEMPOTENT:
            return self._events(params, request) if route == "events" else self._init(params)
        body = request.json()
        key = request.headers.get("idempotency-key")
        if key is not None and key in self._replies:
            first_route, first_body, first = self._replies[key]
            if (first_route, first_body) != (route, body):
                raise Rejected(
                    409,
                    "conflict",
                    "this Idempotency-Key was used for a different request; use a new key",
                    "Idempotency-Key",
                )
            replay = Answer(
                first.status, first.body, [*first.headers, (b"idempotent-replayed", b"true")]
            )
            return replay
        handlers: dict[str, Callable[[Any], Answer]] = {
            "sessions": self._create_session,
            "assistant_messages": self._assistant_message,
            "messages": self._plain_message,
            "attachments": lambda raw: self.uploads.announce(
                raw, self.conversations, self.base_url
            ),
        }
        answer = handlers[route](body)
        if key is not None and 200 <= answer.status < 300:
            self._replies[key] = (route, body, answer)
            if len(self._replies) > 100_000:
                self._replies.popitem(last=False)
        return answer

    # --- routes -------------------------------------------------------------------------------

    def _create_session(self, body: object) -> Answer:
        if not isinstance(body, dict):
            raise bad("the request body must be a JSON object", "(body)")
        allowed = {"customerId": str, "title": str, "assistant": str, "lang": str, "brand": str}
        for name, value in body.items():
            if name not in allowed:
                if self.strict:
                    raise bad(f"`{name}` is not a session field", name)
            elif not isinstance(value, allowed[name]) or not value:
                raise bad(f"`{name}` must be a non-empty string", name)
        for name in ("customerId", "title"):
            if name not in body:
                raise bad(f"`{name}` is required", name)
        if len(body["title"]) > 256:
            raise bad("`title` is limited to 256 characters", "title")
        assistant = None
        if "assistant" in body:
            assistant = self.assistants.get(body["assistant"])
            if assistant is None:
                raise Rejected(404, "not_found", "no assistant with this id", "assistant")
        conversation = Conversation(
            id=new_id("conv"),
            customer_id=body["customerId"],
            title=body["title"],
            created_at=kustomer_time(),
            lang=body.get("lang"),
            assistant=assistant,
        )
        if assistant is not None:
            conversation.run, conversation.node = "waiting", assistant.first_node
        self.conversations[conversation.id] = conversation
        data = {"type": "session", "id": conversation.id, "attributes": conversation.session()}
        return json_answer(201, {"data": data})

    def _init(self, params: dict[str, str]) -> Answer:
        assistant = self.assistants.get(params["assistant"])
        if assistant is None:
            raise Rejected(404, "not_found", "no assistant with this id", "assistantId")
        now = kustomer_time()
        messages = []
        for node in assistant.greeting:
            meta: dict[str, Any] = {"template": node.template}
            if node.articles:
                meta["articles"] = list(node.articles)
            message: dict[str, Any] = {
                # Kustomer sends more than the six fields initAssistantPayload keeps: these
                # extra ones must be cut by the client, and the stub checks that they are.
                "id": f"init_{node.id}",
                "channel": "chat",
                "createdAt": now,
                "sentBy": assistant_sender(assistant),
                "meta": meta,
                "direction": "out",
                "directionType": "initial-out",
                "importedAt": now,
                "trackingId": new_id("trk"),
            }
            if assistant.lang is not None:
                message["lang"] = assistant.lang
            messages.append(message)
        return json_answer(
            200,
            {
                "assistant": assistant.id,
                "dialog": assistant.dialog,
                "node": assistant.first_node,
                "initialMessages": messages,
                "attributes": dict(assistant.attributes),
            },
        )

    def _conversation(self, body: dict[str, Any]) -> Conversation:
        conversation = self.conversations.get(body["conversationId"])
        if conversation is None:
            raise Rejected(404, "not_found", "no conversation with this id", "conversationId")
        if "customerId" in body and body["customerId"] != conversation.customer_id:
            raise bad("`customerId` is not the customer of this conversation", "customerId")
        return conversation

    def _plain_message(self, raw: object) -> Answer:
        body = check_fields(raw, strict=self.strict)
        conversation = self._conversation(body)
        if self.strict:
            check_plain_message(conversation, body)
        return self._store(conversation, body)

    def _assistant_message(self, raw: object) -> Answer:
        body = check_fields(raw, strict=self.strict)
        conversation = self._conversation(body)
        starting = conversation.run in ("none", "waiting")
        if self.strict:
            assistant = check_assistant_reply(conversation, body, self.assistants)
            conversation.assistant = assistant
        elif conversation.run == "none":
            # Lenient: an assistant route message without a run starts the named one, if any.
            named = body.get("initAssistantPayload", {}).get("assistant")
            conversation.assistant = self.assistants.get(named) or conversation.assistant
        if conversation.run == "ended" or conversation.assistant is None:
            return self._store(conversation, body)
        answer = self._store(conversation, body)
        if starting:
            conversation.run = "running"
            conversation.node = conversation.assistant.first_node
        conversation.advance(body.get("payload"), self._emit)
        return answer

    def _store(self, conversation: Conversation, body: dict[str, Any]) -> Answer:
        attachments = self.uploads.references(body.get("attachments") or [], conversation.id)
        message = {
            "messageId": new_id("msg"),
            "body": body.get("body"),
            "createdAt": kustomer_time(),
            "direction": "in",
            "conversationId": conversation.id,
            "attachments": attachments,
        }
        conversation.messages.append({**message, "sent": body})
        conversation.deflection = ()
        attributes = {key: value for key, value in message.items() if key != "messageId"}
        return json_answer(
            201, {"data": {"type": "message", "id": message["messageId"], "attributes": attributes}}
        )

    def _emit(self, conversation: Conversation, name: str, payload: dict[str, Any]) -> None:
        cursor = len(conversation.events) + 1
        conversation.events.append({"cursor": cursor, "name": name, "payload": payload})
        self.notify(conversation.id)

    def _events(self, params: dict[str, str], request: Request) -> Answer:
        conversation_id = params["conversation"]
        if conversation_id not in self.conversations:
            raise Rejected(404, "not_found", "no conversation with this id", "conversationId")
        after = _query_number(request.query, "after", 0, int)
        wait = _query_number(request.query, "wait", 0.0, float)
        if after < 0:
            raise bad("`after` must be a cursor (0 or more)", "after")
        if not 0 <= wait <= MAX_WAIT:
            raise bad(f"`wait` must be between 0 and {MAX_WAIT:g} seconds", "wait")
        answer = self._events_page(conversation_id, int(after))
        if wait > 0 and answer.poll is not None:
            answer.poll = (conversation_id, int(after), float(wait))
        else:
            answer.poll = None
        return answer

    def _events_page(self, conversation_id: str, after: int) -> Answer:
        conversation = self.conversations.get(conversation_id)
        if conversation is None:  # unknown, or forgotten by a reset during a long poll
            return rejected(404, "not_found", "no conversation with this id", "conversationId")
        events = conversation.events[after:]
        answer = json_answer(200, {"events": events, "next": after + len(events)})
        if not events:
            answer.poll = (conversation_id, after, 0.0)
        return answer


def _number(value: float) -> bytes:
    return (str(int(value)) if float(value).is_integer() else f"{value:g}").encode()


def _query_number(query: dict[str, str], name: str, default: float, kind: type) -> float:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = float(kind(raw))
    except ValueError as error:
        raise bad(f"`{name}` must be a number", name) from error
    if not math.isfinite(value):
        raise bad(f"`{name}` must be a number", name)
    return value


def _loggable(request: Request) -> object:
    if request.headers.get("content-type", "").startswith("multipart/"):
        return {"multipart": len(request.body)}
    if not request.body:
        return None
    try:
        return json.loads(request.body)
    except ValueError:
        return request.body.decode("utf-8", "replace")
