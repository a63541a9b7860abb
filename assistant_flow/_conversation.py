"""The conversation record: everything a flow remembers about one conversation.

A record is small and immutable. A step never edits one; it returns a new record with the
version one higher, and the store saves it only if the stored version is still the one that
was loaded. Records travel as one JSON document (never pickle), so any store can hold them and
a save replaces the whole conversation at once.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from pydantic import ValidationError

from ._exceptions import CorruptRecordError
from ._machine import (
    FIRST_REPLY_STATE,
    INITIAL_STATE,
    LEAF_STATES,
    State,
    assistant_mode_flag,
    top_state,
)
from ._messages import Attachment, DeflectionArticle, InitAssistantPayload, SendMessageOptions
from ._templates import Choice

__all__ = ["MAX_VERSION", "RECORD_FORMAT", "SEEN_WINDOW", "ConversationRecord", "KeptMessage"]

RECORD_FORMAT = 2
"""The version of the JSON layout written by :meth:`ConversationRecord.to_dict`.

Format 2 added the outbox and the inbound window; format 1 records (0.2.0) are still read.
An older release refuses a format 2 record rather than silently dropping a kept message.
"""

_READABLE_FORMATS = frozenset({1, RECORD_FORMAT})

SEEN_WINDOW = 32
"""How many ids of applied assistant messages a record remembers to ignore repeats.

