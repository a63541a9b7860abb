"""Reading a dialog script (``*.dialog.yaml``) into steps, with each mistake's file and line.

The format is documented in ``docs/dialog-scripts.md``. PyYAML is imported when a script is
loaded, not before, so that importing this package needs only the core dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from pydantic import ValidationError

import assistant_flow

from .._events import KUSTOMER_EVENTS
from .._exceptions import AssistantFlowError, InvalidInputError
from .._machine import State
from .._messages import InitAssistantResponse
from .._validation import invalid_input
from ._compare import ABSENT, expand_dotted
from ._errors import DialogScriptError
from ._fields import wire_annotation
from ._names import SUFFIXES

if TYPE_CHECKING:
    import yaml

__all__ = [
    "ACTIONS",
    "EVENT_ALIASES",
    "DialogScript",
    "Step",
    "is_dialog_script",
    "load_script",
]

SENDING_ACTIONS = ("say", "choose", "attach")
"""Actions that send a customer message, the only ones that may carry ``expect``."""

ACTIONS = (*SENDING_ACTIONS, "visit", "event", "assistant")
"""Every action a step can take; a step names exactly one (``say`` may go with ``attach``)."""

EVENT_ALIASES = {
    "assistant ended": "onAssistantEnded",
    "conversation ended": "onConversationEnded",
}
"""Plain-words names for the events a script most often sends."""

_STEP_OPTIONS = {"expect", "absent", "exact", "state", "events", "error", "lang", "payload"}
_TOP_KEYS = {"name", "assistant", "assistants", "init", "conversation", "customer", "steps"}
# A step that raises sends nothing, so none of these could be checked; `state` still can.
_NOT_WITH_ERROR = ("expect", "absent", "exact", "events")


def is_dialog_script(path: Path) -> bool:
    """Whether the file name follows the dialog-script convention (``*.dialog.yaml``)."""
    return path.name.endswith(SUFFIXES)


@dataclass(frozen=True)
class Step:
    """One step of a script: an action, what it needs, and what must follow."""

    number: int
    line: int
    action: str
    argument: Any
    say: str | None = None
    lang: str | None = None
    payload: dict[str, Any] | None = None
    expect: dict[str, Any] | None = None
    exact: bool = False
    state: State | None = None
    events: tuple[str, ...] | None = None
    error: str | None = None

    def describe(self) -> str:
        """The step as a report names it: ``choose: "Billing"``."""
        if self.action == "attach":
            return f"attach: {self.argument.get('name')!r}"
        if isinstance(self.argument, str):
            return f"{self.action}: {self.argument!r}"
        return self.action


@dataclass(frozen=True)
class DialogScript:
    """A parsed script. ``assistant`` set: the stub plays it; else messages are fed."""

    path: Path
    name: str
    steps: tuple[Step, ...]
    assistant: str | None = None
    assistants: Path | None = None
    init: dict[str, Any] | None = None
    conversation: str = "conv_1"
    customer: str = "cust_dialog"
    lines: dict[str, int] = field(default_factory=dict)

    @property
    def played(self) -> bool:
        """Whether the assistant's messages come from the stub playing ``assistant``."""
        return self.assistant is not None


# --- a YAML tree that remembers lines -------------------------------------------------------


