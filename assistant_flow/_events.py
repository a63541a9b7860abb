"""What can happen to a conversation, built from what callers and Kustomer hand us.

Every input is validated here, before a conversation is locked or loaded: a bad call raises
:class:`InvalidInputError` having touched nothing. The events are plain immutable values that
:func:`assistant_flow._step.step` applies to a record.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import BaseModel

from ._exceptions import InvalidInputError, UnknownEventError
from ._messages import (
    Attachment,
    DeflectionArticle,
    InitAssistantPayload,
    InitAssistantResponse,
    ReceivedMessage,
)
from ._sendable import MAX_ID_CHARS, check_json, check_text
from ._templates import Choice, offered_choices
from ._validation import parse

__all__ = [
    "KUSTOMER_EVENTS",
    "Choose",
    "EndAssistant",
    "Event",
    "JoinAssistant",
    "Receive",
    "Reply",
    "StartAssistant",
    "VisitArticle",
    "check_conversation_id",
    "choose",
    "conversation_snapshot",
    "parse_time",
    "receive",
    "reply",
    "start_assistant",
    "visit_article",
]


@dataclass(frozen=True, slots=True)
class StartAssistant:
    """``initAssistant`` returned: its payload is pending and its greetings may offer choices.

    ``run`` names this run of the assistant (random, made here so the step stays pure): it
    keeps the idempotency keys of a conversation started again after its record was deleted
    or expired apart from those of its earlier run, whose versions restart from 0.
    """

    trigger: ClassVar[str] = "start_assistant"
    payload: InitAssistantPayload
    choices: tuple[Choice, ...]
    run: str | None = None


@dataclass(frozen=True, slots=True)
class Receive:
    """An assistant or agent message arrived.

    ``choices`` are the ones it offers (none withdraws those on offer); ``articles`` its
    deflection, ``None`` when it has none (a pending deflection stays). ``message_id`` and
    ``created`` (its ``createdAt``) let the step ignore a repeat or a message older than
    the newest one applied; ``created_at`` is the text as Kustomer wrote it.
    """

    trigger: ClassVar[str] = "receive"
    choices: tuple[Choice, ...]
    articles: tuple[DeflectionArticle, ...] | None
    message_id: str | None = None
    created_at: str | None = None
    created: datetime | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """The customer sends a message; the step adds the lifecycle fields."""

    trigger: ClassVar[str] = "reply"
    body: str | None
    payload: str | None
    attachments: tuple[Attachment, ...]
    lang: str | None


@dataclass(frozen=True, slots=True)
class Choose:
    """The customer picks an offered quick reply or mll node, by its text or its value."""

    trigger: ClassVar[str] = "reply"
    choice: str
    lang: str | None


@dataclass(frozen=True, slots=True)
class VisitArticle:
    """The customer opened one of the deflection's articles."""

    trigger: ClassVar[str] = "visit_article"
    article_id: str


@dataclass(frozen=True, slots=True)
class EndAssistant:
    """``onAssistantEnded``: the assistant finished or handed the customer to an agent."""

    trigger: ClassVar[str] = "end_assistant"


@dataclass(frozen=True, slots=True)
class JoinAssistant:
    """The server reports the conversation in assistant mode, without our ``initAssistant``."""

    trigger: ClassVar[str] = "join_assistant"


Event = StartAssistant | Receive | Reply | Choose | VisitArticle | EndAssistant | JoinAssistant


def check_conversation_id(conversation_id: object, field: str = "conversation_id") -> str:
    """Return ``conversation_id`` if it is a non-empty string; raise otherwise."""
    if conversation_id is None:
        raise InvalidInputError(
            f"`{field}` is missing; pass the conversationId Kustomer gave the conversation",
            field=field,
        )
    if not isinstance(conversation_id, str):
        raise InvalidInputError(
            f"`{field}` must be a str (Kustomer's conversation id), "
            f"got {type(conversation_id).__name__}",
            field=field,
        )
    if not conversation_id.strip():
        raise InvalidInputError(
            f"`{field}` is empty; pass the conversationId Kustomer gave the conversation",
            field=field,
        )
    return check_text(conversation_id, field, "conversation", limit=MAX_ID_CHARS)


def _check_optional_text(value: object, field: str, what: str, *, non_empty: bool = False) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidInputError(
            f"{what}: `{field}` must be a str, got {type(value).__name__}", field=field
        )
    if non_empty and not value:
        raise InvalidInputError(
            f"{what}: `{field}` is empty; pass text or leave it out", field=field
        )
    check_text(value, field, what)


