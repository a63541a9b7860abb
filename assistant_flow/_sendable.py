"""What can go on the wire: valid text, and JSON values of bounded nesting and size.

A message that can never be encoded must be refused where the caller hands it over, not
when it is sent: by then it may be stored, and every later send of the conversation would
fail on it. So each string bound for Kustomer is checked for lone surrogates (Python allows
them in a ``str``; UTF-8, and so JSON on the wire, cannot carry them), and each JSON value a
caller or a server hands us (a greeting's template, a received message) is walked once,
without recursion, for its nesting, its size and its types.

The limits are ours, not Kustomer's (it documents none for these): generous for any real
assistant, and small enough that no hostile value can exhaust the stack or the memory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ._exceptions import InvalidInputError

__all__ = [
    "MAX_ID_CHARS",
    "MAX_JSON_ITEMS",
    "MAX_NESTING",
    "MAX_SAFE_INTEGER",
    "MAX_TEXT_CHARS",
    "check_json",
    "check_text",
]

MAX_TEXT_CHARS = 65_536
"""The longest string accepted for the wire (a body, a payload, a template's text)."""

MAX_ID_CHARS = 256
"""The longest conversation, message or article id accepted (Kustomer's ids are 24 hex)."""

MAX_NESTING = 32
"""How deep objects and arrays may nest in a template or received message (Kustomer's own
templates nest five or six levels: an mll tree inside ``actions.tree.children``)."""

MAX_JSON_ITEMS = 10_000
"""How many values (objects, arrays, strings, numbers) one template or message may hold."""

MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer JSON carries exactly to a JavaScript client such as Kustomer's SDKs."""


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_text(text: str, field: str, what: str, *, limit: int = MAX_TEXT_CHARS) -> str:
    """Return ``text`` if it can go on the wire; :class:`InvalidInputError` otherwise.

    ``field`` names it as the caller spelled it, ``what`` the call (``"send_message"``).
    """
    if len(text) > limit:
        raise InvalidInputError(
            f"{what}: `{field}` is {len(text)} characters, over the {limit} accepted; "
            "send a shorter text",
            field=field,
        )
    if not text.isascii() and not _encodes(text):
        raise InvalidInputError(
            f"{what}: `{field}` is not valid text: it holds a lone surrogate, which UTF-8 "
            "cannot encode (decode input with errors='replace' or strip it)",
            field=field,
        )
    return text


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


def check_json(value: object, field: str, what: str) -> None:
    """Check that ``value`` is plain JSON that Kustomer can be sent back.

    Objects with string keys, arrays (lists or tuples), valid strings, finite numbers with
    integers within :data:`MAX_SAFE_INTEGER`, booleans and ``None``; at most
    :data:`MAX_NESTING` levels and :data:`MAX_JSON_ITEMS` values. The error names the path
    of the first offending value (``initialMessages.0.meta.template.actions.3``).
    """
    pending: list[tuple[object, str, int]] = [(value, field, 0)]
    items = 0
    while pending:
        current, path, depth = pending.pop()
        items += 1
        if items > MAX_JSON_ITEMS:
            raise InvalidInputError(
                f"{what}: `{field or '(the value itself)'}` holds more than {MAX_JSON_ITEMS} "
                "values; that is no assistant message",
                field=field or None,
            )
        if isinstance(current, Mapping | list | tuple):
            if depth >= MAX_NESTING:
                raise InvalidInputError(
                    f"{what}: `{path}` nests deeper than {MAX_NESTING} levels; "
                    "flatten the template",
                    field=path,
                )
            pending.extend(_children(current, path, depth + 1, what))
        else:
            _check_scalar(current, path, what)


def _children(
    container: Mapping[object, object] | list[object] | tuple[object, ...],
    path: str,
    depth: int,
    what: str,
) -> list[tuple[object, str, int]]:
    if not isinstance(container, Mapping):
        return [(item, _join(path, str(index)), depth) for index, item in enumerate(container)]
    children = []
    for key, item in container.items():
        if not isinstance(key, str):
            raise InvalidInputError(
                f"{what}: `{path}` has a {type(key).__name__} key; JSON object keys are strings",
                field=path or None,
            )
        check_text(key, path or "(keys)", what, limit=MAX_ID_CHARS)
        children.append((item, _join(path, key), depth))
    return children


def _check_scalar(value: object, path: str, what: str) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        check_text(value, path, what)
    elif isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise InvalidInputError(
                f"{what}: `{path}` is an integer beyond ±{MAX_SAFE_INTEGER}, which JSON "
                "cannot carry exactly; send it as a string",
                field=path,
            )
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(
                f"{what}: `{path}` is {value}, which JSON cannot carry; pass a finite number",
                field=path,
            )
    else:
        raise InvalidInputError(
            f"{what}: `{path}` is {type(value).__name__}, which is not JSON; pass "
            "str, int, float, bool, None, dict or list (decode bytes first)",
            field=path,
        )
