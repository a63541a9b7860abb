"""Field-by-field comparison of wire payloads, with a readable list of differences.

``assert_payload(actual, expected)`` checks the fields ``expected`` names (nested mappings, or
dotted paths such as ``initAssistantPayload.initialMessages.0.meta``); ``ABSENT`` says a field
must not be there. With ``exact=True`` every field of ``actual`` must be expected too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .._exceptions import InvalidInputError

__all__ = [
    "ABSENT",
    "Difference",
    "PayloadMismatchError",
    "assert_payload",
    "assert_payloads",
    "expand_dotted",
    "payload_differences",
]


class _Absent:
    """The marker for a field that must not be in the payload."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()
"""Put it as an expected value to say that the field must not be in the payload."""

_MISSING: Final = object()  # what a path lookup finds where the payload has no such field


@dataclass(frozen=True, slots=True)
class Difference:
    """One field that is not as expected: ``kind`` is missing, unexpected or different."""

    kind: str
    path: str
    expected: Any = None
    actual: Any = None

    def line(self) -> str:
        """The difference as one line of a report."""
        if self.kind == "missing":
            return f"  missing     {self.path}: expected {_show(self.expected)}"
        if self.kind == "unexpected":
            return f"  unexpected  {self.path}: {_show(self.actual)}"
        return (
            f"  different   {self.path}: expected {_show(self.expected)}, got {_show(self.actual)}"
        )


class PayloadMismatchError(AssertionError):
    """A payload differs from what was expected; ``differences`` lists each field."""

    def __init__(
        self, differences: Sequence[Difference], *, heading: str = "payload differs"
    ) -> None:
        self.differences = tuple(differences)
        count = len(self.differences)
        lines = [f"{heading} in {count} field{'s' if count != 1 else ''}:"]
        lines += [difference.line() for difference in self.differences]
        super().__init__("\n".join(lines))


def _show(value: object) -> str:
    if value is ABSENT:
        return "(absent)"
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def expand_dotted(expected: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` as ``{"a": {"b": 1}}``, at every level, so ``exact`` applies to each.

    A path named twice with different values (``a: 1`` beside ``a.b: 2``) raises
    ``ValueError`` naming it.
    """
    nested: dict[str, Any] = {}
    for key, value in expected.items():
        parts = str(key).split(".")
        child = expand_dotted(value) if isinstance(value, Mapping) else value
        here = nested
        for depth, part in enumerate(parts[:-1]):
            inner = here.setdefault(part, {})
            if not isinstance(inner, dict):
                raise ValueError(".".join(parts[: depth + 1]))
            here = inner
        last = parts[-1]
        if last in here:
            if not (isinstance(here[last], dict) and isinstance(child, dict)):
                raise ValueError(".".join(parts))
            here[last] = expand_dotted({**here[last], **child})
        else:
            here[last] = child
    return nested


def _equal(expected: object, actual: object) -> bool:
    # JSON has no int/bool distinction problem in Python: True == 1, so compare types too.
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    return bool(expected == actual)


def _compare(  # noqa: PLR0912 - one branch per kind of value, easier to follow in one place
    actual: object, expected: object, path: str, exact: bool, found: list[Difference]
) -> None:
    if expected is ABSENT:
        if actual is not _MISSING:
            found.append(Difference("unexpected", path, ABSENT, actual))
        return
    if actual is _MISSING and not (isinstance(expected, Mapping) and expected):
        # A missing parent of named fields is reported field by field (ABSENT ones pass).
        found.append(Difference("missing", path, expected))
        return
    if isinstance(expected, Mapping) and isinstance(actual, list):
        # An expanded ``items.0.field`` path: list items are named by their index.
        actual = {str(index): item for index, item in enumerate(actual)}
    if isinstance(expected, Mapping) and (isinstance(actual, Mapping) or actual is _MISSING):
        present: Mapping[str, Any] = actual if isinstance(actual, Mapping) else {}
        for key, value in expected.items():
            child = present.get(str(key), _MISSING)
            _compare(child, value, _join(path, key), exact, found)
        if exact:
            for key in present:
                if key not in expected:
                    found.append(Difference("unexpected", _join(path, key), actual=present[key]))
        return
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            found.append(Difference("different", f"{path} (length)", len(expected), len(actual)))
        for index, (want, got) in enumerate(zip(expected, actual, strict=False)):
            _compare(got, want, _join(path, index), exact, found)
        return
    if not _equal(expected, actual):
        found.append(Difference("different", path or "(payload)", expected, actual))


def payload_differences(
    actual: Mapping[str, Any], expected: Mapping[str, Any], *, exact: bool = False
) -> list[Difference]:
    """Every field where ``actual`` is not as ``expected`` says (empty when it matches)."""
    found: list[Difference] = []
    try:
        nested = expand_dotted(expected)
    except ValueError as clash:
        raise InvalidInputError(
            f"`{clash}` is named twice, once as a value and once as a parent of a dotted path; "
            "name it once",
            field=str(clash),
        ) from None
    _compare(actual, nested, "", exact, found)
    return found


def assert_payload(
    actual: Mapping[str, Any], expected: Mapping[str, Any], *, exact: bool = False
) -> None:
    """Fail with a field-by-field report unless ``actual`` has what ``expected`` names.

    Only the named fields are compared (nested mappings as subsets too), unless ``exact``:
    then any other field is reported as unexpected. Keys may be dotted paths
    (``"lastDeflection.articles.0.visited": 1``); ``ABSENT`` as a value requires the field to
    be left out. Lists compare item by item and must have the same length.
    """
    __tracebackhide__ = True
    found = payload_differences(actual, expected, exact=exact)
    if found:
        raise PayloadMismatchError(found)


def assert_payloads(
    actual: Sequence[Mapping[str, Any]],
    expected: Sequence[Mapping[str, Any]],
    *,
    exact: bool = False,
) -> None:
    """``assert_payload`` for each payload of a sequence, in order; the counts must match."""
    __tracebackhide__ = True
    found: list[Difference] = []
    if len(actual) != len(expected):
        found.append(Difference("different", "(number of payloads)", len(expected), len(actual)))
    for index, (got, want) in enumerate(zip(actual, expected, strict=False)):
        for difference in payload_differences(got, want, exact=exact):
            found.append(
                Difference(
                    difference.kind,
                    f"[{index}].{difference.path}",
                    difference.expected,
                    difference.actual,
                )
            )
    if found:
        raise PayloadMismatchError(found, heading="payloads differ")
