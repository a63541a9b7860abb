"""Reading YAML someone else wrote (assistant files, dialog scripts): bounded, never a crash.

PyYAML's ``safe_load`` is safe from code execution, not from mistakes or malice: a file
nested 10,000 levels deep raises ``RecursionError`` (its composer recurses per level), a date
such as ``2020-13-01`` or a tag such as ``!!int abc`` raises ``ValueError``, ``!!bool x`` a
``KeyError``, ``&a [*a]`` builds a list that contains itself, and a few aliases of aliases
(the "billion laughs") expand to more nodes than memory holds. The loader here refuses each of
these with :class:`YAMLProblem`, which carries the line; callers turn it into their own error
(``InvalidInputError`` for assistant files, ``DialogScriptError`` for scripts).

It also insists that every mapping key is text: both kinds of file describe JSON, whose keys
are strings, and a key YAML reads as a number or a list (``1:``, ``? [a]``) would otherwise
surface later as a ``TypeError`` (say, sorting keys ``1`` and ``"a"``).

Needs PyYAML (the ``stub`` extra); import this module only once a file is to be read.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError

__all__ = [
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "YAMLProblem",
    "compose",
    "construct",
    "decode",
    "load",
]

MAX_YAML_DEPTH = 64
"""The deepest nesting read, counting every mapping, list and value (``a: [b]`` is 3)."""

MAX_YAML_NODES = 100_000
"""The most values a file may hold, every alias counted as a copy of what it names."""

# Key tags that stand for text: plain strings, and the merge key `<<` (and `=`) that the
# safe constructor resolves itself.
_TEXT_KEY_TAGS = frozenset(
    {"tag:yaml.org,2002:str", "tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"}
)
_KINDS = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "null": "null",
    "timestamp": "a date",
    "binary": "binary data",
}
# What PyYAML's safe constructors raise, besides its own errors, on a scalar they cannot read.
_CONSTRUCTOR_FAILURES = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError)


class YAMLProblem(Exception):
    """The text cannot be read as YAML this library accepts; ``reason`` and 1-based ``line``."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason if line is None else f"line {line}: {reason}")
        self.reason = reason
        self.line = line


def _kind(tag: str) -> str:
    name = tag.rsplit(":", 1)[-1]
    return _KINDS.get(name, f"a {name}")


def _shown(node: yaml.Node) -> str:
    value = node.value if isinstance(node.value, str) else ""
    return value if len(value) <= 40 else f"{value[:40]}..."


class _Loader(yaml.SafeLoader):
    """``SafeLoader`` that counts depth and nodes while composing, and never leaks a crash."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        # id(node) -> (nodes, height), recorded once the node is complete. An alias to a node
        # not in here yet points into its own anchor: a structure that contains itself.
        self._shapes: dict[int, tuple[int, int]] = {}

    def compose_node(  # PyYAML's own signature, `index` included
        self,
        parent: yaml.Node | None,
        index: Any,  # noqa: ANN401
    ) -> yaml.Node | None:
        # The stubs leave the parser's peek_event untyped; it returns the next event.
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            shape = self._shapes.get(id(node))
            if node is None or shape is None:
                raise ComposerError(
                    None, None, "an alias inside the mapping or list it names (a loop)", mark
                )
            if self._depth + shape[1] > MAX_YAML_DEPTH:
                raise ComposerError(None, None, _too_deep(), mark)
        else:
            self._depth += 1
            if self._depth > MAX_YAML_DEPTH:
                raise ComposerError(None, None, _too_deep(), mark)
            try:
                node = super().compose_node(parent, index)
            finally:
                self._depth -= 1
            if node is None:  # pragma: no cover - the parser's events always make a node
                raise ComposerError(None, None, "expected a value", mark)
            self._shapes[id(node)] = shape = self._shape(node)
            if shape[0] > MAX_YAML_NODES:
                raise ComposerError(
                    None,
                    None,
                    f"more than {MAX_YAML_NODES} values (aliases counted as copies)",
                    mark,
                )
        if isinstance(parent, yaml.MappingNode) and index is None:  # `node` is a key
            _check_key(node)
        return node

    def _shape(self, node: yaml.Node) -> tuple[int, int]:
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            return 1, 1
        shapes = [self._shapes[id(child)] for child in children]
        return 1 + sum(size for size, _ in shapes), 1 + max((h for _, h in shapes), default=0)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:  # noqa: ANN401
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except _CONSTRUCTOR_FAILURES as error:
            raise ConstructorError(
                None,
                None,
                f"`{_shown(node)}` cannot be read as {_kind(node.tag)}; quote it if it is text",
                node.start_mark,
            ) from error


def _too_deep() -> str:
    return f"nested deeper than {MAX_YAML_DEPTH} levels"


def _check_key(node: yaml.Node) -> None:
    if isinstance(node, yaml.ScalarNode):
        if node.tag in _TEXT_KEY_TAGS:
            return
        problem = f'; YAML reads `{_shown(node)}` as {_kind(node.tag)}: quote it, "{_shown(node)}"'
    else:
        problem = ", not a list" if isinstance(node, yaml.SequenceNode) else ", not a mapping"
    raise ComposerError(None, None, f"a key must be text{problem}", node.start_mark)


def _problem(error: yaml.YAMLError, text: str) -> YAMLProblem:
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        return YAMLProblem(error.problem or str(error), mark.line + 1 if mark is not None else None)
    if isinstance(error, yaml.reader.ReaderError):
        # A control character: the reader names its position, not its line.
        line = text.count("\n", 0, error.position) + 1
        return YAMLProblem(
            f"character #x{error.character:04x} is not allowed in YAML; remove it",
            line,
        )
    return YAMLProblem(str(error))


def decode(data: bytes) -> str:
    """``data`` as UTF-8 text, else :class:`YAMLProblem` naming the first bad byte's line."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise YAMLProblem(
            f"not UTF-8 text (byte 0x{data[error.start]:02x}); save the file as UTF-8", line
        ) from error


def compose(text: str) -> yaml.Node | None:
    """The node tree of the one document in ``text`` (``None`` when empty), lines kept."""
    try:
        loader = _Loader(text)  # the reader checks for control characters here
    except yaml.YAMLError as error:
        raise _problem(error, text) from error
    try:
        return loader.get_single_node()
    except yaml.YAMLError as error:
        raise _problem(error, text) from error
    except RecursionError as error:  # a guard: the depth limit stops far below the stack's
        raise YAMLProblem(_too_deep()) from error
    finally:
        loader.dispose()


def construct(node: yaml.Node) -> Any:  # noqa: ANN401 - any YAML value
    """The Python value of a node from :func:`compose` (dicts, lists, str, numbers...)."""
    loader = _Loader("")
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError as error:
        raise _problem(error, "") from error
    except RecursionError as error:
        raise YAMLProblem(_too_deep()) from error
    finally:
        loader.dispose()


def load(text: str) -> Any:  # noqa: ANN401 - any YAML value
    """The value of the one document in ``text`` (``None`` when empty)."""
    node = compose(text)
    return None if node is None else construct(node)
