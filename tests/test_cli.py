"""The assistant-flow command line: run, diagram, stub, schema; exit codes and messages."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistant_flow import SendMessageOptions
from assistant_flow._cli import main, wire_schema
from assistant_flow._machine import render_dot, render_mermaid

DIALOGS = Path(__file__).parent / "dialogs"
FED = DIALOGS / "fed_deflection.dialog.yaml"
PLAYED = DIALOGS / "support_login.dialog.yaml"


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def failing(tmp_path: Path) -> Path:
    path = tmp_path / "failing.dialog.yaml"
    path.write_text(FED.read_text().replace("visited: 1}", "visited: 3}"))
    return path


def broken(tmp_path: Path) -> Path:
    path = tmp_path / "broken.dialog.yaml"
    path.write_text("steps:\n  - say: hi\n  - whisper: psst\n")
    return path


# --- run -------------------------------------------------------------------------------------


def test_run_prints_one_line_per_script_and_a_summary() -> None:
    code, out, err = cli("run", str(FED), str(PLAYED))
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0].startswith(f"PASS   {FED}  (")
    assert lines[1].startswith(f"PASS   {PLAYED}  (")
    assert lines[3].split() == ["dialogs", "passed", "failed", "errored", "time"]
    assert lines[4].split()[:4] == ["2", "2", "0", "0"]
    assert err == ""


def test_run_searches_directories_for_dialog_scripts() -> None:
    code, out, _ = cli("run", str(DIALOGS))
    assert code == 0
    assert [line.split()[1] for line in out.splitlines()[:2]] == [str(FED), str(PLAYED)]


def test_a_failed_dialog_exits_1_and_shows_the_step(tmp_path: Path) -> None:
    code, out, _ = cli("run", str(failing(tmp_path)), str(FED))
    assert code == 1
    assert out.splitlines()[:4] == [
        out.splitlines()[0],
        f"       {tmp_path / 'failing.dialog.yaml'}:24: step 4 (say: 'Still stuck')",
        "       payload differs in 1 field:",
        "         different   lastDeflection.articles.0.visited: expected 3, got 1",
    ]
    assert out.splitlines()[0].startswith("FAIL ")
    assert out.splitlines()[-1].split()[:4] == ["2", "1", "1", "0"]


def test_a_script_mistake_exits_2_with_file_and_line_under_its_error_line(
    tmp_path: Path,
) -> None:
    path = broken(tmp_path)
    code, out, err = cli("run", str(path), str(failing(tmp_path)))
    assert code == 2
    assert out.splitlines()[0].startswith(f"ERROR  {path}")
    assert out.splitlines()[1] == (
        f"       {path}:3: unknown step key `whisper`; a step is one of say, choose, "
        "attach, visit, event, assistant, with any of absent, error, events, exact, expect, "
        "lang, payload, state"
    )
    assert err == ""
    assert out.splitlines()[-1].split()[:4] == ["2", "0", "1", "1"]


def test_a_crash_in_one_script_is_its_error_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant_flow.dialogs import _runner

    real_act = _runner._act

    def act(step: Any, session: Any, script: Any) -> None:
        if script.path.name == "crash.dialog.yaml":
            raise RuntimeError("boom")
        real_act(step, session, script)

    monkeypatch.setattr(_runner, "_act", act)
    crash = tmp_path / "crash.dialog.yaml"
    crash.write_text("init: {assistant: a, dialog: d, node: n}\nsteps:\n  - say: Hi\n")
    code, out, err = cli("run", str(crash), str(FED))
    assert code == 2
    lines = out.splitlines()
    assert lines[0].startswith(f"ERROR  {crash}")
    assert lines[1:3] == [
        f"       {crash}: RuntimeError: boom",
        f"       {crash}:3: step 1 (say: 'Hi')",
    ]
    assert lines[3].startswith(f"PASS   {FED}")
    assert lines[-1].split()[:4] == ["2", "1", "0", "1"]
    assert "Traceback" not in out + err
    code, out, _ = cli("run", "--traceback", str(crash))
    assert code == 2
    assert "Traceback (most recent call last):" in out
    assert out.count("RuntimeError: boom") == 2  # the reason, then the traceback's last line


def test_a_bad_assistant_file_is_that_scripts_error(tmp_path: Path) -> None:
    (tmp_path / "bot.yaml").write_text("assistants: {asst_x: {dialog: d}}\n")
    bad = tmp_path / "a0.dialog.yaml"
    bad.write_text("assistant: asst_x\nassistants: bot.yaml\nsteps:\n  - say: Hi\n")
    code, out, err = cli("run", str(bad), str(PLAYED))
    assert code == 2
    lines = out.splitlines()
    assert lines[0].startswith(f"ERROR  {bad}")
    assert lines[1].startswith(
        f"       {bad}:2: the assistant file cannot be played: {tmp_path / 'bot.yaml'}: "
    )
    assert lines[2].startswith(f"PASS   {PLAYED}")
    assert err == ""


def test_usage_mistakes_exit_2_without_a_traceback(tmp_path: Path) -> None:
    code, _, err = cli("run", str(tmp_path))
    assert (code, err) == (
        2,
        "assistant-flow: error: no dialog scripts found (files named *.dialog.yaml)\n",
    )
    code, _, err = cli("run", "--target", "moon", str(FED))
    assert code == 2
    assert "invalid choice: 'moon'" in err
    code, _, err = cli("frobnicate")
    assert code == 2
    assert "argument COMMAND: invalid choice: 'frobnicate'" in err
    code, out, _ = cli("--help")
    assert code == 0
    assert out.startswith("usage: assistant-flow [-h] [--version] COMMAND ...")
    for command in ("run", "diagram", "stub", "schema"):
        assert f"    {command} " in out


def test_the_org_target_names_the_missing_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUSTOMER_BASE_URL", raising=False)
    monkeypatch.delenv("KUSTOMER_API_KEY", raising=False)
    code, out, err = cli("run", "--target", "org", str(FED))
    assert (code, out) == (2, "")
    assert err == (
        "assistant-flow: error: the org target needs the environment variables "
        "KUSTOMER_BASE_URL and KUSTOMER_API_KEY\n"
    )


def test_the_org_target_refuses_plain_http_and_never_shows_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KUSTOMER_BASE_URL", "http://acme.example.test")
    monkeypatch.setenv("KUSTOMER_API_KEY", "very-secret-key")
    code, out, err = cli("run", "--target", "org", str(FED))
    assert (code, out) == (2, "")
    assert err.startswith("assistant-flow: error: ")
    assert "http://" in err
    assert "very-secret-key" not in out + err


# --- schema ----------------------------------------------------------------------------------


def test_schema_describes_the_wire_models_in_camel_case(tmp_path: Path) -> None:
    code, out, _ = cli("schema")
    assert code == 0
    schema = json.loads(out)
    assert schema == wire_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    send = schema["$defs"]["SendMessageOptions"]
    assert set(send["properties"]) == {
        "conversationId",
        "body",
        "payload",
        "attachments",
        "lastDeflection",
        "isInAssistantMode",
        "initAssistantPayload",
        "lang",
    }
    assert send["required"] == ["conversationId"]
    assert send["additionalProperties"] is False
    assert {"InitAssistantResponse", "SentMessage", "ReceivedMessage"} <= set(schema["$defs"])
    # Every field a real payload carries is one the schema declares.
    payload = SendMessageOptions(conversation_id="c", body="b", is_in_assistant_mode=True).to_wire()
    assert set(payload) <= set(send["properties"])
    target = tmp_path / "wire.json"
    assert cli("schema", "--out", str(target))[0] == 0
    assert json.loads(target.read_text()) == schema


def test_schema_refs_all_resolve() -> None:
    schema = wire_schema()
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert refs
    for ref in refs:
        assert ref.startswith("#/$defs/")
        assert ref.removeprefix("#/$defs/") in schema["$defs"]


# --- diagram ---------------------------------------------------------------------------------


def test_diagram_writes_to_out_and_needs_graphviz_for_the_svg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    code, out, err = cli("diagram", "--out", str(tmp_path / "drawn"))
    assert code == 2
    assert "Graphviz `dot` is needed" in err
    assert "brew install graphviz" in err
    assert out.splitlines() == [
        str(tmp_path / "drawn" / name) for name in ("lifecycle.mmd", "lifecycle.dot")
    ]
    assert (tmp_path / "drawn" / "lifecycle.mmd").read_text() == render_mermaid()
    # A stand-in `dot` that answers with an SVG: all three files are written, and listed.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dot"
    fake.write_text("#!/bin/sh\ncat >/dev/null\nprintf '<?xml version=\"1.0\"?>\\n<svg/>\\n'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    code, out, _ = cli("diagram", "--out", str(tmp_path / "drawn"))
    assert code == 0
    assert out.splitlines() == [
        str(tmp_path / "drawn" / name)
        for name in ("lifecycle.mmd", "lifecycle.dot", "lifecycle.svg")
    ]
    assert (tmp_path / "drawn" / "lifecycle.dot").read_text() == render_dot()


# --- as installed: the console script and python -m ------------------------------------------


def test_the_console_script_and_python_m_run_dialogs(tmp_path: Path) -> None:
    script = shutil.which("assistant-flow", path=str(Path(sys.executable).parent))
    assert script is not None, "the assistant-flow console script is installed with the package"
    for command in ([script], [sys.executable, "-m", "assistant_flow"]):
        done = subprocess.run(
            [*command, "run", str(FED), str(broken(tmp_path))],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert done.stdout.startswith(f"PASS   {FED}")
        assert "Traceback" not in done.stderr + done.stdout
        assert f"{broken(tmp_path)}:3: unknown step key `whisper`" in done.stdout
        assert "transition" not in done.stdout  # the flow's info logs stay out of the report


def test_the_stub_command_serves_until_terminated() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        [sys.executable, "-m", "assistant_flow", "stub", "--port", "0", "--api-key", "k1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    ) as process:
        serve(process)


def read_line(stream: Any, timeout: float) -> str:
    """The first line the process prints, or a failure after ``timeout`` seconds."""
    found: list[str] = []
    reader = threading.Thread(target=lambda: found.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert found, f"no line within {timeout} s"
    return found[0].strip()


def serve(process: subprocess.Popen[str]) -> None:
    try:
        assert process.stdout is not None
        url = read_line(process.stdout, timeout=30)
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{url}/_stub/health", timeout=5).status_code == 200
        answer = httpx.get(
            f"{url}/v2.1/chat/assistants/asst_support/init",
            headers={"Authorization": "Bearer k1"},
            timeout=5,
        )
        assert answer.json()["assistant"] == "asst_support"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_the_stub_command_help_and_mistakes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "assistant_flow", "stub", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout.startswith("usage: assistant-flow stub ")
    done = subprocess.run(
        [sys.executable, "-m", "assistant_flow", "stub", "--fault", "teapot"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith("assistant-flow stub: error: ")


def test_the_command_says_its_version(capsys: pytest.CaptureFixture[str]) -> None:
    import assistant_flow
    from assistant_flow._cli import main

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"assistant-flow {assistant_flow.__version__}"
