"""Every error assistant_flow raises, in one tree.

```
AssistantFlowError
├── InvalidInputError (also ValueError)   the caller passed something unusable; nothing was
│   │                                     sent and the conversation did not move
│   ├── UnknownChoiceError                choose() named no offered quick reply or mll node
│   ├── UnknownArticleError               visit_article() named no remembered article
│   ├── UnknownEventError                 dispatch() got an event name Kustomer does not send
│   ├── DialogScriptError                 a dialog script cannot run as written; names the file,
│   │                                     the line and the key (assistant_flow.dialogs)
│   └── AttachmentError                   a file breaks Kustomer's type or size limits; it
│                                         names the file and the limit (no request was made)
├── ConfigurationError (also TypeError)   a flow was wired with the wrong kind of object,
│                                         e.g. a sync transport handed to AsyncFlow
├── TransitionError                       the trigger is not allowed in the current state
├── TransportError                        the send failed (`kept` false: nothing moved) or its
│   │                                     outcome is unknown (`kept` true: the message is kept
│   │                                     and delivered once, before the next step)
│   ├── KustomerAPIError                  Kustomer answered with an error status: `status_code`,
│   │   │                                 and `errors` parsed from its error body
│   │   └── RateLimitedError              429; `retry_after` is the wait Kustomer asked for
│   ├── KustomerConnectionError           no answer: connection refused or dropped, or a timeout
│   │   └── KustomerTimeoutError          the request timed out
│   ├── UnexpectedResponseError           a success status with a body that is not a message
│   └── RetriesExhaustedError             every allowed attempt failed, or the time budget ran
│                                         out; `last_error` (also `__cause__`) is the last failure
└── StoreError                            the store failed; nothing was sent if loading failed.
    │                                     Raised after a send (the save failed), `sent` is
    │                                     the SentMessage: delivered, but the state not saved
    ├── ConflictError                     the record changed since it was loaded
    ├── LockLostError                     the step's lock lapsed before its save; nothing saved
    ├── LockTimeoutError                  the conversation stayed locked too long
    ├── CorruptRecordError                a stored record cannot be read back
    └── StoreUnavailableError             the store cannot be reached or written: Redis down
                                          or restarted, a SQLite file locked or read-only
```

Errors raised because something underneath failed keep that failure as ``__cause__``
(``raise ... from``). No message contains a secret: errors name fields and types, never the
values a caller passed, and the HTTP errors never carry the API key (the transport scrubs
it from anything it quotes, and httpx's own exceptions, kept as causes, quote no headers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._messages import SentMessage

__all__ = [
    "AssistantFlowError",
    "AttachmentError",
    "ConfigurationError",
    "ConflictError",
    "CorruptRecordError",
    "DialogScriptError",
    "InvalidInputError",
    "KustomerAPIError",
    "KustomerConnectionError",
    "KustomerErrorDetail",
    "KustomerTimeoutError",
    "LockLostError",
    "LockTimeoutError",
    "RateLimitedError",
    "RetriesExhaustedError",
    "StoreError",
    "StoreUnavailableError",
    "TransitionError",
    "TransportError",
    "UnexpectedResponseError",
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


class DialogScriptError(InvalidInputError):
    """A dialog script cannot be run as written: bad YAML, an unknown step, a wrong type.

    ``path`` is the script's file, ``line`` the 1-based line of the mistake (``None`` when it
    concerns the whole file) and ``field`` the script key at fault, as a dotted path
    (``steps.3.expect.isInAssistantMode``). ``str(error)`` starts with ``path:line:``, as
    compilers report, so editors and CI logs link straight to it.
    """

    def __init__(
        self, message: str, *, path: str | Path, line: int | None = None, field: str | None = None
    ) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}", field=field)
        self.path = Path(path)
        self.line = line
        self.reason = message


class AttachmentError(InvalidInputError):
    """A file breaks Kustomer's attachment rules (type, size a file, size a message).

    Raised by the HTTP transport before it makes any request, so nothing was uploaded or sent
    and the conversation did not move. ``name`` is the file's name and ``limit`` the rule it
    broke, in words (say ``"5 MB a file"``).
    """

    def __init__(self, message: str, *, field: str, name: str, limit: str) -> None:
        super().__init__(message, field=field)
        self.name = name
        self.limit = limit


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
    """The transport could not deliver the message, or cannot say whether it did.

    ``outcome_unknown`` is true when the request may have reached Kustomer (a timeout or a
    dropped connection after the body went out, a 5xx, 408, 409 or 429, retries exhausted,
    an answer that could not be read); a custom transport sets it on the errors it raises
    for such sends. ``kept`` is true when the flow kept the message because of that: it is
    delivered, with the same ``Idempotency-Key``, before the conversation's next step (or by
    ``flush()``), exactly once. When ``kept`` is false nothing was delivered and the
    conversation did not move.
    """

    outcome_unknown: bool = False
    kept: bool = False


@dataclass(frozen=True, slots=True)
class KustomerErrorDetail:
    """One entry of a Kustomer error body, in either of its two documented shapes.

    Most routes answer ``{"errors": [{"code", "message", "meta"}]}``; some answer JSON:API
    errors ``{"status", "code", "title", "detail", "source", "meta"}``. Fields a shape lacks
    are ``None``.
    """

    code: str | None = None
    message: str | None = None
    status: str | None = None
    title: str | None = None
    detail: str | None = None
    source: Mapping[str, Any] | None = None
    meta: Mapping[str, Any] | None = field(default=None, repr=False)

    @property
    def text(self) -> str:
        """The most readable description present: ``message``, else ``detail``, else ``title``."""
        return self.message or self.detail or self.title or ""


# Client-error statuses that do not refuse the request for good: a timeout, a conflict with
# a concurrent request, a rate limit.
_NOT_REFUSALS = frozenset({408, 409, 429})


class KustomerAPIError(TransportError):
    """Kustomer answered with an error status.

    ``status_code`` is the HTTP status, ``errors`` the entries of Kustomer's error body
    (empty when the body was not one), ``method`` and ``path`` the request that failed.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        errors: Sequence[KustomerErrorDetail] = (),
        method: str = "",
        path: str = "",
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.errors = tuple(errors)
        self.method = method
        self.path = path
        # Only a 4xx that refuses the request says for sure that nothing was stored; a 5xx
        # may come after the work was done, and 408, 409 and 429 say "not now", not "no".
        self.outcome_unknown = not (400 <= status_code < 500) or status_code in _NOT_REFUSALS