def start_assistant(init_response: InitAssistantResponse | Mapping[str, Any]) -> StartAssistant:
    """Build the event from what ``KustomerCore.initAssistant`` returned.

    The quick replies or mll of the last greeting that offers any are put on offer, so the
    customer can answer the greeting with :meth:`choose`.
    """
    what = "start_assistant: initAssistant response"
    _check_plain_json(init_response, InitAssistantResponse, what)
    response = parse(InitAssistantResponse, init_response, what)
    choices: tuple[Choice, ...] = ()
    for index, greeting in enumerate(response.initial_messages):
        template = greeting.meta.template if greeting.meta else None
        if not template:
            # Kustomer checks the greetings it gets back against those it sent: one without
            # its template cannot be the greeting initAssistant returned.
            raise InvalidInputError(
                f"{what}: `initialMessages.{index}.meta.template` is missing; pass the "
                "greetings exactly as initAssistant returned them",
                field=f"initialMessages.{index}.meta.template",
            )
        found = offered_choices(template, f"start_assistant: initialMessages.{index}.meta.template")
        if found is not None:
            choices = found
    return StartAssistant(
        payload=response.to_init_payload(), choices=choices, run=secrets.token_hex(8)
    )


def receive(message: ReceivedMessage | Mapping[str, Any], conversation_id: str) -> Receive | None:
    """Build the event for a message ``onMessageReceived`` delivered.

    Returns ``None`` for the customer's own messages (``direction: "in"``), which change
    nothing. A message addressed to another conversation is refused.
    """
    _check_plain_json(message, ReceivedMessage, "receive: message")
    received = parse(ReceivedMessage, message, "receive: message")
    if received.conversation_id is not None and received.conversation_id != conversation_id:
        raise InvalidInputError(
            f"receive: the message's `conversationId` names another conversation than "
            f"{conversation_id!r}; pass it to flow.conversation(<its conversationId>)",
            field="conversationId",
        )
    if received.direction == "in":
        return None
    meta = received.meta
    choices = offered_choices(meta.template if meta else None, "receive: meta.template")
    articles = None
    if meta is not None and meta.articles:
        # A fresh deflection: nothing in it has been visited yet.
        articles = tuple(
            article if article.visited == 0 else article.model_copy(update={"visited": 0})
            for article in meta.articles
        )
    return Receive(
        choices=choices or (),
        articles=articles,
        message_id=received.message_id or None,
        created_at=received.created_at,
        created=None if received.created_at is None else parse_time(received.created_at),
    )


