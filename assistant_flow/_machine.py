"""The assistant lifecycle: one ``transitions`` machine, defined once, applied as a table.

States (``.`` separates a nested state from its parent)::

    init                               no assistant yet: isInAssistantMode is left out
    in_assistant.awaiting_first_reply  initAssistant returned; the next reply carries
                                       initAssistantPayload
    in_assistant.conversing            the assistant runs: isInAssistantMode is true (entered
                                       by the first reply, or straight from init or ended
                                       when the server started the assistant)
    ended                              onAssistantEnded arrived: isInAssistantMode is false

The machine is the single source of truth for which trigger is allowed where and where it
leads, and the diagrams in ``diagrams/`` are rendered from it. Building a ``transitions``
model per conversation costs far more than sending a message (see ARCHITECTURE.md), so the
machine is walked once at import into :data:`TRANSITION_TABLE`, a plain dict from
``(state, trigger)`` to the next state. A test drives the real machine through every pair and
checks that the table agrees.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from transitions.extensions.nesting import HierarchicalMachine, NestedState

from ._exceptions import TransitionError

__all__ = [
    "FIRST_REPLY_STATE",
    "INITIAL_STATE",
    "LEAF_STATES",
    "TRANSITION_TABLE",
    "TRIGGERS",
    "State",
    "assistant_mode_flag",
    "build_machine",
    "next_state",
    "render_dot",
    "render_mermaid",
    "top_state",
    "write_diagrams",
]

SEPARATOR = "."


class State(StrEnum):
    """Where a conversation is in the assistant lifecycle (the top-level machine state)."""

    INIT = "init"
    IN_ASSISTANT = "in_assistant"
    ENDED = "ended"


INITIAL_STATE = "init"
FIRST_REPLY_STATE = "in_assistant.awaiting_first_reply"

_EVERY_STATE = ["init", "in_assistant", "ended"]

STATES: list[Any] = [
    "init",
    {
        "name": "in_assistant",
        "children": ["awaiting_first_reply", "conversing"],
        "initial": "awaiting_first_reply",
    },
    "ended",
]

TRANSITIONS: list[dict[str, Any]] = [
    # initAssistant returned. From `ended` this re-engages an assistant; from
    # awaiting_first_reply it replaces greetings nobody has answered yet. Once the customer
    # has replied, Kustomer holds the run, so starting over needs an end first.
    {
        "trigger": "start_assistant",
        "source": ["init", "ended", FIRST_REPLY_STATE],
        "dest": "in_assistant",
    },
    # The server started the assistant (a conversation created with one, or a snapshot in
    # assistant mode): it runs, and no initAssistantPayload is owed, since no initAssistant
    # call of ours began it. Before our own first reply it changes nothing: the conversation
    # we are about to answer reports assistant mode too, and the payload is still owed.
    {
        "trigger": "join_assistant",
        "source": ["init", "ended"],
        "dest": "in_assistant.conversing",
    },
    {"trigger": "join_assistant", "source": "in_assistant", "dest": None},
    # The first reply is the one that carries initAssistantPayload.
    {"trigger": "reply", "source": FIRST_REPLY_STATE, "dest": "in_assistant.conversing"},
    {"trigger": "reply", "source": _EVERY_STATE, "dest": None},
    # Assistant messages and article visits update the record, never the state.
    {"trigger": "receive", "source": _EVERY_STATE, "dest": None},
    {"trigger": "visit_article", "source": _EVERY_STATE, "dest": None},
    # onAssistantEnded; a repeated one changes nothing.
    {"trigger": "end_assistant", "source": ["init", "in_assistant"], "dest": "ended"},
    {"trigger": "end_assistant", "source": "ended", "dest": None},
]

# isInAssistantMode for a send made in each top-level state: `None` leaves the field out.
_ASSISTANT_MODE: Mapping[str, bool | None] = MappingProxyType(
    {"init": None, "in_assistant": True, "ended": False}
)


class _DottedState(NestedState):
    # transitions' default separator is "_", which collides with names like in_assistant.
    separator = SEPARATOR


class _LifecycleMachine(HierarchicalMachine):
    state_cls = _DottedState


def build_machine() -> HierarchicalMachine:
    """Build the lifecycle as a ``transitions`` machine (no model attached)."""
    return _LifecycleMachine(
        states=STATES,
        transitions=TRANSITIONS,
        initial=INITIAL_STATE,
        auto_transitions=False,
        model=None,
    )


# --- the table ------------------------------------------------------------------------------


def _scopes(state: str) -> Iterator[str]:
    """The state, then each parent outwards: where a trigger's transitions may be declared."""
    parts = state.split(SEPARATOR)
    for depth in range(len(parts), 0, -1):
        yield SEPARATOR.join(parts[:depth])