class _Reader:
    """Values from a composed YAML node tree, each mistake reported at its node's line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, node: yaml.Node | None, message: str, where: str | None = None) -> NoReturn:
        line = node.start_mark.line + 1 if node is not None else None
        raise DialogScriptError(message, path=self.path, line=line, field=where)

    def value(self, node: yaml.Node) -> Any:  # noqa: ANN401 - any YAML value
        from .. import _yaml  # noqa: PLC0415 - the `stub` extra is only needed once a script is read

        try:
            return _yaml.construct(node)
        except _yaml.YAMLProblem as error:
            line = error.line if error.line is not None else node.start_mark.line + 1
            raise DialogScriptError(
                f"cannot read this value: {error.reason}", path=self.path, line=line
            ) from error

    def mapping(self, node: yaml.Node, where: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        import yaml  # noqa: PLC0415

        if not isinstance(node, yaml.MappingNode):
            self.fail(node, f"`{where}` must be a mapping (key: value lines)", where)
        entries = []
        for key_node, value_node in node.value:
            key = self.value(key_node)
            if not isinstance(key, str):
                self.fail(key_node, f"keys of `{where}` must be text", where)
            entries.append((key, key_node, value_node))
        return entries

    def text(self, node: yaml.Node, where: str) -> str:
        value = self.value(node)
        if not isinstance(value, str) or not value:
            trap = _yaml_trap(node, value)
            found = f"; {trap}" if trap else f", not {_type_name(value)}"
            self.fail(node, f"`{where}` must be non-empty text{found}", where)
        return str(value)


def _yaml_trap(node: yaml.Node, value: object) -> str | None:
    """How YAML misread a plain scalar meant as text (``no``, ``on``, ``12:30``), if it did."""
    import yaml  # noqa: PLC0415

    if not isinstance(node, yaml.ScalarNode) or node.style is not None or value is None:
        return None
    if isinstance(value, bool):
        read = "true" if value else "false"
    elif isinstance(value, int | float):
        read = f"the number {value}"
    elif not isinstance(value, str):
        read = f"a {type(value).__name__}"
    else:
        return None
    return f'YAML read `{node.value}` as {read}; quote it: "{node.value}"'


def _no_duplicate_keys(reader: _Reader, root: yaml.Node) -> None:
    """Fail at the second occurrence of a key in any mapping; YAML would keep only the last."""
    import yaml  # noqa: PLC0415

    pending, seen_nodes = [root], set()
    while pending:
        node = pending.pop()
        if id(node) in seen_nodes:  # an alias shares its node
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    line = key_node.start_mark.line + 1
                    if key_node.value in first:
                        reader.fail(
                            key_node,
                            f"`{key_node.value}` given twice (first on line "
                            f"{first[key_node.value]}); YAML would keep only the last",
                            key_node.value,
                        )
                    first[key_node.value] = line
                pending.append(value_node)
        elif isinstance(node, yaml.SequenceNode):
            pending.extend(node.value)


def _type_name(value: object) -> str:
    return "nothing" if value is None else type(value).__name__


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a file; a name no file can have (too long, a NUL) is not one."""
    try:
        return path.is_file()
    except (OSError, ValueError):  # is_file() lets ENAMETOOLONG through
        return False


def _event_name(reader: _Reader, node: yaml.Node, where: str) -> str:
    name = reader.text(node, where)
    name = EVENT_ALIASES.get(name, name)
    if name not in KUSTOMER_EVENTS:
        known = ", ".join([*EVENT_ALIASES, *sorted(KUSTOMER_EVENTS)])
        reader.fail(node, f"unknown event {name!r}; use one of: {known}", where)
    return name


def _attachment(reader: _Reader, node: yaml.Node, where: str) -> dict[str, Any]:
    value = reader.value(node)
    if isinstance(value, str):
        value = {"path": value}
    if not isinstance(value, dict):
        reader.fail(node, f"`{where}` must be a file path or {{name, content}}", where)
    unknown = set(value) - {"path", "name", "content", "content_type"}
    if unknown:
        reader.fail(node, f"`{where}` has unknown keys: {', '.join(sorted(unknown))}", where)
    if "path" in value:
        file = reader.path.parent / str(value["path"])
        if not _is_file(file):
            reader.fail(node, f"`{where}`: no file {value['path']!r} next to the script", where)
        value = {**value, "path": str(file)}
    elif not isinstance(value.get("name"), str) or not isinstance(value.get("content"), str):
        reader.fail(node, f"`{where}` needs `path`, or `name` and `content` (text)", where)
    content_type = value.get("content_type")
    if content_type is not None and (not isinstance(content_type, str) or not content_type):
        reader.fail(
            node,
            f"`{where}.content_type` must be text such as text/plain, not "
            f"{_type_name(content_type)}",
            f"{where}.content_type",
        )
    return dict(value)


def _check_scalar(reader: _Reader, node: yaml.Node, path: str, annotation: object) -> None:
    """Fail when a leaf cannot equal what the wire model sends there (``payload: 1``)."""
    value = reader.value(node)
    if value is None or annotation not in (str, bool, int):
        return
    fits = (
        isinstance(value, str)
        if annotation is str
        else isinstance(value, bool)
        if annotation is bool
        else isinstance(value, int) and not isinstance(value, bool)
    )
    if fits:
        return
    wanted = {str: "text", bool: "true or false", int: "a whole number"}[annotation]
    trap = _yaml_trap(node, value) if annotation is str else None
    found = trap or f"got {_type_name(value)}"
    reader.fail(node, f"`{path}` is {wanted} on the wire, so this can never match: {found}", path)


