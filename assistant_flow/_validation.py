"""Turning pydantic's validation errors into :class:`InvalidInputError`.

Pydantic's own message prints the rejected input, which may be a customer's message or a
secret; these messages name the field, the expected shape and the fix, never the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ._exceptions import InvalidInputError

ModelT = TypeVar("ModelT", bound=BaseModel)

# How to put each kind of mistake right, keyed by pydantic's error type.
_FIXES: Mapping[str, str] = {
    "missing": "it is required; add it",
    "string_type": "pass a str",
    "string_too_short": "it must not be empty",
    "bool_type": "pass True or False",
    "int_type": "pass an int",
    "int_parsing": "pass an int",
    "greater_than_equal": "it must not be negative",
    "list_type": "pass a list",
    "dict_type": "pass a dict (a JSON object)",
    "model_type": "pass a dict (a JSON object)",
    "model_attributes_type": "pass a dict (a JSON object)",
    "extra_forbidden": "it is not a documented field; remove it",
    "bytes_type": "pass bytes",
    "literal_error": "use the documented value",
}


def field_path(loc: tuple[int | str, ...]) -> str:
    """Spell a pydantic location the way a caller wrote it: ``initialMessages.0.meta``."""
    return ".".join(str(part) for part in loc)


def _describe(error: ErrorDetails) -> str:
    path = field_path(error["loc"]) or "(the value itself)"
    fix = _FIXES.get(error["type"], error["msg"])
    received = error.get("input")
    if error["type"] == "missing" or received is None or error["type"] == "extra_forbidden":
        return f"`{path}`: {fix}"
    # The type of the rejected value helps; the value itself may be private.
    return f"`{path}`: {fix} (got {type(received).__name__})"


def invalid_input(exc: ValidationError, what: str) -> InvalidInputError:
    """Build the :class:`InvalidInputError` for a failed validation of ``what``."""
    errors = exc.errors(include_url=False)
    details = "; ".join(_describe(error) for error in errors[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    first = field_path(errors[0]["loc"]) if errors else None
    return InvalidInputError(f"{what}: {details}{more}", field=first or None)


def parse(model: type[ModelT], data: ModelT | Mapping[str, Any], what: str) -> ModelT:
    """Validate ``data`` as ``model``; a model instance passes through unchanged."""
    if isinstance(data, model):
        return data
    if not isinstance(data, Mapping):
        raise InvalidInputError(
            f"{what}: expected a dict (a JSON object) or a {model.__name__}, "
            f"got {type(data).__name__}",
            field=None,
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_input(exc, what) from exc