def _initial_leaf(machine: HierarchicalMachine, name: str) -> str:
    """Entering a parent state enters its initial child, down to a leaf."""
    state = machine.get_state(name)
    while state.states:
        name = f"{name}{SEPARATOR}{state.initial}"
        state = machine.get_state(name)
    return name


# Callbacks a transitions machine would run around a transition. The table applies only the
# machine's states and destinations, so anything declared here would be dropped without a
# word: refuse it, as conditions are refused. Side effects belong in flow.on(...) hooks.
_TRANSITION_CALLBACKS = ("prepare", "before", "after", "conditions", "unless")
_STATE_CALLBACKS = ("on_enter", "on_exit")
_MACHINE_CALLBACKS = (
    "prepare_event",
    "before_state_change",
    "after_state_change",
    "finalize_event",
    "on_exception",
)


def _refuse_callbacks(machine: HierarchicalMachine) -> None:
    """Raise if the machine declares a callback the derived table would silently drop."""
    for name in _MACHINE_CALLBACKS:
        if getattr(machine, name, None):
            raise RuntimeError(f"the lifecycle machine declares {name}; use flow.on(...) hooks")
    for state_name in machine.get_nested_state_names():
        state = machine.get_state(state_name)
        for name in _STATE_CALLBACKS:
            if getattr(state, name, None):
                raise RuntimeError(
                    f"state {state_name!r} declares {name}, which the transition table would "
                    "drop; use flow.on(...) hooks"
                )
    for trigger, event in machine.events.items():
        for declared in event.transitions.values():
            for transition in declared:
                for name in _TRANSITION_CALLBACKS:
                    if getattr(transition, name, None):
                        raise RuntimeError(
                            f"{trigger}: {name} callbacks are not tabulated (the table would "
                            "drop them); use flow.on(...) hooks"
                        )


def _derive_table(
    machine: HierarchicalMachine,
) -> tuple[tuple[str, ...], dict[tuple[str, str], str]]:
    _refuse_callbacks(machine)
    leaves = tuple(
        name for name in machine.get_nested_state_names() if not machine.get_state(name).states
    )
    table: dict[tuple[str, str], str] = {}
    for trigger, event in machine.events.items():
        for leaf in leaves:
            for scope in _scopes(leaf):
                declared = event.transitions.get(scope)
                if not declared:
                    continue
                transition = declared[0]
                dest = leaf if transition.dest is None else _initial_leaf(machine, transition.dest)
                table[(leaf, trigger)] = dest
                break
    return leaves, table


_LEAVES, _TABLE = _derive_table(build_machine())

LEAF_STATES: tuple[str, ...] = _LEAVES
"""Every state a conversation can be in, as full dotted names."""

TRANSITION_TABLE: Mapping[tuple[str, str], str] = MappingProxyType(_TABLE)
"""``(state, trigger) -> next state``; a missing pair is a trigger not allowed there."""

TRIGGERS: tuple[str, ...] = tuple(sorted({trigger for _, trigger in _TABLE}))
"""Every trigger the machine knows."""