def _check_expected(reader: _Reader, node: yaml.Node, path: str, where: str) -> None:
    """Check every field a (nested) expectation names, and its leaves' types, at their lines."""
    import yaml  # noqa: PLC0415

    from .._yaml import MAX_YAML_DEPTH  # noqa: PLC0415

    children: list[tuple[str, yaml.Node, yaml.Node]] = []
    if isinstance(node, yaml.MappingNode):
        children = reader.mapping(node, f"{where}.{path}" if path else where)
    elif isinstance(node, yaml.SequenceNode):
        children = [(str(index), item, item) for index, item in enumerate(node.value)]
    for key, key_node, value_node in children:
        full = f"{path}.{key}" if path else key
        if full.count(".") >= MAX_YAML_DEPTH:
            # Each dotted part is a level of the payload compared, as a nested mapping is.
            reader.fail(
                key_node,
                f"`{full[:60]}...` names a field deeper than {MAX_YAML_DEPTH} levels",
                f"{where}.{full[:60]}",
            )
        annotation, problem = wire_annotation(full)
        if problem:
            reader.fail(key_node, problem, f"{where}.{full}")
        if isinstance(value_node, yaml.ScalarNode):
            _check_scalar(reader, value_node, full, annotation)
        else:
            _check_expected(reader, value_node, full, where)


def _expectation(
    reader: _Reader, node: yaml.Node | None, where: str, absent: list[tuple[str, yaml.Node]]
) -> dict[str, Any]:
    import yaml  # noqa: PLC0415

    expected: dict[str, Any] = {}
    if node is not None:
        if not isinstance(node, yaml.MappingNode):
            reader.fail(node, f"`{where}` must be a mapping of field: value", where)
        _check_expected(reader, node, "", where)
        expected = dict(reader.value(node))
    for name, name_node in absent:
        problem = wire_annotation(name)[1]
        if problem:
            reader.fail(name_node, problem, f"{where}.absent")
        expected[name] = ABSENT
    try:
        return expand_dotted(expected)
    except ValueError as clash:
        reader.fail(
            node if node is not None else absent[0][1],
            f"`{clash}` is named twice (as a value and as part of a dotted path); name it once",
            f"{where}.{clash}",
        )


