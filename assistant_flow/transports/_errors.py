"""Turning what httpx reports into the library's error tree, without leaking the API key.

Kustomer's error bodies come in two documented shapes [D] (docs/concepts/errors):
``{"errors": [{"code", "message", "meta"}]}`` on most routes, and JSON:API errors
``{"status", "code", "title", "detail", "source", "meta"}`` on some. Both are read, as a list
under ``errors`` or as one object at the top level.

httpx's exceptions are kept as ``__cause__``; their text names no headers, and everything
quoted here passes through a scrubber that removes the API key in case a server echoes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

import httpx

from .._exceptions import (
    KustomerAPIError,
    KustomerConnectionError,
    KustomerErrorDetail,
    KustomerTimeoutError,
    RateLimitedError,
)
from ._json import UnreadableJSONError, read_json
from ._retry import rate_limit_wait

__all__ = ["RETRYABLE_HTTPX_ERRORS", "connection_error", "parse_error_body", "status_error"]

# Failures where no answer came and sending again may succeed; with the Idempotency-Key a
# server that dedupes can tell a repeat from a new message. Anything else httpx raises
# (an unsupported scheme, a local protocol error, a body it cannot decode) would fail the
# same way again.
RETRYABLE_HTTPX_ERRORS = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
)

# Kustomer's own words go into our messages; a runaway HTML error page does not.
_MAX_QUOTED = 300
_MAX_ENTRIES = 5

Scrub = Callable[[str], str]


def _text(value: object, scrub: Scrub) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return scrub(text)[:_MAX_QUOTED]


# How deep a scrubbed ``source`` or ``meta`` goes; anything deeper is dropped.
_MAX_DEPTH = 8


def _mapping(value: object, scrub: Scrub) -> Mapping[str, Any] | None:
    """``value`` if a mapping, with every string in it (keys too) scrubbed, else ``None``."""
    if not isinstance(value, Mapping):
        return None
    cleaned = _scrubbed(value, scrub, 0)
    return cleaned if isinstance(cleaned, dict) else None


def _scrubbed(value: object, scrub: Scrub, depth: int) -> object:
    # A server may echo the request (its Authorization header included) anywhere in these.
    if isinstance(value, str):
        return scrub(value)
    if depth >= _MAX_DEPTH:
        return None
    if isinstance(value, Mapping):
        return {scrub(str(k)): _scrubbed(v, scrub, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(item, scrub, depth + 1) for item in value]
    return value


def _detail(entry: Mapping[str, Any], scrub: Scrub) -> KustomerErrorDetail:
    return KustomerErrorDetail(
        code=_text(entry.get("code"), scrub),
        message=_text(entry.get("message"), scrub),
        status=_text(entry.get("status"), scrub),
        title=_text(entry.get("title"), scrub),
        detail=_text(entry.get("detail"), scrub),
        source=_mapping(entry.get("source"), scrub),
        meta=_mapping(entry.get("meta"), scrub),
    )


def parse_error_body(response: httpx.Response, scrub: Scrub) -> tuple[KustomerErrorDetail, ...]:
    """The entries of a Kustomer error body; empty when the body is neither shape.

    A body past the reader's limits (:mod:`._json`), or not JSON at all, is no Kustomer
    error body either: the caller still raises the error of the status, without details.
    """
    try:
        body = read_json(response)
    except UnreadableJSONError:
        return ()
    if not isinstance(body, Mapping):
        return ()
    entries = body.get("errors")
    if isinstance(entries, list):
        return tuple(
            _detail(entry, scrub) for entry in entries[:_MAX_ENTRIES] if isinstance(entry, Mapping)
        )
    # A single JSON:API error object at the top level.
    if any(key in body for key in ("code", "title", "detail")):
        return (_detail(body, scrub),)
    return ()


def _reason(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return "(non-standard status)"


def status_error(
    response: httpx.Response, method: str, path: str, scrub: Scrub, now: float
) -> KustomerAPIError:
    """The error for an answer with an error status (a :class:`RateLimitedError` for 429)."""
    status = response.status_code
    errors = parse_error_body(response, scrub)
    said = "; ".join(
        ": ".join(part for part in (entry.code, entry.text) if part) for entry in errors
    )
    message = f"Kustomer answered {status} {_reason(status)} to {method} {path}"
    if said:
        message = f"{message}: {said}"
    if status == 429:
        wait = rate_limit_wait(response.headers, now)
        if wait is not None:
            message = f"{message} (asked to wait {wait:.3g}s)"
        return RateLimitedError(message, errors=errors, method=method, path=path, retry_after=wait)
    return KustomerAPIError(message, status_code=status, errors=errors, method=method, path=path)


def connection_error(
    exc: httpx.HTTPError, method: str, path: str, scrub: Scrub
) -> KustomerConnectionError:
    """The error for a request that got no answer; ``exc`` becomes its ``__cause__``.

    httpx quotes no headers, but the text of ``exc`` (and of the httpcore or OS errors
    chained under it) comes from elsewhere; any that holds the key is scrubbed in place, so
    a printed traceback cannot show it.
    """
    _scrub_chain(exc, scrub)
    what = "timed out" if isinstance(exc, httpx.TimeoutException) else "got no answer"
    message = f"{method} {path} {what}: {type(exc).__name__}: {scrub(str(exc))[:_MAX_QUOTED]}"
    error = (
        KustomerTimeoutError(message)
        if isinstance(exc, httpx.TimeoutException)
        else KustomerConnectionError(message)
    )
    error.__cause__ = exc
    return error


def _scrub_chain(exc: BaseException, scrub: Scrub) -> None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        args = tuple(scrub(arg) if isinstance(arg, str) else arg for arg in current.args)
        if args != current.args:
            current.args = args
        current = current.__cause__ or current.__context__