def next_state(state: str, trigger: str) -> str:
    """Where ``trigger`` leads from ``state``; :class:`TransitionError` if it is not allowed."""
    try:
        return _TABLE[(state, trigger)]
    except KeyError:
        allowed = [known for (source, known) in _TABLE if source == state]
        raise TransitionError(trigger, state, allowed) from None


def top_state(state: str) -> State:
    """The top-level :class:`State` of a full state name."""
    return State(state.split(SEPARATOR, 1)[0])


_MODE_BY_STATE = {state: _ASSISTANT_MODE[top_state(state)] for state in LEAF_STATES}


def assistant_mode_flag(state: str) -> bool | None:
    """``isInAssistantMode`` for a message sent in ``state``; ``None`` leaves it out."""
    return _MODE_BY_STATE[state]


# --- diagrams -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Edge:
    source: str
    dest: str
    trigger: str


def _edges(machine: HierarchicalMachine) -> list[_Edge]:
    """The state-changing transitions, as declared (a parent's edge is drawn once)."""
    edges = []
    for trigger, event in machine.events.items():
        for source, declared in event.transitions.items():
            for transition in declared:
                if transition.dest is not None:
                    edges.append(_Edge(source, transition.dest, trigger))
    return edges


def _internal_triggers(machine: HierarchicalMachine) -> list[str]:
    """Triggers that never change state from where they are declared."""
    return sorted(
        {
            trigger
            for trigger, event in machine.events.items()
            for declared in event.transitions.values()
            for transition in declared
            if transition.dest is None
        }
    )


def _note(state: str, newline: str) -> str:
    flag = _ASSISTANT_MODE[state.split(SEPARATOR, 1)[0]]
    mode = "left out" if flag is None else str(flag).lower()
    note = f"isInAssistantMode {mode}"
    if state == FIRST_REPLY_STATE:
        note += f",{newline}the next reply carries initAssistantPayload"
    return note


_DOT_NEWLINE = "\\n"  # a line break inside a Graphviz label


def _node_id(state: str) -> str:
    return state.replace(SEPARATOR, "__")


def render_mermaid() -> str:
    """The lifecycle as a Mermaid ``stateDiagram-v2``."""
    machine = build_machine()
    lines = [
        "---",
        "title: assistant_flow conversation lifecycle",
        "---",
        "stateDiagram-v2",
        "    direction LR",
        f"    [*] --> {_node_id(INITIAL_STATE)}",
    ]
    for state in machine.get_nested_state_names():
        children = machine.get_state(state).states
        if not children:
            continue
        lines.append(f"    state {_node_id(state)} {{")
        initial = f"{state}{SEPARATOR}{machine.get_state(state).initial}"
        lines.append(f"        [*] --> {_node_id(initial)}")
        for child in children:
            full = f"{state}{SEPARATOR}{child}"
            lines.append(f'        state "{child}" as {_node_id(full)}')
        lines.append("    }")
    for leaf in LEAF_STATES:
        if SEPARATOR not in leaf:
            # Declared with a label so Mermaid shows the name above the description.
            lines.append(f'    state "{leaf}" as {_node_id(leaf)}')
        lines.append(f"    {_node_id(leaf)} : {_note(leaf, ' ')}")
    for edge in _edges(machine):
        lines.append(f"    {_node_id(edge.source)} --> {_node_id(edge.dest)} : {edge.trigger}")
    internal = ", ".join(_internal_triggers(machine))
    lines.append(f"    note right of {_node_id('ended')}")
    lines.append(f"        {internal}: allowed in every state,")
    lines.append("        where no arrow is drawn they keep the state")
    lines.append("    end note")
    return "\n".join(lines) + "\n"


