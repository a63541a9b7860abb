"""structlog helpers: the library's logger, and a processor that hides secrets.

assistant_flow logs through ``structlog.get_logger("assistant_flow")``, so it follows however
the application configured structlog. Every event carries ``conversation_id``:

=================  =======  ====================================================================
event              level    fields
=================  =======  ====================================================================
``transition``     info     ``trigger``, ``source``, ``dest`` (only when the state changes)
``message_sent``   info     ``message_id``, ``in_assistant_mode``, ``first_reply``,
                            ``has_payload``, ``deflection_articles``, ``attachments``
``send_failed``    warning  ``trigger``, ``error``: the exception's type, never its text
=================  =======  ====================================================================

Message text (``body``, ``payload``) is never logged at any level: structlog's default
configuration prints debug events, and customers' words do not belong on stdout. Nor is a
secret ever passed to a log call. :func:`redact_secrets` is for applications
that log their own configuration or requests next to it.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any, Protocol

import structlog

__all__ = ["LOGGER_NAME", "REDACTED", "Logger", "get_logger", "redact_secrets"]

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


def get_logger() -> Logger:
    """The logger assistant_flow writes to (a structlog logger named ``assistant_flow``)."""
    logger: Logger = structlog.get_logger(LOGGER_NAME)
    return logger


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
