r"""Reading the JSON of an HTTP answer from a server we do not control: bounded, never a crash.

Every answer the HTTP transport parses (a sent message, an attachment announce, an error
body) goes through :func:`read_json`. A body past :data:`MAX_JSON_BYTES` is not parsed at all;
one nested deeper than :data:`MAX_JSON_DEPTH` is refused. Python's ``json`` recurses in C once
per level and raises ``RecursionError`` near the interpreter's limit (about 1,000 levels), so
that error is caught, and the depth below it is measured by an iterative walk. The body must
be UTF-8 (a BOM is allowed), strict JSON (no ``NaN``, ``Infinity`` or numbers that overflow a
float) and its text real Unicode (no lone ``\ud800`` escapes, which no encoder can write back).
"""

from __future__ import annotations

import json
import math
from typing import NoReturn

import httpx

__all__ = ["MAX_JSON_BYTES", "MAX_JSON_DEPTH", "UnreadableJSONError", "read_json"]

MAX_JSON_BYTES = 1024 * 1024
"""The largest answer body parsed, in bytes (1 MiB; a Kustomer message answer is ~1 KB)."""

MAX_JSON_DEPTH = 64
"""The deepest nesting of objects and arrays read (``{}`` is 1; a message answer is ~6)."""


class UnreadableJSONError(ValueError):
    """The body is not JSON this library reads; ``reason`` says why, in words after "that".

    Internal: the readers turn it into :class:`UnexpectedResponseError` (a success answer)
    or an error without Kustomer's details (an error answer). A ``ValueError``, as what
    ``json`` raises is. It quotes nothing of the body, which may echo the request.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _refuse_constant(name: str) -> NoReturn:
    # NaN and Infinity are JavaScript, not JSON (RFC 8259 has no such numbers).
    raise UnreadableJSONError(f"is not JSON ({name} is not a JSON number)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses to inf: no wait, count or id is that
        raise UnreadableJSONError("holds a number too large for a float")
    return value


def read_json(response: httpx.Response) -> object:
    """The parsed body of ``response``, or :class:`UnreadableJSONError` saying why not."""
    try:
        content = response.content
    except (httpx.DecodingError, httpx.StreamError):
        # A Content-Encoding that does not decode, or a stream closed before it was read.
        raise UnreadableJSONError("could not be read") from None
    if len(content) > MAX_JSON_BYTES:
        raise UnreadableJSONError(f"is larger than {MAX_JSON_BYTES} bytes")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnreadableJSONError("is not UTF-8") from None
    try:
        document = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except UnreadableJSONError:
        raise
    except RecursionError:
        raise UnreadableJSONError(f"nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:
        # Not chained: the decode error keeps the whole body (``.doc``), which may echo
        # anything the request carried.
        raise UnreadableJSONError("is not JSON") from None
    _check_tree(document)
    return document


def _check_tree(document: object) -> None:
    """Refuse a document nested past the limit or holding a lone surrogate; no recursion."""
    pending: list[tuple[object, int]] = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            _check_text(value)
            continue
        if isinstance(value, dict):
            children: list[object] = [*value, *value.values()]
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            raise UnreadableJSONError(f"nests deeper than {MAX_JSON_DEPTH} levels")
        for child in children:
            if isinstance(child, str):
                _check_text(child)
            elif isinstance(child, dict | list):
                pending.append((child, depth + 1))


def _check_text(text: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UnreadableJSONError("holds text with a lone surrogate (such as \\ud800)") from None
