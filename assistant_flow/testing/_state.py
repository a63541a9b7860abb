"""The stub's memory and its answers to each route, with no I/O: the ASGI app drives it.

Everything a request changes (sessions, assistant runs, events, attachments, idempotency keys,
the rate-limit window, the request log, the faults) lives in one :class:`StubState`, guarded by
one lock, because the test thread reads and changes it while the server thread answers.
"""

from __future__ import annotations

import hmac
import json
import math
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ._answers import Answer, Rejected, json_answer, kustomer_time, rejected
from ._assistants import Assistant, Node
from ._checks import bad, check_fields, check_init_payload
from ._faults import Fault

__all__ = ["MAX_FILE", "MAX_MESSAGE", "Request", "StubState"]

MAX_FILE = 5 * 1024 * 1024
"""The largest file the stub takes (5 MB, read as MiB: never stricter than a client)."""
MAX_MESSAGE = int(9.5 * 1024 * 1024)
"""The most attachment bytes one message may carry (9.5 MB)."""
MAX_WAIT = 30.0
_WINDOW = 60.0
_FILE_TYPES = ("image/", "video/", "application/pdf")
_IDEMPOTENT = frozenset({"sessions", "assistant_messages", "messages", "attachments"})

RunState = Literal["none", "waiting", "running", "ended"]