def render_dot() -> str:
    """The lifecycle as a Graphviz ``digraph`` (nested states as a cluster)."""
    machine = build_machine()
    lines = [
        "digraph lifecycle {",
        '    graph [rankdir=LR, compound=true, fontname="Helvetica",'
        ' label="assistant_flow conversation lifecycle", labelloc=t];',
        '    node [shape=box, style="rounded,filled", fillcolor=white, fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=11];',
        '    start [shape=point, width=0.15, label=""];',
    ]
    # A parent state is drawn as a cluster: edges into it land on its initial child, edges
    # out of it leave from its last child, so the picture reads left to right.
    entries: dict[str, str] = {}
    exits: dict[str, str] = {}
    for state in machine.get_nested_state_names():
        children = machine.get_state(state).states
        if state.count(SEPARATOR) or not children:
            continue
        entries[state] = _initial_leaf(machine, state)
        exits[state] = f"{state}{SEPARATOR}{list(children)[-1]}"
        lines.append(f"    subgraph cluster_{_node_id(state)} {{")
        lines.append(f'        label="{state}"; style=rounded;')
        for child in children:
            full = f"{state}{SEPARATOR}{child}"
            lines.append(
                f'        {_node_id(full)} [label="{child}\\n{_note(full, _DOT_NEWLINE)}"];'
            )
        lines.append("    }")
    for leaf in LEAF_STATES:
        if leaf.count(SEPARATOR) == 0:
            lines.append(f'    {_node_id(leaf)} [label="{leaf}\\n{_note(leaf, _DOT_NEWLINE)}"];')
    lines.append(f"    start -> {_node_id(INITIAL_STATE)};")
    for edge in _edges(machine):
        attributes = [f'label="{edge.trigger}"']
        tail, head = edge.source, edge.dest
        # An edge to or from a parent state is clipped at its cluster's border, unless the
        # other end sits inside that cluster (Graphviz cannot clip a self-loop).
        if tail in exits:
            if not head.startswith(tail + SEPARATOR):
                attributes.append(f"ltail=cluster_{_node_id(tail)}")
            tail = exits[tail]
        if head in entries:
            if not edge.source.startswith(head + SEPARATOR):
                attributes.append(f"lhead=cluster_{_node_id(head)}")
            head = entries[head]
        lines.append(f"    {_node_id(tail)} -> {_node_id(head)} [{', '.join(attributes)}];")
    internal = ", ".join(_internal_triggers(machine))
    lines.append(
        f'    legend [shape=note, label="{internal}:\\nallowed in every state,\\n'
        'where no arrow is drawn they keep the state"];'
    )
    lines.append("}")
    return "\n".join(lines) + "\n"


def svg_stamp(dot_source: str) -> str:
    """The comment placed in the SVG that ties it to the DOT source it was rendered from."""
    digest = hashlib.sha256(dot_source.encode()).hexdigest()
    return f"<!-- rendered from lifecycle.dot sha256={digest} -->"


def write_diagrams(directory: str | Path) -> list[Path]:
    """Write ``lifecycle.mmd``, ``lifecycle.dot`` and ``lifecycle.svg`` into ``directory``.

    The SVG needs Graphviz's ``dot`` on the PATH (Debian: ``apt-get install graphviz``).
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    mermaid, dot = render_mermaid(), render_dot()
    written = [folder / "lifecycle.mmd", folder / "lifecycle.dot", folder / "lifecycle.svg"]
    written[0].write_text(mermaid)
    written[1].write_text(dot)
    dot_binary = shutil.which("dot")
    if dot_binary is None:
        raise FileNotFoundError(
            "Graphviz `dot` is needed for lifecycle.svg: apt-get install graphviz"
        )
    svg = subprocess.run(  # noqa: S603 - a fixed binary, our own input
        [dot_binary, "-Tsvg"], input=dot, capture_output=True, text=True, check=True
    ).stdout
    header, _, body = svg.partition("\n")
    written[2].write_text(f"{header}\n{svg_stamp(dot)}\n{body}")
    return written
