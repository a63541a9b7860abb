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
    # The review's probes (review-dialogs-probes/probe*): each passed or crashed before.
    pytest.param(
        "assistant: asst_support\nsteps:\n  - choose: Billing\n    expect: {payload: WRONG}\n"
        "    events: [onMessageReceived]\n    expect: {isInAssistantMode: true}\n",
        6,
        "expect",
        "`expect` given twice (first on line 4)",
        id="p01-duplicate-step-key",
    ),
    pytest.param(
        "steps:\n  - say: hi\n    expect:\n      payload: WRONG\n      payload: billing\n",
        5,
        "payload",
        "`payload` given twice (first on line 4)",
        id="p02-duplicate-expected-field",
    ),
    pytest.param(
        "steps:\n  - say: hi\nsteps:\n  - say: ho\n",
        3,
        "steps",
        "`steps` given twice (first on line 1)",
        id="p11-duplicate-top-key",
    ),
    pytest.param(
        "steps:\n  - choose: Nope\n    error: UnknownChoiceError\n    expect: {payload: x}\n",
        4,
        "steps.1.expect",
        "`expect` cannot go with `error`",
        id="p04-expect-with-error",
    ),
    pytest.param(
        "assistant: asst_support\nsteps:\n  - choose: Nope\n    error: UnknownChoiceError\n"
        "    events: [onMessageReceived]\n",
        5,
        "steps.1.events",
        "`events` cannot go with `error`",
        id="events-with-error",
    ),
    pytest.param(
        "steps:\n  - say: hi\n  - say: no\n",
        3,
        "steps.2.say",
        '`steps.2.say` must be non-empty text; YAML read `no` as false; quote it: "no"',
        id="p06-yaml-no",
    ),
    pytest.param(
        "steps:\n  - choose: 12:30\n",
        2,
        "steps.1.choose",
        'YAML read `12:30` as the number 750; quote it: "12:30"',
        id="yaml-sexagesimal",
    ),
    pytest.param(
        "steps:\n  - say: hi\n    expect:\n"
        "      lastDeflection: {articles: [{id: k, visted: 1}]}\n",
        4,
        "steps.1.expect.lastDeflection.articles.0.visted",
        "`lastDeflection.articles.0` has no field `visted`",
        id="p07-field-inside-a-list",
    ),
    pytest.param(
        "steps:\n  - say: hi\n    expect: {attachments.0.colour: red}\n",
        3,
        "steps.1.expect.attachments.0.colour",
        "`attachments.0` has no field `colour`",
        id="attachment-field",
    ),
    pytest.param(
        "steps:\n  - say: hi\n    expect: {deliveryScope: x}\n",
        3,
        "steps.1.expect.deliveryScope",
        "`deliveryScope` is not a field of a sendMessage payload",
        id="field-not-on-the-wire",
    ),
    pytest.param(
        "init: {assistent: a, dialog: d, node: n}\nsteps:\n  - say: hi\n",
        1,
        None,
        "`init.assistent` is not in initAssistant's answer",
        id="p09-init-typo",
    ),
    pytest.param(
        "name: x\ninit:\n  assistant: a\n  dialog: d\n  node: n\n  initialMessages: 5\n"
        "steps:\n  - say: hi\n",
        6,
        "init.initialMessages",
        "`init` is not a valid initAssistant answer: `initialMessages`: pass a list (got int)",
        id="b1-init-wrong-type",
    ),
    pytest.param(
        "assistant: asst_suport\nsteps:\n  - choose: Billing\n",
        1,
        "assistant",
        "no assistant 'asst_suport' in the shipped support.yaml; known: asst_support",
        id="p12-unknown-played-assistant",
    ),
    pytest.param(
        "steps:\n  - choose: One\n    expect: {payload: 1}\n",
        3,
        "payload",
        "`payload` is text on the wire, so this can never match: YAML read `1` as the number 1; "
        'quote it: "1"',
        id="p13-expected-type",
    ),
    pytest.param(
        "steps:\n  - say: hi\n    expect: {isInAssistantMode: 'yes'}\n",
        3,
        "isInAssistantMode",
        "`isInAssistantMode` is true or false on the wire, so this can never match: got str",
        id="expected-bool",
    ),
    pytest.param(
        "assistant: asst_support\nsteps:\n  - choose: Billing\n  - event: assistant ended\n"
        "    events: [onAssistantEnded]\n",
        5,
        "steps.2.events",
        "`events` goes with say, choose or attach only",
        id="p14-events-on-an-event",
    ),
    pytest.param(
        "steps:\n  - visit: kb_1\n    lang: fr\n",
        3,
        "steps.1.lang",
        "`lang` goes with say, choose or attach only: `visit` sends no message",
        id="lang-on-visit",
    ),
    pytest.param(
        "steps:\n  - attach: {name: a.txt, content: hi, content_type: 5}\n",
        2,
        "steps.1.attach.content_type",
        "`steps.1.attach.content_type` must be text such as text/plain, not int",
        id="a2-content-type-not-text",
    ),
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


