"""The lifecycle machine: the table the flows use agrees with transitions, and the diagrams too."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from payloads import init_response
from transitions import MachineError

from assistant_flow import Flow, MemoryTransport, State, TransitionError
from assistant_flow._machine import (
    FIRST_REPLY_STATE,
    LEAF_STATES,
    TRANSITION_TABLE,
    TRIGGERS,
    assistant_mode_flag,
    build_machine,
    next_state,
    render_dot,
    render_mermaid,
    svg_stamp,
)

DIAGRAMS = Path(__file__).parent.parent / "diagrams"


class Model:
    state: str


@pytest.mark.parametrize(("state", "trigger"), list(itertools.product(LEAF_STATES, TRIGGERS)))
def test_the_table_agrees_with_the_transitions_machine(state: str, trigger: str) -> None:
    machine = build_machine()
    model = Model()
    machine.add_model(model, initial=state)
    try:
        getattr(model, trigger)()
    except MachineError:
        assert (state, trigger) not in TRANSITION_TABLE
        with pytest.raises(TransitionError):
            next_state(state, trigger)
    else:
        assert TRANSITION_TABLE[(state, trigger)] == model.state


def test_the_lifecycle_has_the_documented_shape() -> None:
    assert LEAF_STATES == (
        "init",
        "in_assistant.awaiting_first_reply",
        "in_assistant.conversing",
        "ended",
    )
    for source in ("init", "ended", FIRST_REPLY_STATE):
        assert next_state(source, "start_assistant") == FIRST_REPLY_STATE
    assert next_state(FIRST_REPLY_STATE, "reply") == "in_assistant.conversing"
    assert all(next_state(state, "end_assistant") == "ended" for state in LEAF_STATES)
    with pytest.raises(TransitionError, match="start_assistant is not allowed"):
        next_state("in_assistant.conversing", "start_assistant")


def test_assistant_mode_follows_the_top_level_state() -> None:
    assert [assistant_mode_flag(state) for state in LEAF_STATES] == [None, True, True, False]
    assert {State(state.split(".")[0]) for state in LEAF_STATES} == set(State)


def test_no_machine_is_built_per_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from transitions.core import Machine

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a transitions Machine was built while handling a message")

    monkeypatch.setattr(Machine, "__init__", refuse)
    conv = Flow(MemoryTransport()).conversation("conv_1")
    conv.start_assistant(init_response())
    conv.send_message("Hi")
    conv.end_assistant()
    assert conv.state == State.ENDED


def test_the_committed_diagrams_are_rendered_from_the_current_machine() -> None:
    hint = "diagrams/ is stale: run `make diagrams` and commit the result"
    assert (DIAGRAMS / "lifecycle.mmd").read_text() == render_mermaid(), hint
    dot = (DIAGRAMS / "lifecycle.dot").read_text()
    assert dot == render_dot(), hint
    svg = (DIAGRAMS / "lifecycle.svg").read_text()
    assert svg_stamp(dot) in svg, hint
    assert "<svg" in svg


def test_the_diagrams_show_every_state_and_transition() -> None:
    mermaid = render_mermaid()
    for state in LEAF_STATES:
        assert state.replace(".", "__") in mermaid
    for trigger in ("start_assistant", "reply", "end_assistant"):
        assert f": {trigger}" in mermaid
    assert "initAssistantPayload" in mermaid
