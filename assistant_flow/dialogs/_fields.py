"""Which dotted paths exist in a ``sendMessage`` payload, read from the wire models.

A dialog script may only expect fields the wire model has: a typo such as
``isInAsistantMode`` would otherwise be an expectation that can never be met, or, with
``absent``, one that can never fail.
"""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

from .._messages import SendMessageOptions

__all__ = ["unknown_wire_field", "wire_annotation"]

# What a transport adds beside the sendMessage options (docs/http-contract.md).
_TRANSPORT_FIELDS = {"customerId": str}


class _MemoryFile(BaseModel):
    """The ``file`` of an attachment as ``MemoryTransport`` records it."""

    name: str
    type: str
    size: int


class _SentAttachment(BaseModel):
    """An attachment in a payload: ``{file}`` over memory, an uploaded reference over HTTP."""

    file: _MemoryFile
    id: str
    name: str
    contentType: str
    contentLength: int


def _strip_optional(annotation: object) -> object:
    if get_origin(annotation) in (Union, types.UnionType):
        kept = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(kept) == 1:
            return kept[0]
    return annotation


def _model_fields(model: type[BaseModel]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if info.exclude:  # never on the wire (deliveryScope, an attachment's bytes)
            continue
        fields[info.alias or name] = info.annotation
    return fields


def _child(annotation: object, part: str) -> tuple[bool, object]:
    """Whether ``part`` can follow a value of ``annotation``, and the child's annotation."""
    annotation = _strip_optional(annotation)
    if annotation is Any:
        return True, Any
    origin = get_origin(annotation)
    if origin is list:
        return part.isdigit(), get_args(annotation)[0]
    if origin is dict:
        return True, get_args(annotation)[1]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        fields = _model_fields(annotation)
        if part in fields:
            return True, fields[part]
        return False, None
    return False, None  # a scalar has no fields


def wire_annotation(dotted: str) -> tuple[object, str | None]:
    """The type ``dotted`` has in a payload and ``None``, or ``None`` and why it cannot exist."""
    top: dict[str, object] = {**_model_fields(SendMessageOptions), **_TRANSPORT_FIELDS}
    # Attachments travel in a transport's own shape (a file over memory, an id over HTTP).
    top["attachments"] = list[_SentAttachment]
    parts = dotted.split(".")
    if parts[0] not in top:
        return None, f"`{parts[0]}` is not a field of a sendMessage payload; known: " + ", ".join(
            sorted(top)
        )
    annotation = top[parts[0]]
    walked = parts[0]
    for part in parts[1:]:
        ok, annotation = _child(annotation, part)
        if not ok:
            return None, f"`{walked}` has no field `{part}`"
        walked = f"{walked}.{part}"
    return _strip_optional(annotation), None


def unknown_wire_field(dotted: str) -> str | None:
    """``None`` when ``dotted`` can exist in a payload, else the reason it cannot."""
    return wire_annotation(dotted)[1]
