"""Dialog scripts: what a mistake reports (file, line, field), and the runner on each target."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistant_flow import InvalidInputError, State
from assistant_flow.dialogs import (
    DialogScriptError,
    OrgSettings,
    StubPool,
    load_script,
    run_dialog,
)

HERE = Path(__file__).parent / "dialogs"
PLAYED = HERE / "support_login.dialog.yaml"
FED = HERE / "fed_deflection.dialog.yaml"


@pytest.fixture(scope="module")
def stubs() -> Iterator[StubPool]:
    pool = StubPool()
    yield pool
    pool.close()


def script(tmp_path: Path, text: str, name: str = "bad.dialog.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- reading a script ------------------------------------------------------------------------


def test_a_script_reads_into_numbered_steps_with_lines() -> None:
    loaded = load_script(PLAYED)
    assert loaded.name == "a customer who cannot log in reaches a person"
    assert loaded.played
    assert loaded.assistant == "asst_support"
    assert [(s.number, s.line, s.action) for s in loaded.steps] == [
        (1, 5, "choose"),
        (2, 13, "visit"),
        (3, 14, "choose"),
        (4, 21, "say"),
    ]
    assert loaded.steps[2].state is State.ENDED


MISTAKES = [
    pytest.param(
        "steps:\n  - say: hi\n  - shout: hello\n",
        3,
        "steps.2.shout",
        "unknown step key `shout`",
        id="unknown-step",
    ),
    pytest.param(
        "steps:\n  - say: hi\n    expect:\n      isInAsistantMode: true\n",
        4,
        "steps.1.expect.isInAsistantMode",
        "`isInAsistantMode` is not a field of a sendMessage payload",
        id="unknown-field",
    ),
    pytest.param(
        "steps:\n  - say: hi\n    expect:\n      lastDeflection.articles.0.seen: 1\n",
        4,
        "steps.1.expect.lastDeflection.articles.0.seen",
        "`lastDeflection.articles.0` has no field `seen`",
        id="unknown-nested-field",
    ),
    pytest.param(
        "steps:\n  - say: hi\n    absent: [lastDeflecton]\n",
        3,
        "steps.1.expect.absent",
        "`lastDeflecton` is not a field",
        id="unknown-absent-field",
    ),
    pytest.param(
        "steps:\n  - say: hi\n   - choose: x\n",
        3,
        None,
        "invalid YAML",
        id="invalid-yaml",
    ),
    pytest.param(
        "steps:\n  - say: [1, 2]\n",
        2,
        "steps.1.say",
        "`steps.1.say` must be non-empty text, not list",
        id="wrong-type",
    ),
    pytest.param(
        "steps:\n  - event: assistant finished\n",
        2,
        "steps.1.event",
        "unknown event 'assistant finished'",
        id="unknown-event",
    ),
    pytest.param(
        "steps:\n  - visit: kb_1\n    expect: {body: x}\n",
        3,
        "steps.1",
        "`visit` sends no message",
        id="expect-without-message",
    ),
    pytest.param(
        "assistant: asst_support\nsteps:\n  - assistant: hello\n",
        3,
        "steps.1.assistant",
        "played by the stub",
        id="feed-in-played-script",
    ),
    pytest.param(
        "steps:\n  - choose: x\n    error: NoSuchError\n",
        3,
        "steps.1",
        "`error` must name an assistant_flow error class",
        id="unknown-error-class",
    ),
    pytest.param(
        "steps:\n  - say: hi\n    state: finished\n",
        3,
        "steps.1",
        "`state` must be one of init, in_assistant, ended",
        id="unknown-state",
    ),
    pytest.param(
        "steps:\n  - say: hi\n    choose: Billing\n",
        2,
        None,
        "a step takes exactly one action",
        id="two-actions",
    ),
    pytest.param("name: nothing to do\n", 1, "steps", "no `steps`", id="no-steps"),
    pytest.param(
        "steps:\n  - say: hi\n    events: [onMessageReceived]\n",
        3,
        "steps.1",
        "only a played script",
        id="events-in-fed-script",
    ),
    pytest.param(
        "steps:\n  - say: hi\n    exact: yes please\n",
        3,
        "steps.1.exact",
        "`exact` must be true or false",
        id="exact-not-bool",
    ),
    pytest.param("titel: x\nsteps: [{say: hi}]\n", 1, "titel", "unknown key `titel`", id="top-key"),
]


@pytest.mark.parametrize(("text", "line", "field", "words"), MISTAKES)
def test_a_mistake_names_the_file_the_line_and_the_field(
    tmp_path: Path, text: str, line: int, field: str | None, words: str
) -> None:
    path = script(tmp_path, text)
    with pytest.raises(DialogScriptError) as caught:
        load_script(path)
    error = caught.value
    assert isinstance(error, InvalidInputError)
    assert (error.path, error.line, error.field) == (path, line, field)
    assert str(error).startswith(f"{path}:{line}: ")
    assert words in str(error)


def test_a_missing_file_is_a_script_error(tmp_path: Path) -> None:
    with pytest.raises(DialogScriptError, match="cannot read the file"):
        load_script(tmp_path / "nowhere.dialog.yaml")


# --- running ---------------------------------------------------------------------------------


def test_a_fed_script_passes_on_memory_and_on_the_stub(stubs: StubPool) -> None:
    on_memory = run_dialog(FED)
    assert on_memory.target == "memory"
    assert on_memory.failure is None
    assert [p.get("isInAssistantMode") for p in on_memory.sent] == [True, True, False]
    on_stub = run_dialog(FED, target="stub", stubs=stubs)
    assert on_stub.failure is None, on_stub.failure
    assert [p["customerId"] for p in on_stub.sent] == ["cust_dialog"] * 3


def test_a_played_script_passes_against_the_stub(stubs: StubPool) -> None:
    result = run_dialog(PLAYED, stubs=stubs)
    assert result.target == "stub"
    assert result.failure is None, result.failure
    assert [p["isInAssistantMode"] for p in result.sent] == [True, True, False]


def test_a_failure_names_the_step_its_line_and_the_difference(
    tmp_path: Path, stubs: StubPool
) -> None:
    text = PLAYED.read_text().replace(
        "lastDeflection.articles.0: {id: kb_reset, visited: 1}",
        "lastDeflection.articles.0: {id: kb_reset, visited: 2}",
    )
    result = run_dialog(script(tmp_path, text, "wrong.dialog.yaml"), stubs=stubs)
    assert result.failure is not None
    assert (result.failure.step, result.failure.line) == (3, 14)
    assert result.failure.report(result.script.path).splitlines() == [
        f"{tmp_path / 'wrong.dialog.yaml'}:14: step 3 (choose: 'No, I need a person')",
        "payload differs in 1 field:",
        "  different   lastDeflection.articles.0.visited: expected 2, got 1",
    ]


def test_wrong_events_and_state_are_reported_together(tmp_path: Path, stubs: StubPool) -> None:
    path = script(
        tmp_path,
        "assistant: asst_support\nsteps:\n  - choose: Talk to a person\n"
        "    events: [onMessageReceived]\n    state: in_assistant\n",
    )
    result = run_dialog(path, stubs=stubs)
    assert result.failure is not None
    assert result.failure.message.splitlines() == [
        "events: expected ['onMessageReceived'], the stub emitted "
        "['onMessageReceived', 'onAssistantEnded']",
        "state: expected in_assistant, got ended",
    ]


def test_a_refusal_by_the_stub_fails_the_step_with_its_reason(
    tmp_path: Path, stubs: StubPool
) -> None:
    # The script ends the assistant locally; the stub still runs it and refuses the next reply.
    path = script(
        tmp_path,
        "assistant: asst_support\nsteps:\n  - choose: Billing\n  - event: assistant ended\n"
        "  - say: Monthly\n",
    )
    result = run_dialog(path, stubs=stubs)
    assert result.failure is not None
    assert result.failure.step == 3
    assert result.failure.message.startswith("KustomerAPIError: ")
    assert "isInAssistantMode" in result.failure.message


def test_an_expected_error_that_does_not_come_fails(tmp_path: Path) -> None:
    path = script(tmp_path, "steps:\n  - say: hi\n    error: UnknownChoiceError\n")
    result = run_dialog(path)
    assert result.failure is not None
    assert result.failure.message == "expected UnknownChoiceError, but the step succeeded"


def test_a_played_script_refuses_the_memory_target() -> None:
    with pytest.raises(DialogScriptError, match="runs on the stub target only") as caught:
        run_dialog(PLAYED, target="memory")
    assert caught.value.line == 3
    with pytest.raises(DialogScriptError, match="unknown target 'moon'"):
        run_dialog(FED, target="moon")


def test_attachments_are_sent_from_a_file_next_to_the_script(tmp_path: Path) -> None:
    (tmp_path / "receipt.pdf").write_bytes(b"%PDF-1.7 receipt")
    path = script(
        tmp_path,
        "steps:\n  - attach: receipt.pdf\n    say: My receipt\n"
        "    expect: {body: My receipt, attachments.0.file: {name: receipt.pdf, size: 16}}\n",
    )
    result = run_dialog(path)
    assert result.failure is None, result.failure
    missing = script(tmp_path, "steps:\n  - attach: nothing.pdf\n", "missing.dialog.yaml")
    with pytest.raises(DialogScriptError, match=r"no file 'nothing\.pdf'"):
        load_script(missing)


# --- the org target (a real org is not reachable here: an httpx.MockTransport stands in) -------


def test_the_org_target_needs_its_environment() -> None:
    with pytest.raises(DialogScriptError, match="KUSTOMER_BASE_URL and KUSTOMER_API_KEY"):
        OrgSettings.from_env({})
    settings = OrgSettings.from_env(
        {"KUSTOMER_BASE_URL": "https://acme.api.kustomerapp.com", "KUSTOMER_API_KEY": "secret-k"}
    )
    assert "secret-k" not in repr(settings)


def test_the_org_target_posts_each_message_to_the_org() -> None:
    received: list[tuple[str, dict[str, Any]]] = []

    def org(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        received.append((request.url.path, body))
        assert request.headers["authorization"] == "Bearer org-key"
        attributes = {"createdAt": "2026-11-25T10:00:00.000Z", "direction": "in", **body}
        return httpx.Response(
            201, json={"data": {"id": f"msg_{len(received)}", "attributes": attributes}}
        )

    settings = OrgSettings("https://acme.api.kustomerapp.com", "org-key", customer_id="cust_9")
    with httpx.Client(transport=httpx.MockTransport(org)) as client:
        result = run_dialog(FED, target="org", org=settings, client=client)
    assert result.failure is None, result.failure
    assert [path for path, _ in received] == [
        "/v2.1/chat/assistant/messages",
        "/v2.1/chat/assistant/messages",
        "/v2.1/chat/messages",
    ]
    assert {body["customerId"] for _, body in received} == {"cust_9"}
    assert result.sent[0]["initAssistantPayload"]["assistant"] == "asst_1"


def test_exact_and_event_payloads_in_a_script(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        "init: {assistant: a, dialog: d, node: n}\n"
        "steps:\n"
        "  - event: onConversationEnded\n"
        "    payload: {reason: closed}\n"
        "    state: in_assistant\n"
        "  - say: Hi\n"
        "    lang: en\n"
        "    exact: true\n"
        "    expect: {conversationId: conv_1, body: Hi, lang: en, isInAssistantMode: true}\n",
    )
    result = run_dialog(path)
    assert result.failure is not None
    assert result.failure.message.splitlines() == [
        "payload differs in 1 field:",
        '  unexpected  initAssistantPayload: {"assistant": "a", "dialog": "d", '
        '"initialMessages": [], "node": "n"}',
    ]
