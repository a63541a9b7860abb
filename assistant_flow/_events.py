"""What can happen to a conversation, built from what callers and Kustomer hand us.

Every input is validated here, before a conversation is locked or loaded: a bad call raises
:class:`InvalidInputError` having touched nothing. The events are plain immutable values that
:func:`assistant_flow._step.step` applies to a record.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ._exceptions import InvalidInputError, UnknownEventError
from ._messages import (
    Attachment,
    DeflectionArticle,
    InitAssistantPayload,
    InitAssistantResponse,
    ReceivedMessage,
)
from ._templates import Choice, offered_choices
from ._validation import parse

__all__ = [
    "KUSTOMER_EVENTS",
    "Choose",
    "EndAssistant",
    "Event",
    "Receive",
    "Reply",
    "StartAssistant",
    "VisitArticle",
    "check_conversation_id",
    "choose",
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
    """An assistant or agent message arrived. ``None`` means "offers none, keep what we have"."""

    trigger: ClassVar[str] = "receive"
    choices: tuple[Choice, ...] | None
    articles: tuple[DeflectionArticle, ...] | None


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


Event = StartAssistant | Receive | Reply | Choose | VisitArticle | EndAssistant


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
    return conversation_id


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


def start_assistant(init_response: InitAssistantResponse | Mapping[str, Any]) -> StartAssistant:
    """Build the event from what ``KustomerCore.initAssistant`` returned.

    The quick replies or mll of the last greeting that offers any are put on offer, so the
    customer can answer the greeting with :meth:`choose`.
    """
    response = parse(
        InitAssistantResponse, init_response, "start_assistant: initAssistant response"
    )
    choices: tuple[Choice, ...] = ()
    for index, greeting in enumerate(response.initial_messages):
        template = greeting.meta.template if greeting.meta else None
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
    return Receive(choices=choices, articles=articles)


def reply(
    body: str | None,
    payload: str | None,
    attachments: Sequence[Attachment] | None,
    lang: str | None,
) -> Reply:
    """Build the event for a message the customer sends.

    Plain checks rather than a pydantic round trip: this runs on every message, and the step
    validates the finished message once more when it builds it.
    """
    what = "send_message"
    _check_optional_text(body, "body", what)
    _check_optional_text(payload, "payload", what, non_empty=True)
    _check_optional_text(lang, "lang", what, non_empty=True)
    files = _check_attachments(attachments, what)
    has_body = body is not None and body.strip() != ""
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
    return tuple(attachments)


def choose(choice: str, lang: str | None) -> Choose:
    """Build the event for picking an offered quick reply or mll node."""
    if not isinstance(choice, str) or not choice:
        raise InvalidInputError(
            "choose: `choice` must be a non-empty str: the displayText or value of a quick "
            "reply, or the displayName or id of an mll node",
            field="choice",
        )
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
    return VisitArticle(article_id=article_id)


KUSTOMER_EVENTS: Mapping[str, str | None] = {
    # Events that move a conversation, and the handle method they stand for.
    "onMessageReceived": "receive",
    "onAssistantEnded": "end_assistant",
    # Events a backend may forward that change nothing here. onConversationEnded is one of
    # them on purpose: a closed conversation keeps its assistant mode until onAssistantEnded.
    "onConversationCreate": None,
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
    return method, conversation_id