def test_a_broken_assistant_file_is_named_at_the_assistants_line(tmp_path: Path) -> None:
    # probe2/bad: the stub could not load it, and the whole command-line run stopped.
    script(tmp_path, "assistants: {asst_x: {dialog: d}}\n", "bot.yaml")
    path = script(tmp_path, "assistant: asst_x\nassistants: bot.yaml\nsteps:\n  - say: Hi\n")
    with pytest.raises(DialogScriptError) as caught:
        load_script(path)
    assert (caught.value.line, caught.value.field) == (2, "assistants")
    assert f"the assistant file cannot be played: {tmp_path / 'bot.yaml'}: " in str(caught.value)


def test_exact_alone_expects_an_empty_payload(tmp_path: Path) -> None:
    # p03: `exact: true` without `expect` checked nothing and passed.
    path = script(
        tmp_path, "init: {assistant: a, dialog: d, node: n}\nsteps:\n  - say: Hi\n    exact: true\n"
    )
    assert load_script(path).steps[0].expect == {}
    result = run_dialog(path)
    assert result.failure is not None
    assert result.failure.message.splitlines()[0] == "payload differs in 4 fields:"
    assert '  unexpected  body: "Hi"' in result.failure.message


def test_exact_applies_below_a_dotted_key_in_a_script(tmp_path: Path) -> None:
    # p05: `initAssistantPayload.node` under `exact` let the other init fields through.
    path = script(
        tmp_path,
        "init: {assistant: a, dialog: d, node: n}\nsteps:\n  - say: Hi\n    exact: true\n"
        "    expect:\n      body: Hi\n      isInAssistantMode: true\n      conversationId: conv_1\n"
        "      initAssistantPayload.node: n\n",
    )
    result = run_dialog(path)
    assert result.failure is not None
    assert [line.split()[1] for line in result.failure.message.splitlines()[1:]] == [
        "initAssistantPayload.assistant:",
        "initAssistantPayload.dialog:",
        "initAssistantPayload.initialMessages:",
    ]


def test_state_is_still_checked_after_an_expected_error(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        "init: {assistant: a, dialog: d, node: n}\nsteps:\n  - choose: Nope\n"
        "    error: UnknownChoiceError\n    state: ended\n",
    )
    result = run_dialog(path)
    assert result.failure is not None
    assert (
        result.failure.message == "state: expected ended after UnknownChoiceError, got in_assistant"
    )
    path.write_text(path.read_text().replace("state: ended", "state: in_assistant"))
    assert run_dialog(path).passed


def test_a_bad_fed_message_fails_its_step_with_the_reason(tmp_path: Path) -> None:
    # p10 and a3: run-time failures, reported at the step's line.
    path = script(
        tmp_path,
        "init: {assistant: a, dialog: d, node: n}\nsteps:\n  - say: Hi\n"
        "  - assistant: {meta: {template: {templateType: quick_replies, body: x, actions: 5}}}\n",
    )
    result = run_dialog(path)
    assert result.failure is not None
    assert (result.failure.step, result.failure.line) == (2, 4)
    assert "`actions`: pass a list (got int)" in result.failure.message
    path.write_text(
        "init: {assistant: a, dialog: d, node: n}\nsteps:\n  - event: onMessageReceived\n"
        "    payload: {body: 5, direction: out}\n"
    )
    result = run_dialog(path)
    assert result.failure is not None
    assert (result.failure.step, result.failure.line) == (1, 3)
    assert "`body`: pass a str (got int)" in result.failure.message


def test_an_unexpected_exception_carries_the_step_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant_flow.dialogs import _runner

    def broken(step: Any, session: Any, loaded: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(_runner, "_act", broken)
    path = script(tmp_path, "init: {assistant: a, dialog: d, node: n}\nsteps:\n  - say: Hi\n")
    with pytest.raises(RuntimeError, match="boom") as caught:
        run_dialog(path)
    assert caught.value.__notes__ == [f"{path}:3: step 1 (say: 'Hi')"]


def test_absent_under_a_list_in_a_script(tmp_path: Path, stubs: StubPool) -> None:
    # p08: a nested absent field that is there fails; one past the list's end passes.
    text = (
        "assistant: asst_support\nsteps:\n  - choose: Can't log in\n  - visit: kb_reset\n"
        "  - choose: Yes, thanks\n    absent: [lastDeflection.articles.0.visited]\n"
    )
    result = run_dialog(script(tmp_path, text), stubs=stubs)
    assert result.failure is not None
    assert "unexpected  lastDeflection.articles.0.visited: 1" in result.failure.message
    text = text.replace("articles.0.visited", "articles.2.visited")
    assert run_dialog(script(tmp_path, text), stubs=stubs).passed


def test_dialog_script_error_is_in_the_error_tree() -> None:
    import assistant_flow
    from assistant_flow import _exceptions, dialogs

    assert "DialogScriptError" in assistant_flow.__all__
    assert assistant_flow.DialogScriptError is dialogs.DialogScriptError
    assert _exceptions.DialogScriptError is dialogs.DialogScriptError
    assert issubclass(assistant_flow.DialogScriptError, assistant_flow.InvalidInputError)