# One branch per step key keeps each check next to its message.
def _step(  # noqa: PLR0912, PLR0915
    reader: _Reader, node: yaml.Node, number: int, played: bool
) -> Step:
    import yaml  # noqa: PLC0415

    where = f"steps.{number}"
    entries = reader.mapping(node, where)
    keys = {key: (key_node, value_node) for key, key_node, value_node in entries}
    actions = [key for key in keys if key in ACTIONS]
    if "attach" in actions and "say" in actions:
        actions.remove("say")
    for key, key_node, _ in entries:
        if key not in ACTIONS and key not in _STEP_OPTIONS:
            reader.fail(
                key_node,
                f"unknown step key `{key}`; a step is one of {', '.join(ACTIONS)}, "
                f"with any of {', '.join(sorted(_STEP_OPTIONS))}",
                f"{where}.{key}",
            )
    if len(actions) != 1:
        found = ", ".join(actions) or "none"
        reader.fail(node, f"a step takes exactly one action ({', '.join(ACTIONS)}); found {found}")
    action = actions[0]
    if "error" in keys:
        for option in _NOT_WITH_ERROR:
            if option in keys:
                reader.fail(
                    keys[option][0],
                    f"`{option}` cannot go with `error`: a step that raises sends nothing, so "
                    "there is nothing to check but `state`; move it to a step of its own",
                    f"{where}.{option}",
                )
    if action not in SENDING_ACTIONS:
        for option in ("lang", "events", "exact"):
            if option in keys:
                reader.fail(
                    keys[option][0],
                    f"`{option}` goes with say, choose or attach only: `{action}` sends no "
                    "message"
                    + (", so the stub emits no events for it" if option == "events" else ""),
                    f"{where}.{option}",
                )
    action_node = keys[action][1]
    line = node.start_mark.line + 1
    options: dict[str, Any] = {}
    if action in ("say", "choose", "visit"):
        argument: Any = reader.text(action_node, f"{where}.{action}")
    elif action == "attach":
        argument = _attachment(reader, action_node, f"{where}.attach")
        if "say" in keys:
            options["say"] = reader.text(keys["say"][1], f"{where}.say")
    elif action == "event":
        argument = _event_name(reader, action_node, f"{where}.event")
    else:  # assistant
        if played:
            reader.fail(
                keys[action][0],
                "`assistant` feeds a message, but this script's assistant is played by the stub "
                "(top-level `assistant`); drop one of them",
                f"{where}.assistant",
            )
        value = reader.value(action_node)
        if isinstance(value, str):
            value = {"body": value}
        if not isinstance(value, dict):
            reader.fail(action_node, "`assistant` must be text or a message mapping", where)
        argument = {"direction": "out", **value}
    if "lang" in keys:
        options["lang"] = reader.text(keys["lang"][1], f"{where}.lang")
    if "payload" in keys:
        if action != "event":
            reader.fail(keys["payload"][0], "`payload` goes with `event` only", where)
        payload = reader.value(keys["payload"][1])
        if not isinstance(payload, dict):
            reader.fail(keys["payload"][1], "`payload` must be a mapping", f"{where}.payload")
        options["payload"] = payload
    absent: list[tuple[str, yaml.Node]] = []
    if "absent" in keys:
        absent_node = keys["absent"][1]
        names = reader.value(absent_node)
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            reader.fail(absent_node, "`absent` must be a field name or a list of them", where)
        absent = [(name, absent_node) for name in names]
    if "expect" in keys or absent:
        if action not in SENDING_ACTIONS:
            first = keys.get("expect", keys.get("absent"))
            reader.fail(
                first[0] if first else node,
                f"`{action}` sends no message, so it has no payload to expect; "
                "put `expect` on a say, choose or attach step",
                where,
            )
        expect_node = keys["expect"][1] if "expect" in keys else None
        options["expect"] = _expectation(reader, expect_node, f"{where}.expect", absent)
    if "exact" in keys:
        exact = reader.value(keys["exact"][1])
        if not isinstance(exact, bool):
            reader.fail(keys["exact"][1], "`exact` must be true or false", f"{where}.exact")
        options["exact"] = exact
        if exact and "expect" not in options:
            options["expect"] = {}  # `exact` alone: the payload must have no field at all
    if "state" in keys:
        state = reader.value(keys["state"][1])
        if not isinstance(state, str) or state not in {member.value for member in State}:
            known = ", ".join(member.value for member in State)
            reader.fail(keys["state"][1], f"`state` must be one of {known}, not {state!r}", where)
        options["state"] = State(state)
    if "events" in keys:
        if not played:
            reader.fail(
                keys["events"][0],
                "`events` checks what the stub emitted; only a played script (top-level "
                "`assistant`) has them",
                where,
            )
        events_node = keys["events"][1]
        if not isinstance(events_node, yaml.SequenceNode):
            reader.fail(events_node, "`events` must be a list of event names", where)
        options["events"] = tuple(
            _event_name(reader, item, f"{where}.events") for item in events_node.value
        )
    if "error" in keys:
        error_name = reader.text(keys["error"][1], f"{where}.error")
        error_class = getattr(assistant_flow, error_name, None)
        if not (isinstance(error_class, type) and issubclass(error_class, AssistantFlowError)):
            reader.fail(
                keys["error"][1],
                f"`error` must name an assistant_flow error class, e.g. UnknownChoiceError; "
                f"{error_name!r} is not one",
                where,
            )
        options["error"] = error_name
    return Step(number=number, line=line, action=action, argument=argument, **options)


def _init(reader: _Reader, node: yaml.Node) -> dict[str, Any]:
    """The ``init`` mapping, checked as initAssistant's answer, each mistake at its line."""
    init = reader.value(node)
    if not isinstance(init, dict):
        reader.fail(node, f"`init` must be a mapping, not {_type_name(init)}", "init")
    known = {
        name
        for field_name, info in InitAssistantResponse.model_fields.items()
        for name in (field_name, info.alias or field_name)
    }
    lines = {}
    for key, key_node, _ in reader.mapping(node, "init"):
        lines[key] = key_node
        if key not in known:
            listing = ", ".join(
                sorted(info.alias or n for n, info in InitAssistantResponse.model_fields.items())
            )
            reader.fail(
                key_node, f"`init.{key}` is not in initAssistant's answer; known: {listing}"
            )
    try:
        InitAssistantResponse.model_validate(init)
    except ValidationError as error:
        problem = invalid_input(error, "`init` is not a valid initAssistant answer")
        first = str(problem.field or "").split(".")[0]
        reader.fail(lines.get(first, node), str(problem), f"init.{problem.field}")
    return dict(init)