class RateLimitedError(KustomerAPIError):
    """429 Too Many Requests. ``retry_after`` is the wait in seconds Kustomer asked for, if any."""

    def __init__(
        self,
        message: str,
        *,
        errors: Sequence[KustomerErrorDetail] = (),
        method: str = "",
        path: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status_code=429, errors=errors, method=method, path=path)
        self.retry_after = retry_after


class KustomerConnectionError(TransportError):
    """No answer came: the connection was refused or dropped, or the request timed out."""

    outcome_unknown = True


class KustomerTimeoutError(KustomerConnectionError):
    """The request timed out (connecting, writing, reading or waiting for a pooled connection)."""


class UnexpectedResponseError(TransportError):
    """Kustomer answered with a success status but a body that is not what the route returns.

    Not retried: the request may well have been processed.
    """

    outcome_unknown = True

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class RetriesExhaustedError(TransportError):
    """Every allowed attempt failed, or waiting for another would pass the time budget.

    ``attempts`` is how many requests were made, ``elapsed`` the seconds spent, and
    ``last_error`` the last failure (a :class:`KustomerAPIError` or
    :class:`KustomerConnectionError`), which is also ``__cause__``.
    """

    outcome_unknown = True

    def __init__(
        self, message: str, *, attempts: int, elapsed: float, last_error: TransportError
    ) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.elapsed = elapsed
        self.last_error = last_error


class StoreError(AssistantFlowError):
    """The store could not load, save, delete or lock a conversation.

    ``sent`` is ``None`` unless the message of the step was delivered before the save failed:
    then it is that :class:`SentMessage`, and the conversation's stored state is the one
    before the step (sending again would repeat the message).
    """

    sent: SentMessage | None = None


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


class LockLostError(StoreError):
    """The step's lock lapsed and was not renewed in time, so its save was refused.

    Happens when the process stalled (or could not reach the store) for a whole
    ``lock_timeout``; another worker may have taken the conversation since.
    """

    def __init__(self, conversation_id: str, lock_timeout: float) -> None:
        super().__init__(
            f"conversation {conversation_id!r}: the lock was lost before the save (it was not "
            f"renewed within lock_timeout={lock_timeout} s, or the store lost it), so nothing "
            "was saved"
        )
        self.conversation_id = conversation_id


class LockTimeoutError(StoreError):
    """The conversation's lock could not be taken in time."""


class CorruptRecordError(StoreError):
    """A stored record is not a conversation record this version can read."""


class StoreUnavailableError(StoreError):
    """The store could not be reached or written (server down, file locked or read-only).

    Nothing is half-written: a failed load sends nothing, and a save is written whole or not
    at all. When the store could not be reached, nothing was written; when Redis timed out or
    dropped the connection after the command was sent, the message says the outcome is
    unknown (the save may be stored). The message names the store, never a password; the
    underlying error is kept as ``__cause__``.
    """