@dataclass(slots=True)
class Request:
    """What the ASGI layer read from one request."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    base_url: str

    def json(self) -> object:
        """The body as JSON; a 400 naming the body when it is not."""
        try:
            return json.loads(self.body)
        except ValueError as error:
            raise bad("the request body must be JSON", "(body)") from error


@dataclass(slots=True)
class Conversation:
    """A chat session and its assistant run."""

    id: str
    customer_id: str
    title: str
    created_at: str
    lang: str | None
    assistant: Assistant | None
    run: RunState = "none"
    node: str | None = None
    deflection: tuple[str, ...] = ()
    ended: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)

    def session(self) -> dict[str, Any]:
        """The session's attributes (``createConversation``'s callbackResponse, and more)."""
        data: dict[str, Any] = {
            "conversationId": self.id,
            "customerId": self.customer_id,
            "title": self.title,
            "createdAt": self.created_at,
            "ended": self.ended,
            "isInAssistantMode": self.run in ("waiting", "running"),
        }
        if self.assistant is not None:
            data["assistant"] = self.assistant.id
        if self.lang is not None:
            data["lang"] = self.lang
        return data


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


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
        self.notify: Callable[[str], None] = lambda conversation_id: None
        """Called (under the lock) when a conversation gets a new event; the app wakes pollers."""
        self._clear()

    # --- control ------------------------------------------------------------------------------

    def _clear(self) -> None:
        self.conversations: dict[str, Conversation] = {}
        self.attachments: dict[str, dict[str, Any]] = {}
        self.faults: list[Fault] = [Fault.from_json(f.to_json()) for f in self._initial_faults]
        self.requests: deque[dict[str, Any]] = deque(maxlen=self._keep_requests)
        self._replies: OrderedDict[str, tuple[str, object, Answer]] = OrderedDict()
        self._window_start = 0.0
        self._window_count = 0

    def reset(self) -> None:
        """Forget every session, event, request and idempotency key; restore the initial faults."""
        with self._lock:
            self._clear()

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
            message = self._outbound(conversation, {"templateType": "text", "body": body})
            message["sentBy"] = {"type": "user", "id": agent}
            self._emit(conversation, "onMessageReceived", message)

    # --- each request -------------------------------------------------------------------------

    def begin(self, route: str, request: Request) -> tuple[dict[str, Any], Fault | None]:
        """Log the request and take the fault that applies to it, if any."""
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
                return self._guarded(lambda: self._upload(params, request))
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
            "attachments": self._announce,
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
            id=_new_id("conv"),
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
                "sentBy": _assistant_sender(assistant),
                "meta": meta,
                "direction": "out",
                "directionType": "initial-out",
                "importedAt": now,
                "trackingId": _new_id("trk"),
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

    def _attachments(self, body: dict[str, Any], conversation: Conversation) -> list[Any]:
        files = body.get("attachments") or []
        total = 0
        for index, item in enumerate(files):
            where = f"attachments.{index}"
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                raise bad(
                    f"`{where}` must be an object with the `id` the attachment route gave", where
                )
            known = self.attachments.get(item["id"])
            if known is None or known["conversationId"] != conversation.id:
                raise bad(f"`{where}.id` names no attachment of this conversation", f"{where}.id")
            if not known["uploaded"]:
                raise bad(f"`{where}.id`: the file was announced but never uploaded", f"{where}.id")
            total += known["contentLength"]
        if total > MAX_MESSAGE:
            raise bad(
                f"the attachments add up to {total} bytes; a message takes at most {MAX_MESSAGE}",
                "attachments",
            )
        return [
            {
                key: self.attachments[item["id"]][key]
                for key in ("id", "name", "contentType", "contentLength")
            }
            for item in files
        ]

    def _plain_message(self, raw: object) -> Answer:
        body = check_fields(raw, strict=self.strict)
        conversation = self._conversation(body)
        if self.strict:
            if conversation.run in ("waiting", "running"):
                raise bad(
                    "the assistant is running on this conversation: send customer messages to "
                    "/v2.1/chat/assistant/messages with isInAssistantMode true until "
                    "onAssistantEnded",
                    "isInAssistantMode",
                )
            if body.get("isInAssistantMode") is True:
                raise bad(
                    "`isInAssistantMode` must not be true: no assistant runs on this "
                    "conversation (it ended, or never started)",
                    "isInAssistantMode",
                )
            for name in ("initAssistantPayload", "lastDeflection"):
                if name in body:
                    raise bad(f"`{name}` only goes with assistant replies", name)
        return self._store(conversation, body)

    def _assistant_message(self, raw: object) -> Answer:
        body = check_fields(raw, strict=self.strict)
        conversation = self._conversation(body)
        starting = conversation.run in ("none", "waiting")
        if self.strict:
            self._check_protocol(conversation, body)
        elif conversation.run == "none":
            # Lenient: an assistant route message without a run starts the named one, if any.
            named = body.get("initAssistantPayload", {}).get("assistant")
            conversation.assistant = self.assistants.get(named) or conversation.assistant
        if conversation.run == "ended" or conversation.assistant is None:
            return self._store(conversation, body)
        if starting:
            conversation.run = "running"
            conversation.node = conversation.node or conversation.assistant.first_node
        answer = self._store(conversation, body)
        self._advance(conversation, body.get("payload"))
        return answer

    def _check_protocol(self, conversation: Conversation, body: dict[str, Any]) -> None:
        if body.get("isInAssistantMode") is not True:
            raise bad(
                "`isInAssistantMode` must be true on the assistant route (send it on every "
                "customer message until onAssistantEnded)",
                "isInAssistantMode",
            )
        if conversation.run == "ended":
            raise bad(
                "the assistant ended (onAssistantEnded was emitted): send to /v2.1/chat/messages "
                "with isInAssistantMode false",
                "isInAssistantMode",
            )
        payload = body.get("initAssistantPayload")
        if conversation.run in ("none", "waiting"):
            if payload is None:
                raise bad(
                    "the first reply to an assistant must carry `initAssistantPayload` built from "
                    "initAssistant's answer",
                    "initAssistantPayload",
                )
            assistant = conversation.assistant or self.assistants.get(str(payload.get("assistant")))
            if assistant is None:
                raise bad(
                    "`initAssistantPayload.assistant` names no assistant of this org",
                    "initAssistantPayload.assistant",
                )
            check_init_payload(
                payload,
                assistant=assistant.id,
                dialog=assistant.dialog,
                node=assistant.first_node,
                templates=[node.template for node in assistant.greeting],
            )
            greeted = tuple(a["id"] for node in assistant.greeting for a in node.articles)
            self._check_answer(assistant, assistant.first_node, greeted, body)
            conversation.assistant, conversation.node = assistant, assistant.first_node
            return
        elif payload is not None:
            raise bad(
                "`initAssistantPayload` goes on the first reply only; this conversation already "
                "replied to the assistant",
                "initAssistantPayload",
            )
        assert conversation.assistant is not None
        node = conversation.node or conversation.assistant.first_node
        self._check_answer(conversation.assistant, node, conversation.deflection, body)

    def _check_answer(
        self, assistant: Assistant, node_id: str, pending: tuple[str, ...], body: dict[str, Any]
    ) -> None:
        node = assistant.nodes[node_id]
        payload = body.get("payload")
        if payload is not None and node.offered and payload not in node.offered:
            offered = ", ".join(sorted(node.offered))
            raise bad(
                f"`payload` must be one of the values on offer ({offered}): a quick reply sends "
                "the button's value, an mll answer the node's id",
                "payload",
            )
        deflection = body.get("lastDeflection")
        if pending and deflection is None:
            raise bad(
                "this reply follows a deflection: it must carry `lastDeflection` with the "
                "articles and their visit counts",
                "lastDeflection",
            )
        if deflection is not None:
            if not pending:
                raise bad(
                    "`lastDeflection` goes only on the reply after a deflection", "lastDeflection"
                )
            self._check_deflection(deflection, pending)

    def _check_deflection(self, deflection: dict[str, Any], offered: tuple[str, ...]) -> None:
        articles = deflection.get("articles")
        if not isinstance(articles, list) or not articles:
            raise bad(
                "`lastDeflection.articles` must be a non-empty array", "lastDeflection.articles"
            )
        for index, article in enumerate(articles):
            where = f"lastDeflection.articles.{index}"
            if not isinstance(article, dict) or article.get("id") not in offered:
                raise bad(f"`{where}.id` is not an article the deflection offered", f"{where}.id")
            visited = article.get("visited")
            if not isinstance(visited, int) or isinstance(visited, bool) or visited < 0:
                raise bad(f"`{where}.visited` must be a count (0 or more)", f"{where}.visited")

    def _store(self, conversation: Conversation, body: dict[str, Any]) -> Answer:
        attachments = self._attachments(body, conversation)
        message = {
            "messageId": _new_id("msg"),
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

    def _advance(self, conversation: Conversation, payload: str | None) -> None:
        assistant = conversation.assistant
        assert assistant is not None
        waiting = assistant.nodes[conversation.node or assistant.first_node]
        target = waiting.answer(payload) or waiting.id
        for node in assistant.chain(target):
            self._say(conversation, assistant, node)
            conversation.node = node.id
            if node.end is not None:
                conversation.run = "ended"
                self._emit(
                    conversation,
                    "onAssistantEnded",
                    {"conversationId": conversation.id, "isInAssistantMode": False},
                )
                if node.end == "conversation":
                    conversation.ended = True
                    self._emit(
                        conversation, "onConversationEnded", {"conversationId": conversation.id}
                    )

    def _say(self, conversation: Conversation, assistant: Assistant, node: Node) -> None:
        message = self._outbound(conversation, node.template)
        if node.articles:
            message["meta"]["articles"] = list(node.articles)
            conversation.deflection = tuple(article["id"] for article in node.articles)
        message["sentBy"] = _assistant_sender(assistant)
        if assistant.lang is not None:
            message["lang"] = assistant.lang
        self._emit(conversation, "onMessageReceived", message)

    def _outbound(self, conversation: Conversation, template: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": _new_id("msg"),
            "body": template.get("body"),
            "createdAt": kustomer_time(),
            "direction": "out",
            "directionType": "followup-out",
            "conversationId": conversation.id,
            "meta": {"template": template},
        }

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
        events = self.conversations[conversation_id].events[after:]
        answer = json_answer(200, {"events": events, "next": after + len(events)})
        if not events:
            answer.poll = (conversation_id, after, 0.0)
        return answer

    def _announce(self, raw: object) -> Answer:
        if not isinstance(raw, dict):
            raise bad("the request body must be a JSON object", "(body)")
        for name, kind in (("conversationId", str), ("name", str), ("contentType", str)):
            if not isinstance(raw.get(name), kind) or not raw[name]:
                raise bad(f"`{name}` is required, a non-empty string", name)
        length = raw.get("contentLength")
        if not isinstance(length, int) or isinstance(length, bool) or length < 1:
            raise bad("`contentLength` is required, the file's size in bytes", "contentLength")
        if raw["conversationId"] not in self.conversations:
            raise Rejected(404, "not_found", "no conversation with this id", "conversationId")
        if not raw["contentType"].startswith(_FILE_TYPES):
            raise Rejected(
                415,
                "unsupported_media_type",
                "chat takes image, PDF and video files",
                "contentType",
            )
        if length > MAX_FILE:
            raise Rejected(
                413,
                "payload_too_large",
                f"a file may have at most {MAX_FILE} bytes",
                "contentLength",
            )
        attachment_id = _new_id("att")
        record = {
            "id": attachment_id,
            "conversationId": raw["conversationId"],
            "name": raw["name"],
            "contentType": raw["contentType"],
            "contentLength": length,
            "uploaded": False,
            "token": secrets.token_hex(8),
        }
        self.attachments[attachment_id] = record
        attributes = {
            k: record[k] for k in ("name", "contentType", "contentLength", "conversationId")
        }
        fields = {
            "key": f"attachments/{attachment_id}/{raw['name']}",
            "Content-Type": raw["contentType"],
            "x-stub-token": record["token"],
        }
        return json_answer(
            201,
            {
                "data": {"type": "attachment", "id": attachment_id, "attributes": attributes},
                "meta": {
                    "upload": {
                        "url": f"{self.base_url}/_stub/uploads/{attachment_id}",
                        "fields": fields,
                    }
                },
            },
        )

    base_url = ""
    """Where the stub listens; set by the server, used for upload URLs."""

    def _upload(self, params: dict[str, str], request: Request) -> Answer:
        record = self.attachments.get(params["attachment"])
        if record is None:
            raise Rejected(404, "not_found", "no attachment with this id", "attachment")
        if self.strict and "authorization" in request.headers:
            raise bad(
                "do not send your Kustomer Authorization to the upload URL: it needs none",
                "Authorization",
            )
        parts = _multipart(request)
        expected = {
            "key": f"attachments/{record['id']}/{record['name']}",
            "Content-Type": record["contentType"],
            "x-stub-token": record["token"],
        }
        for name, value in expected.items():
            if parts.get(name) != value.encode():
                raise bad(f"form field `{name}` must be sent as meta.upload.fields gave it", name)
        content = parts.get("file")
        if content is None:
            raise bad("the form needs a `file` part, after the fields", "file")
        if len(content) != record["contentLength"]:
            raise bad(
                f"`file` has {len(content)} bytes; the announce said {record['contentLength']}",
                "file",
            )
        record["uploaded"] = True
        return Answer(204)


def _assistant_sender(assistant: Assistant) -> dict[str, Any]:
    sender: dict[str, Any] = {"type": "assistant", "id": assistant.id}
    if "publicName" in assistant.attributes:
        sender["displayName"] = assistant.attributes["publicName"]
    return sender


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


def _multipart(request: Request) -> dict[str, bytes]:
    """The named parts of a ``multipart/form-data`` body (enough for an upload form)."""
    content_type = request.headers.get("content-type", "")
    kind, _, params = content_type.partition(";")
    boundary = ""
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    if kind.strip().lower() != "multipart/form-data" or not boundary:
        raise bad("the upload must be multipart/form-data", "Content-Type")
    parts: dict[str, bytes] = {}
    delimiter = b"--" + boundary.encode()
    for chunk in request.body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise bad("a form part has no headers", "file")
        name = None
        for line in head.decode("latin-1").split("\r\n"):
            header, _, value = line.partition(":")
            if header.strip().lower() == "content-disposition":
                for piece in value.split(";"):
                    key, _, raw = piece.strip().partition("=")
                    if key == "name":
                        name = raw.strip('"')
        if name is None:
            raise bad("a form part has no name", "file")
        parts[name] = content[:-2] if content.endswith(b"\r\n") else content
    return parts