def _check_assistant(
    reader: _Reader, top: dict[str, tuple[yaml.Node, yaml.Node]], values: dict[str, Any]
) -> None:
    """Fail at the ``assistant`` line when the assistant file does not have that assistant."""
    try:
        from ..testing._assistants import load_assistants  # noqa: PLC0415 - the `stub` extra
    except ImportError:  # the stub target will say what to install
        return
    source = values.get("assistants")
    shown = str(source) if source is not None else "the shipped support.yaml"
    try:
        known = load_assistants(source)
    except InvalidInputError as error:
        culprit = top["assistants"][1] if "assistants" in top else top["assistant"][1]
        reader.fail(culprit, f"the assistant file cannot be played: {error}", "assistants")
    if values["assistant"] not in known:
        reader.fail(
            top["assistant"][1],
            f"no assistant {values['assistant']!r} in {shown}; known: {', '.join(sorted(known))}",
            "assistant",
        )


def load_script(path: str | Path) -> DialogScript:  # noqa: PLR0912, PLR0915 - as _step
    """Read and check a dialog script; a mistake raises :class:`DialogScriptError`."""
    try:
        import yaml  # noqa: PLC0415
    except ImportError as missing:
        raise DialogScriptError(
            "reading dialog scripts needs PyYAML: pip install 'assistant-flow[stub]'",
            path=path,
        ) from missing
    from .. import _yaml  # noqa: PLC0415

    file = Path(path)
    reader = _Reader(file)
    try:
        text = _yaml.decode(file.read_bytes())
    except _yaml.YAMLProblem as error:
        raise DialogScriptError(
            f"cannot read the file: {error.reason}", path=file, line=error.line
        ) from error
    except (OSError, ValueError) as error:  # ValueError: a NUL in the name
        raise DialogScriptError(f"cannot read the file: {error}", path=file) from error
    try:
        root = _yaml.compose(text)
    except _yaml.YAMLProblem as error:
        raise DialogScriptError(
            f"invalid YAML: {error.reason}", path=file, line=error.line
        ) from error
    if root is None:
        raise DialogScriptError("the script is empty; it needs `steps`", path=file, line=1)
    _no_duplicate_keys(reader, root)
    top = {key: (key_node, value_node) for key, key_node, value_node in reader.mapping(root, "")}
    for key, (key_node, _) in top.items():
        if key not in _TOP_KEYS:
            reader.fail(
                key_node,
                f"unknown key `{key}`; a script has {', '.join(sorted(_TOP_KEYS))}",
                key,
            )
    values: dict[str, Any] = {}
    for key in ("name", "assistant", "assistants", "conversation", "customer"):
        if key in top:
            values[key] = reader.text(top[key][1], key)
    if "assistants" in values:
        if "assistant" not in values:
            reader.fail(top["assistants"][0], "`assistants` needs `assistant`: which one to play")
        assistants = file.parent / values["assistants"]
        if not _is_file(assistants):
            reader.fail(
                top["assistants"][1], f"no file {values['assistants']!r} next to the script"
            )
        values["assistants"] = assistants
    if "init" in top:
        if "assistant" in values:
            reader.fail(
                top["init"][0],
                "`init` feeds initAssistant's answer, but the stub plays `assistant` and gives "
                "its own; drop one of them",
                "init",
            )
        values["init"] = _init(reader, top["init"][1])
    if "steps" not in top:
        raise DialogScriptError("the script has no `steps`", path=file, line=1, field="steps")
    steps_node = top["steps"][1]
    if not isinstance(steps_node, yaml.SequenceNode) or not steps_node.value:
        reader.fail(steps_node, "`steps` must be a non-empty list", "steps")
    played = "assistant" in values
    if played:
        _check_assistant(reader, top, values)
    steps = tuple(
        _step(reader, node, number, played) for number, node in enumerate(steps_node.value, 1)
    )
    default_name = file.name
    for suffix in SUFFIXES:
        default_name = default_name.removesuffix(suffix)
    name = values.pop("name", default_name)
    lines = {key: key_node.start_mark.line + 1 for key, (key_node, _) in top.items()}
    return DialogScript(path=file, name=name, steps=steps, lines=lines, **values)
