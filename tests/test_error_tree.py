"""The error tree drawn in ``_exceptions.py``'s docstring is the tree of classes.

The drawing is what users read; this keeps it true. Names come from ``assistant_flow`` and
``assistant_flow.dialogs`` (where ``DialogScriptError`` lives or is re-exported).
"""

from __future__ import annotations

import re

import assistant_flow
import assistant_flow.dialogs
from assistant_flow import _exceptions

LINE = re.compile(r"^(?P<indent>(?:[│ ]   |├── |└── )*)(?P<name>[A-Z]\w+Error)\b")


def drawn_parents() -> dict[str, str | None]:
    """Each drawn error name and the name its line hangs under."""
    doc = _exceptions.__doc__ or ""
    [drawing] = re.findall(r"```\n(.*?)```", doc, flags=re.DOTALL)
    parents: dict[str, str | None] = {}
    stack: list[str] = []
    for line in drawing.splitlines():
        found = LINE.match(line)
        if not found:
            continue
        depth = len(found["indent"]) // 4
        del stack[depth:]
        parents[found["name"]] = stack[-1] if stack else None
        stack.append(found["name"])
    return parents


def public_errors() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module in (assistant_flow, assistant_flow.dialogs):
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, type) and issubclass(value, assistant_flow.AssistantFlowError):
                found[name] = value
    return found


def test_the_drawing_names_every_public_error_and_nothing_else() -> None:
    assert set(drawn_parents()) == set(public_errors())


def test_each_drawn_error_derives_from_the_one_it_is_drawn_under() -> None:
    errors = public_errors()
    wrong = []
    for name, parent in drawn_parents().items():
        cls = errors[name]
        root = assistant_flow.AssistantFlowError
        library_bases = [base for base in cls.__bases__ if issubclass(base, root)]
        expected = [errors[parent]] if parent else []
        if cls is assistant_flow.AssistantFlowError:
            expected = []
        if library_bases != expected:
            wrong.append(f"{name}: drawn under {parent}, derives from {library_bases}")
    assert wrong == []


def test_every_subclass_of_the_root_is_public() -> None:
    def walk(cls: type[BaseException]) -> set[str]:
        names = {cls.__name__}
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("assistant_flow"):
                names |= walk(sub)
        return names

    assert walk(assistant_flow.AssistantFlowError) == set(public_errors())
