"""Every error assistant_flow raises, in one tree.

```
AssistantFlowError
├── InvalidInputError (also ValueError)   the caller passed something unusable; nothing was
│   │                                     sent and the conversation did not move
│   ├── UnknownChoiceError                choose() named no offered quick reply or mll node
│   ├── UnknownArticleError               visit_article() named no remembered article
│   └── UnknownEventError                 dispatch() got an event name Kustomer does not send
├── ConfigurationError (also TypeError)   a flow was wired with the wrong kind of object,
│                                         e.g. a sync transport handed to AsyncFlow
├── TransitionError                       the trigger is not allowed in the current state
├── TransportError                        the send failed; the conversation did not move,
│                                         so a retry sends the same message again
└── StoreError                            the store failed; nothing was sent if loading failed
    ├── ConflictError                     the record changed since it was loaded
    ├── LockTimeoutError                  the conversation stayed locked too long
    ├── CorruptRecordError                a stored record cannot be read back
    └── StoreUnavailableError             the store cannot be reached or written: Redis down
                                          or restarted, a SQLite file locked or read-only
```

Errors raised because something underneath failed keep that failure as ``__cause__``
(``raise ... from``). No message contains a secret: errors name fields and types, never the
values a caller passed.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AssistantFlowError",
    "ConfigurationError",
    "ConflictError",
    "CorruptRecordError",
    "InvalidInputError",
    "LockTimeoutError",
    "StoreError",
    "StoreUnavailableError",
    "TransitionError",
    "TransportError",
    "UnknownArticleError",
    "UnknownChoiceError",
    "UnknownEventError",
]


class AssistantFlowError(Exception):
    """The root of every error this library raises."""


class InvalidInputError(AssistantFlowError, ValueError):
    """The caller passed something unusable. Nothing was sent and no state changed.

    ``field`` names the offending field as the caller spelled it (a dotted path such as
    ``initialMessages.0.meta``), or is ``None`` when the problem is not one field.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownChoiceError(InvalidInputError):
    """``choose()`` named a choice the latest assistant message did not offer."""

    def __init__(self, choice: str, offered: Sequence[str]) -> None:
        if offered:
            listing = ", ".join(repr(label) for label in offered)
            message = f"{choice!r} was not offered; choose one of: {listing}"
        else:
            message = (
                f"{choice!r} cannot be chosen: no quick replies or mll nodes are on offer. "
                "Pass the assistant's message to receive() first."
            )
        super().__init__(message, field="choice")
        self.choice = choice
        self.offered = tuple(offered)


class UnknownArticleError(InvalidInputError):
    """``visit_article()`` named an article no deflection offered."""

    def __init__(self, article_id: str, known: Sequence[str]) -> None:
        if known:
            listing = ", ".join(repr(known_id) for known_id in known)
            message = f"article {article_id!r} was not offered; the deflection offered: {listing}"
        else:
            message = (
                f"article {article_id!r} cannot be visited: no deflection is pending. "
                "Pass the assistant message carrying meta.articles to receive() first."
            )
        super().__init__(message, field="article_id")
        self.article_id = article_id
        self.known = tuple(known)


class UnknownEventError(InvalidInputError):
    """``dispatch()`` got an event name that is not one of Kustomer's."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        listing = ", ".join(sorted(known))
        super().__init__(
            f"unknown Kustomer event {name!r}; expected one of: {listing}", field="event"
        )
        self.name = name


class ConfigurationError(AssistantFlowError, TypeError):
    """A flow was given the wrong kind of collaborator (say, a sync store to AsyncFlow)."""


class TransitionError(AssistantFlowError):
    """The trigger is not allowed in the conversation's current state."""

    def __init__(self, trigger: str, state: str, allowed: Sequence[str]) -> None:
        listing = ", ".join(sorted(allowed))
        super().__init__(
            f"{trigger} is not allowed while the conversation is {state!r}; allowed here: {listing}"
        )
        self.trigger = trigger
        self.state = state
        self.allowed = tuple(allowed)


class TransportError(AssistantFlowError):
    """The transport could not deliver the message. The conversation did not move."""


class StoreError(AssistantFlowError):
    """The store could not load, save, delete or lock a conversation."""


class ConflictError(StoreError):
    """A save expected one version of the record and found another."""

    def __init__(self, conversation_id: str, expected: int, found: int) -> None:
        super().__init__(
            f"conversation {conversation_id!r} is at version {found}, not {expected}: "
            "someone else saved it since it was loaded (hold the conversation lock while "
            "loading and saving)"
        )
        self.conversation_id = conversation_id
        self.expected = expected
        self.found = found


class LockTimeoutError(StoreError):
    """The conversation's lock could not be taken in time."""


class CorruptRecordError(StoreError):
    """A stored record is not a conversation record this version can read."""


class StoreUnavailableError(StoreError):
    """The store could not be reached or written (server down, file locked or read-only).

    Nothing was half-written: a failed load sends nothing, a failed save leaves the stored
    record as it was. The message names the store, never a password; the underlying error is
    kept as ``__cause__``.
    """
