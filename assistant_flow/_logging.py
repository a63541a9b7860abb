"""Logging: quiet until the application asks, and a processor that hides secrets.

A library prints nothing by itself. Until the application configures structlog, assistant_flow
hands its events to the stdlib logger ``assistant_flow``, which has a ``NullHandler`` and so
stays silent unless the application enables it (``logging.basicConfig(level=logging.INFO)``
shows them). Once the application has called ``structlog.configure(...)``, the events go to
``structlog.get_logger("assistant_flow")`` and follow that configuration. The choice is made
per event, so an application that configures structlog after creating its flows is followed
too. Every event carries ``conversation_id``:

=================  =======  ====================================================================
event              level    fields
=================  =======  ====================================================================
``transition``     info     ``trigger``, ``source``, ``dest`` (only when the state changes)
``message_sent``   info     ``message_id``, ``in_assistant_mode``, ``first_reply``,
                            ``has_payload``, ``deflection_articles``, ``attachments``,
                            ``redelivered``
``send_failed``    warning  ``first_reply``, ``redelivery``, ``kept``, ``error``: the exception's
                            type, never its text
=================  =======  ====================================================================

Message text (``body``, ``payload``) is never logged at any level, nor is a secret ever passed
to a log call. :func:`redact_secrets` is for applications that log their own configuration or
requests next to it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from typing import Any, Protocol

import structlog

__all__ = [
    "LOGGER_NAME",
    "REDACTED",
    "LibraryLogger",
    "Logger",
    "get_logger",
    "info_enabled",
    "redact_secrets",
]

LOGGER_NAME = "assistant_flow"
REDACTED = "[redacted]"

# Compared after lower-casing and dropping "_" and "-", so "API-Key" and "api_key" both match.
_SECRET_KEYS = frozenset(
    {
        "apikey",
        "authorization",
        "token",
        "accesstoken",
        "refreshtoken",
        "jwttoken",
        "secret",
        "clientsecret",
        "password",
        "cookie",
        "setcookie",
        "xkustomertrackingtoken",
    }
)


class Logger(Protocol):
    """What assistant_flow needs of a logger: structlog's bound loggers all fit."""

    def debug(self, event: str, **kw: object) -> object:
        """Log ``event`` at debug level."""

    def info(self, event: str, **kw: object) -> object:
        """Log ``event`` at info level."""

    def warning(self, event: str, **kw: object) -> object:
        """Log ``event`` at warning level."""


class _Event:
    """An event rendered for stdlib logging only when a handler formats it."""

    __slots__ = ("fields", "name")

    def __init__(self, name: str, fields: Mapping[str, object]) -> None:
        self.name = name
        self.fields = fields

    def __str__(self) -> str:
        pairs = " ".join(f"{key}={value!r}" for key, value in self.fields.items())
        return f"{self.name} {pairs}" if pairs else self.name


class LibraryLogger:
    """The logger assistant_flow writes to when the application gives none.

    Each event goes to structlog's ``assistant_flow`` logger once structlog is configured, and
    otherwise to the stdlib logger ``assistant_flow`` (silent unless enabled). The stdlib
    record's message is ``"<event> key=value ..."``; the fields are also on the record as
    ``event_name`` and ``event_fields``, for handlers that format their own.
    """

    __slots__ = ("_stdlib", "_structlog")

    def __init__(self) -> None:
        self._stdlib = logging.getLogger(LOGGER_NAME)
        self._structlog = structlog.get_logger(LOGGER_NAME)

    def enabled_for(self, level: int) -> bool:
        """Whether an event at ``level`` can be shown: cheap, for callers to skip building it.

        Under structlog the application's processors decide, so this says yes.
        """
        return structlog.is_configured() or self._stdlib.isEnabledFor(level)

    def debug(self, event: str, **kw: object) -> None:
        """Log ``event`` at debug level."""
        self._emit(logging.DEBUG, "debug", event, kw)

    def info(self, event: str, **kw: object) -> None:
        """Log ``event`` at info level."""
        self._emit(logging.INFO, "info", event, kw)

    def warning(self, event: str, **kw: object) -> None:
        """Log ``event`` at warning level."""
        self._emit(logging.WARNING, "warning", event, kw)

    def _emit(self, level: int, method: str, event: str, fields: dict[str, object]) -> None:
        if structlog.is_configured():
            getattr(self._structlog, method)(event, **fields)
        elif self._stdlib.isEnabledFor(level):
            self._stdlib.log(
                level,
                "%s",
                _Event(event, fields),
                extra={"event_name": event, "event_fields": fields},
                stacklevel=3,
            )


# Without a handler of its own, stdlib logging would print warnings through its "last
# resort" handler; a library must not print unless the application set up logging.
logging.getLogger(LOGGER_NAME).addHandler(logging.NullHandler())

_LIBRARY_LOGGER = LibraryLogger()


def get_logger() -> Logger:
    """The logger assistant_flow writes to unless given another (a :class:`LibraryLogger`)."""
    return _LIBRARY_LOGGER


def info_enabled(log: Logger) -> bool:
    """Whether ``log`` may show an info event; true for any logger but the library's own."""
    return not isinstance(log, LibraryLogger) or log.enabled_for(logging.INFO)


def _is_secret(key: object) -> bool:
    return isinstance(key, str) and key.lower().replace("_", "").replace("-", "") in _SECRET_KEYS


def _redact(value: object) -> object:
    if isinstance(value, Mapping):
        return {key: REDACTED if _is_secret(key) else _redact(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact(item) for item in value)
    return value


def redact_secrets(
    logger: object, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor that replaces secret-looking values with ``[redacted]``.

    Keys such as ``api_key``, ``Authorization``, ``token`` or ``password`` are masked at any
    depth of nested dicts and lists. Put it before the renderer::

        structlog.configure(processors=[redact_secrets, structlog.processors.JSONRenderer()])
    """
    for key, value in list(event_dict.items()):
        event_dict[key] = REDACTED if _is_secret(key) else _redact(value)
    return event_dict