Repeats older than that are still ignored for what they would change, by their
``createdAt`` (see :attr:`ConversationRecord.latest_at`)."""

MAX_VERSION = 2**53 - 1
"""The highest record version: every store (Redis's Lua included, whose numbers are doubles)
compares versions up to here exactly. At one step a millisecond it lasts 285,000 years."""

# Records loaded from JSON share these string objects instead of holding copies, which keeps
# a million idle conversations small.
_CANONICAL_STATES = {state: state for state in LEAF_STATES}


@dataclass(frozen=True, slots=True)
class KeptMessage:
    """A message whose delivery is in doubt, kept in the record until it is confirmed.

    ``message`` is exactly what was sent, ``delivery_scope`` included, so it is sent again
    with the same ``Idempotency-Key`` (:attr:`idempotency_key`). ``answers_choices`` says
    whether its delivery withdraws the choices on offer (it was a :meth:`choose`).
    """

    message: SendMessageOptions
    answers_choices: bool = False

    @property
    def idempotency_key(self) -> str | None:
        """The key it went out with (as :func:`default_idempotency_key` derives it)."""
        return self.message.idempotency_key()

    def to_dict(self) -> dict[str, Any]:
        """The kept message as JSON: its wire shape, its scope and its files' bytes."""
        message = self.message
        data: dict[str, Any] = {"message": message.to_wire(), "scope": message.delivery_scope}
        if message.attachments:
            data["files"] = [
                [file.name, file.content_type, base64.b64encode(file.content).decode("ascii")]
                for file in message.attachments
            ]
        if self.answers_choices:
            data["answersChoices"] = True
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KeptMessage:
        """Read what :meth:`to_dict` wrote."""
        wire = dict(data["message"])
        wire.pop("attachments", None)
        files = [
            Attachment(name=name, content_type=kind, content=base64.b64decode(content))
            for name, kind, content in data.get("files", ())
        ]
        message = SendMessageOptions.model_validate(
            {**wire, "attachments": files or None, "delivery_scope": data.get("scope")}
        )
        return cls(message=message, answers_choices=data.get("answersChoices") is True)


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    """One conversation's state, as a store holds it.

    ``machine_state`` is the full lifecycle state (``in_assistant.conversing``);
    ``init_payload`` is the ``initAssistantPayload`` still to be sent, present exactly while
    the conversation awaits its first reply; ``choices`` are the quick replies or mll nodes
    on offer; ``articles`` are the pending deflection with visit counts. ``run`` names the
    conversation's current run of the assistant (random, set by ``start_assistant``; ``None``
    before, and in records written before it existed), so the idempotency keys of a
    conversation started again after its record was deleted differ from the earlier ones.

    ``outbox`` holds the message whose delivery is in doubt (at most one: a step delivers it
    before doing anything else). ``seen`` are the ids of the last :data:`SEEN_WINDOW`
    assistant messages applied, oldest first, and ``latest_at`` the ``createdAt`` of the
    newest one: a repeat, or a message older than that, changes nothing.
    """

    conversation_id: str
    machine_state: str = INITIAL_STATE
    version: int = 0
    init_payload: InitAssistantPayload | None = None
    choices: tuple[Choice, ...] = ()
    articles: tuple[DeflectionArticle, ...] = ()
    run: str | None = None
    outbox: tuple[KeptMessage, ...] = ()
    seen: tuple[str, ...] = ()
    latest_at: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.version <= MAX_VERSION:
            raise CorruptRecordError(
                f"conversation {self.conversation_id!r}: version {self.version} is outside "
                f"0..{MAX_VERSION}"
            )
        if self.machine_state not in _CANONICAL_STATES:
            raise CorruptRecordError(
                f"conversation {self.conversation_id!r}: unknown state {self.machine_state!r}; "
                f"expected one of {', '.join(LEAF_STATES)}"
            )
        if (self.machine_state == FIRST_REPLY_STATE) != (self.init_payload is not None):
            raise CorruptRecordError(
                f"conversation {self.conversation_id!r}: an initAssistantPayload is pending "
                f"exactly in state {FIRST_REPLY_STATE!r}, but the record is in "
                f"{self.machine_state!r} with{'' if self.init_payload else 'out'} one"
            )

    @classmethod
    def checked(  # noqa: PLR0917 - positional, as the constructor it stands in for
        cls,
        conversation_id: str,
        machine_state: str,
        version: int,
        init_payload: InitAssistantPayload | None,
        choices: tuple[Choice, ...],
        articles: tuple[DeflectionArticle, ...],
        run: str | None,
        outbox: tuple[KeptMessage, ...],
        seen: tuple[str, ...],
        latest_at: str | None,
    ) -> ConversationRecord:
        """A record from parts already checked, without the constructor's checks.

        For the step's reply path, which derives every part from a record that was checked
        and a transition the table allows: the frozen constructor and its checks were a
        tenth of an in-memory send. Fields are set through their slots, as the frozen
        ``__init__`` does.
        """
        record = object.__new__(cls)
        _SET_ID(record, conversation_id)
        _SET_STATE(record, machine_state)
        _SET_VERSION(record, version)
        _SET_INIT(record, init_payload)
        _SET_CHOICES(record, choices)
        _SET_ARTICLES(record, articles)
        _SET_RUN(record, run)
        _SET_OUTBOX(record, outbox)
        _SET_SEEN(record, seen)
        _SET_LATEST(record, latest_at)
        return record

    @property
    def state(self) -> State:
        """The top-level lifecycle state."""
        return top_state(self.machine_state)

    @property
    def awaiting_first_reply(self) -> bool:
        """True while the next reply must carry ``initAssistantPayload``."""
        return self.init_payload is not None

    @property
    def in_assistant_mode(self) -> bool | None:
        """``isInAssistantMode`` for the next message; ``None`` means the field is left out."""
        return assistant_mode_flag(self.machine_state)

    # --- JSON ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-ready dict; empty parts are left out."""
        data: dict[str, Any] = {
            "format": RECORD_FORMAT,
            "conversationId": self.conversation_id,
            "state": self.machine_state,
            "version": self.version,
        }
        if self.init_payload is not None:
            data["initAssistantPayload"] = self.init_payload.to_wire()
        if self.choices:
            data["choices"] = [[choice.display_text, choice.value] for choice in self.choices]
        if self.articles:
            data["articles"] = [article.to_wire() for article in self.articles]
        if self.run is not None:
            data["run"] = self.run
        if self.outbox:
            data["outbox"] = [kept.to_dict() for kept in self.outbox]
        if self.seen:
            data["seen"] = list(self.seen)
        if self.latest_at is not None:
            data["latestAt"] = self.latest_at
        return data

    def to_json(self) -> str:
        """The record as one compact JSON document."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConversationRecord:
        """Read a record written by :meth:`to_dict`; :class:`CorruptRecordError` otherwise."""
        try:
            if data.get("format") not in _READABLE_FORMATS:
                raise CorruptRecordError(
                    f"record format {data.get('format')!r} is not {RECORD_FORMAT}; "
                    "it was written by another version of assistant_flow"
                )
            init = data.get("initAssistantPayload")
            return cls(
                conversation_id=_string(data["conversationId"], "conversationId"),
                machine_state=_CANONICAL_STATES.get(data["state"], data["state"]),
                version=_version(data["version"]),
                init_payload=None if init is None else InitAssistantPayload.model_validate(init),
                choices=tuple(
                    Choice(_string(text, "choices"), _string(value, "choices"))
                    for text, value in data.get("choices", ())
                ),
                articles=tuple(
                    DeflectionArticle.model_validate(article)
                    for article in data.get("articles", ())
                ),
                run=None if (run := data.get("run")) is None else _string(run, "run"),
                outbox=tuple(KeptMessage.from_dict(kept) for kept in data.get("outbox", ())),
                seen=tuple(_string(seen, "seen") for seen in data.get("seen", ())),
                latest_at=None if (at := data.get("latestAt")) is None else _string(at, "latestAt"),
            )
        except CorruptRecordError:
            raise
        except (KeyError, TypeError, ValueError, ValidationError) as exc:
            raise CorruptRecordError(
                f"not a conversation record: {type(exc).__name__}: {exc}"
            ) from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> ConversationRecord:
        """Read a record written by :meth:`to_json`."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CorruptRecordError(f"stored record is not JSON: {exc}") from exc
        if not isinstance(data, Mapping):
            raise CorruptRecordError("stored record is not a JSON object")
        return cls.from_dict(data)


# The slots' own setters: what a frozen dataclass's __init__ calls, without the lookups.
(
    _SET_ID,
    _SET_STATE,
    _SET_VERSION,
    _SET_INIT,
    _SET_CHOICES,
    _SET_ARTICLES,
    _SET_RUN,
    _SET_OUTBOX,
    _SET_SEEN,
    _SET_LATEST,
) = (getattr(ConversationRecord, field.name).__set__ for field in fields(ConversationRecord))


def _string(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise CorruptRecordError(f"record field {field!r} must be a string")
    return value


def _version(value: object) -> int:
    if type(value) is not int or not 0 <= value <= MAX_VERSION:
        raise CorruptRecordError(
            f"record field 'version' must be an integer from 0 to {MAX_VERSION}"
        )
    return value