def parse_time(text: str, field: str = "createdAt") -> datetime:
    """Read Kustomer's ISO 8601 ``createdAt`` (``2026-11-25T10:00:01.000Z``); UTC if naive."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(
            f"receive: `{field}` is not an ISO 8601 time such as '2026-11-25T10:00:01.000Z'",
            field=field,
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _check_plain_json(value: object, model: type[BaseModel], what: str) -> None:
    """Refuse what can never be sent or stored, before pydantic reads it.

    A model instance was built in Python and may hold anything its ``dict`` fields took, so
    it is checked through its dump.
    """
    if isinstance(value, model):
        value = value.model_dump(by_alias=True, exclude_none=True)
    if isinstance(value, Mapping):
        check_json(value, "", what)


def reply(
    body: str | None,
    payload: str | None,
    attachments: Sequence[Attachment] | None,
    lang: str | None,
) -> Reply:
    """Build the event for a message the customer sends.

    Plain checks rather than a pydantic round trip: this runs on every message, and these
    checks are the only ones (the step builds the message from them without validating
    again). Each is skipped for a field left out, the common case.
    """
    what = "send_message"
    if body is not None:
        _check_optional_text(body, "body", what)
    if payload is not None:
        _check_optional_text(payload, "payload", what, non_empty=True)
    if lang is not None:
        _check_optional_text(lang, "lang", what, non_empty=True)
    files = () if attachments is None else _check_attachments(attachments, what)
    has_body = body is not None and not body.isspace() and body != ""
    if not has_body and payload is None and not files:
        raise InvalidInputError(
            f"{what}: nothing to send; pass a non-empty `body`, a `payload` or `attachments`",
            field="body",
        )
    return Reply(body=body if has_body else None, payload=payload, attachments=files, lang=lang)


def _check_attachments(attachments: object, what: str) -> tuple[Attachment, ...]:
    if attachments is None:
        return ()
    if isinstance(attachments, str | bytes) or not isinstance(attachments, Sequence):
        raise InvalidInputError(
            f"{what}: `attachments` must be a list of Attachment, got {type(attachments).__name__}",
            field="attachments",
        )
    for index, attachment in enumerate(attachments):
        if not isinstance(attachment, Attachment):
            raise InvalidInputError(
                f"{what}: `attachments.{index}` must be an Attachment "
                "(Attachment.from_path(path), or Attachment(name=, content_type=, content=)), "
                f"got {type(attachment).__name__}",
                field=f"attachments.{index}",
            )
        check_text(attachment.name, f"attachments.{index}.name", what)
        check_text(attachment.content_type, f"attachments.{index}.content_type", what)
    return tuple(attachments)


def choose(choice: str, lang: str | None) -> Choose:
    """Build the event for picking an offered quick reply or mll node."""
    if not isinstance(choice, str) or not choice:
        raise InvalidInputError(
            "choose: `choice` must be a non-empty str: the displayText or value of a quick "
            "reply, or the displayName or id of an mll node",
            field="choice",
        )
    check_text(choice, "choice", "choose")
    _check_optional_text(lang, "lang", "choose", non_empty=True)
    return Choose(choice=choice, lang=lang)


def visit_article(article_id: str) -> VisitArticle:
    """Build the event for the customer opening a deflection article."""
    if not isinstance(article_id, str) or not article_id:
        raise InvalidInputError(
            "visit_article: `article_id` must be the non-empty id of an article in the "
            "deflection's meta.articles",
            field="article_id",
        )
    return VisitArticle(article_id=check_text(article_id, "article_id", "visit_article"))


def conversation_snapshot(
    snapshot: Mapping[str, Any], conversation_id: str, what: str = "sync"
) -> JoinAssistant | EndAssistant | None:
    """The event a server's view of the conversation stands for, or ``None``.

    ``snapshot`` is a conversation as Kustomer reports it: the answer of
    ``createConversation`` or ``describeConversation``, an ``onConversationCreate`` payload,
    a ``getConversations`` row (all flat, camelCase), or a REST conversation
    (``{"data": {"id", "attributes": {...}}}``). ``isInAssistantMode: true`` joins a running
    assistant, ``false`` ends it, absent changes nothing. Reading the REST resource's
    ``attributes.isInAssistantMode`` the same way is **inferred**: Kustomer documents the
    flag on the Core SDK's conversation objects only.
    """
    if not isinstance(snapshot, Mapping):
        raise InvalidInputError(
            f"{what}: the conversation must be a dict (its JSON object), "
            f"got {type(snapshot).__name__}",
            field="snapshot",
        )
    fields: Mapping[str, Any] = snapshot
    data = snapshot.get("data")
    if isinstance(data, Mapping):
        attributes = data.get("attributes")
        fields = {"conversationId": data.get("id"), **(attributes or {})}
    named = fields.get("conversationId")
    if named is not None and named != conversation_id:
        raise InvalidInputError(
            f"{what}: the snapshot's `conversationId` names another conversation than "
            f"{conversation_id!r}; pass it to flow.conversation(<its conversationId>)",
            field="conversationId",
        )
    mode = fields.get("isInAssistantMode")
    if mode is None:
        return None
    if not isinstance(mode, bool):
        raise InvalidInputError(
            f"{what}: `isInAssistantMode` must be true or false, got {type(mode).__name__}",
            field="isInAssistantMode",
        )
    return JoinAssistant() if mode else EndAssistant()


KUSTOMER_EVENTS: Mapping[str, str | None] = {
    # Events that move a conversation, and the handle method they stand for.
    "onMessageReceived": "receive",
    "onAssistantEnded": "end_assistant",
    # A conversation the server created with an assistant reports isInAssistantMode: true.
    "onConversationCreate": "sync",
    # Events a backend may forward that change nothing here. onConversationEnded is one of
    # them on purpose: a closed conversation keeps its assistant mode until onAssistantEnded.
    "onConversationEnded": None,
    "onConversationUnended": None,
    "onMessageSent": None,
    "onSatisfactionReceived": None,
    "onAgentTypingActivity": None,
    "onLogin": None,
    "onUnread": None,
}
"""Kustomer's Core SDK event names that :meth:`Flow.dispatch` accepts."""


def kustomer_event(name: object, payload: object) -> tuple[str, str] | None:
    """Check a forwarded Kustomer event: ``(handle method, conversation id)`` or ``None``.

    ``None`` means the event is known and changes nothing. An unknown name raises
    :class:`UnknownEventError`, because a misspelt event silently ignored would break a bot.
    """
    if not isinstance(name, str) or name not in KUSTOMER_EVENTS:
        raise UnknownEventError(str(name), list(KUSTOMER_EVENTS))
    method = KUSTOMER_EVENTS[name]
    if method is None:
        return None
    if not isinstance(payload, Mapping):
        raise InvalidInputError(
            f"dispatch {name}: the payload must be a dict (the event's JSON object), "
            f"got {type(payload).__name__}",
            field="payload",
        )
    conversation_id = check_conversation_id(payload.get("conversationId"), "conversationId")
    if name == "onConversationCreate" and payload.get("isInAssistantMode") is not True:
        # A conversation created without an assistant: nothing to join, and nothing ends.
        return None
    return method, conversation_id
