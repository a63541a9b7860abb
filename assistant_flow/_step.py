"""The pure core: ``step(record, event)`` gives the next record and the message to send.

No I/O, no clock, no randomness. The flows wrap it: lock, load, step, send, save. Because the
record is saved only after the transport confirms the send, a failed send leaves the record
as it was and a retry builds the same message again, ``initAssistantPayload`` included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, assert_never

from pydantic import ValidationError

from ._conversation import ConversationRecord
from ._events import Choose, EndAssistant, Event, Receive, Reply, StartAssistant, VisitArticle
from ._exceptions import InvalidInputError, UnknownArticleError, UnknownChoiceError
from ._machine import assistant_mode_flag, next_state
from ._messages import (
    Attachment,
    DeflectionArticle,
    InitAssistantPayload,
    LastDeflection,
    SendMessageOptions,
)
from ._templates import Choice
from ._validation import invalid_input

__all__ = ["Outcome", "step"]


class Outcome(NamedTuple):
    """What a step decided.

    ``record`` is the record after the step; when ``changed`` is false it is the very record
    passed in and nothing needs saving. ``message`` is the message to send first, if any.
    (A named tuple, not a frozen dataclass: one is built per message, and a frozen
    dataclass's ``__init__`` is several times slower.)
    """

    record: ConversationRecord
    changed: bool
    message: SendMessageOptions | None
    trigger: str
    source: str

    @property
    def dest(self) -> str:
        """The state after the step."""
        return self.record.machine_state


def step(record: ConversationRecord, event: Event) -> Outcome:
    """Apply ``event`` to ``record``.

    Raises :class:`TransitionError` when the lifecycle does not allow the event in the
    record's state, and :class:`InvalidInputError` when it names a choice or article that is
    not on offer. Either way nothing was sent and the record is unchanged.
    """
    source = record.machine_state
    dest = next_state(source, event.trigger)
    new: ConversationRecord | None
    message: SendMessageOptions | None = None
    match event:
        case Reply(body=body, payload=payload, attachments=attachments, lang=lang):
            new, message = _reply(
                record,
                dest,
                body=body,
                payload=payload,
                attachments=attachments,
                lang=lang,
                choices_after=record.choices,
            )
        case Choose(choice=wanted, lang=lang):
            picked = _pick(record.choices, wanted)
            # The question is answered: its buttons are no longer on offer.
            new, message = _reply(
                record,
                dest,
                body=picked.display_text,
                payload=picked.value,
                attachments=(),
                lang=lang,
                choices_after=(),
            )
        case StartAssistant(payload=payload, choices=choices, run=run):
            new = _evolve(record, dest, init_payload=payload, choices=choices, articles=(), run=run)
        case Receive(choices=choices, articles=articles):
            new = _evolve(
                record,
                dest,
                init_payload=record.init_payload,
                choices=record.choices if choices is None else choices,
                articles=record.articles if articles is None else articles,
            )
        case VisitArticle(article_id=article_id):
            new = _evolve(
                record,
                dest,
                init_payload=record.init_payload,
                choices=record.choices,
                articles=_visit(record.articles, article_id),
            )
        case EndAssistant():
            # What the assistant offered went with it.
            new = _evolve(record, dest, init_payload=None, choices=(), articles=())
        case _:
            assert_never(event)
    return Outcome(
        record=record if new is None else new,
        changed=new is not None,
        message=message,
        trigger=event.trigger,
        source=source,
    )


def _evolve(
    record: ConversationRecord,
    dest: str,
    *,
    init_payload: InitAssistantPayload | None,
    choices: tuple[Choice, ...],
    articles: tuple[DeflectionArticle, ...],
    run: str | None = None,
) -> ConversationRecord | None:
    """The next version of ``record`` (in a new ``run`` if given), or ``None`` if the same."""
    run = record.run if run is None else run
    if (
        dest == record.machine_state
        and init_payload is record.init_payload
        and choices == record.choices
        and articles == record.articles
        and run == record.run
    ):
        return None
    return ConversationRecord(
        conversation_id=record.conversation_id,
        machine_state=dest,
        version=record.version + 1,
        init_payload=init_payload,
        choices=choices,
        articles=articles,
        run=run,
    )


def _reply(
    record: ConversationRecord,
    dest: str,
    *,
    body: str | None,
    payload: str | None,
    attachments: tuple[Attachment, ...],
    lang: str | None,
    choices_after: tuple[Choice, ...],
) -> tuple[ConversationRecord | None, SendMessageOptions]:
    """The customer's message with its lifecycle fields, and what sending it changes."""
    # The payload and the deflection have been delivered once this send succeeds.
    new = _evolve(record, dest, init_payload=None, choices=choices_after, articles=())
    try:
        message = SendMessageOptions(
            conversation_id=record.conversation_id,
            body=body,
            payload=payload,
            attachments=list(attachments) if attachments else None,
            lang=lang,
            is_in_assistant_mode=assistant_mode_flag(record.machine_state),
            init_assistant_payload=record.init_payload,
            last_deflection=LastDeflection(articles=list(record.articles))
            if record.articles
            else None,
            # A message that moves the conversation is the same delivery until the record
            # moves: a resend after a lost answer gets the same scope (and idempotency key).
            delivery_scope=None if new is None else _delivery_scope(record),
        )
    except ValidationError as exc:
        raise invalid_input(exc, "send_message") from exc
    return new, message


def _delivery_scope(record: ConversationRecord) -> str:
    """The same for a resend of one delivery; different for any other delivery.

    The version alone repeats once a deleted or expired conversation starts again; the run,
    random per ``start_assistant``, tells those lifetimes apart.
    """
    if record.run is None:  # a conversation never started by start_assistant
        return f"{record.conversation_id}@{record.version}"
    return f"{record.conversation_id}@{record.run}@{record.version}"


def _pick(choices: Sequence[Choice], wanted: str) -> Choice:
    """The offered choice whose text, or failing that whose value, is ``wanted``."""
    matches = [choice for choice in choices if choice.display_text == wanted] or [
        choice for choice in choices if choice.value == wanted
    ]
    distinct = list(dict.fromkeys(matches))
    if not distinct:
        raise UnknownChoiceError(wanted, [choice.display_text for choice in choices])
    if len(distinct) > 1:
        values = ", ".join(repr(choice.value) for choice in distinct)
        raise InvalidInputError(
            f"choose: {wanted!r} names {len(distinct)} offered choices; "
            f"choose by value instead: {values}",
            field="choice",
        )
    return distinct[0]


def _visit(
    articles: tuple[DeflectionArticle, ...], article_id: str
) -> tuple[DeflectionArticle, ...]:
    if not any(article.id == article_id for article in articles):
        raise UnknownArticleError(article_id, [article.id for article in articles])
    return tuple(
        article.model_copy(update={"visited": article.visited + 1})
        if article.id == article_id
        else article
        for article in articles
    )
