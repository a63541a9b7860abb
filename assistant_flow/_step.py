"""The pure core: ``step(record, event)`` gives the next record and the message to send.

No I/O, no clock, no randomness. The flows wrap it: lock, load, step, send, save. The record
advances only once the transport confirms the send. A send whose outcome is unknown is kept
in the record instead (:func:`keep`), state unmoved, and :func:`delivered` applies its effect
once a later delivery of it is confirmed: the same effect a confirmed send has, written once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import NamedTuple, assert_never

from ._conversation import SEEN_WINDOW, ConversationRecord, KeptMessage
from ._events import (
    Choose,
    EndAssistant,
    Event,
    JoinAssistant,
    Receive,
    Reply,
    StartAssistant,
    VisitArticle,
    parse_time,
)
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

__all__ = ["Outcome", "delivered", "keep", "step"]


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
    answers_choices: bool = False

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
    answers_choices = False
    match event:
        case Reply(body=body, payload=payload, attachments=attachments, lang=lang):
            message = _message(
                record, body=body, payload=payload, attachments=attachments, lang=lang
            )
            new = _after_reply(record, dest, answers_choices=False)
        case Choose(choice=wanted, lang=lang):
            picked = _pick(record.choices, wanted)
            message = _message(
                record, body=picked.display_text, payload=picked.value, attachments=(), lang=lang
            )
            # The question is answered: its buttons are no longer on offer.
            answers_choices = True
            new = _after_reply(record, dest, answers_choices=True)
        case StartAssistant(payload=payload, choices=choices, run=run):
            new = _evolve(record, dest, init_payload=payload, choices=choices, articles=(), run=run)
        case Receive():
            new = _receive(record, dest, event)
        case JoinAssistant():
            new = _evolve(
                record,
                dest,
                init_payload=record.init_payload,
                choices=record.choices,
                articles=record.articles,
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
        answers_choices=answers_choices,
    )


def keep(
    record: ConversationRecord, message: SendMessageOptions, *, answers_choices: bool
) -> ConversationRecord:
    """``record`` holding ``message``, whose delivery is in doubt, in its outbox; state unmoved."""
    return replace(
        record,
        version=record.version + 1,
        outbox=(*record.outbox, KeptMessage(message, answers_choices)),
    )


def delivered(record: ConversationRecord) -> ConversationRecord:
    """``record`` once the first kept message is confirmed: its effect applied, out of the box.

    The record has not moved since the message was kept (every step delivers the outbox
    first), so this is the record a confirmed send would have saved, one version on.
    """
    kept, *rest = record.outbox
    dest = next_state(record.machine_state, "reply")
    after = _after_reply(record, dest, answers_choices=kept.answers_choices)
    return replace(after, outbox=tuple(rest))


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
    return replace(
        record,
        machine_state=dest,
        version=record.version + 1,
        init_payload=init_payload,
        choices=choices,
        articles=articles,
        run=run,
    )


def _after_reply(
    record: ConversationRecord, dest: str, *, answers_choices: bool
) -> ConversationRecord:
    """The record once a reply is delivered: always a new version, so each has its own key.

    The payload and the deflection have been delivered; a choice answers its question.
    """
    # Built field by field rather than with dataclasses.replace: this runs on every reply,
    # and replace() costs several times more.
    return ConversationRecord.checked(
        record.conversation_id,
        dest,
        record.version + 1,
        None,
        () if answers_choices else record.choices,
        (),
        record.run,
        record.outbox,
        record.seen,
        record.latest_at,
    )


def _receive(record: ConversationRecord, dest: str, event: Receive) -> ConversationRecord | None:
    """Apply an assistant message, unless it is a repeat or older than the newest applied.

    Kustomer delivers at least once and not always in order; a repeat must not reset the
    deflection's visits, and a late question must not replace the newer one's buttons. A
    newer message withdraws the choices on offer unless it offers its own; a deflection
    stays pending until a message brings another (the question after it, "did that help?",
    must still be answered with ``lastDeflection``).
    """
    message_id = event.message_id
    if message_id is not None and message_id in record.seen:
        return None
    latest = record.latest_at
    if event.created is not None and latest is not None and event.created < parse_time(latest):
        return None
    updated = _evolve(
        record,
        dest,
        init_payload=record.init_payload,
        choices=event.choices,
        articles=record.articles if event.articles is None else event.articles,
    )
    seen = record.seen if message_id is None else (*record.seen, message_id)[-SEEN_WINDOW:]
    latest_at = latest if event.created is None else event.created_at
    if updated is None and seen == record.seen and latest_at == latest:
        return None
    return replace(
        updated or replace(record, version=record.version + 1), seen=seen, latest_at=latest_at
    )


def _message(
    record: ConversationRecord,
    *,
    body: str | None,
    payload: str | None,
    attachments: tuple[Attachment, ...],
    lang: str | None,
) -> SendMessageOptions:
    """The customer's message with the lifecycle fields the record calls for.

    Built with :meth:`SendMessageOptions.checked`: the event's fields were checked where the
    caller handed them over, the record's as they came in.
    """
    articles = record.articles
    return SendMessageOptions.checked(
        record.conversation_id,
        body=body,
        payload=payload,
        attachments=list(attachments) if attachments else None,
        lang=lang,
        is_in_assistant_mode=assistant_mode_flag(record.machine_state),
        init_assistant_payload=record.init_payload,
        last_deflection=LastDeflection(articles=list(articles)) if articles else None,
        # Every delivery has a scope of its own; a kept one is sent again with its own.
        delivery_scope=_delivery_scope(record),
    )


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
