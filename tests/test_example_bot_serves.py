"""examples/bot/bot_app.py serves as its docstring says (its dialogs are tested beside it)."""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from assistant_flow.testing import KustomerStub, StubClient

BOT = Path(__file__).parent.parent / "examples" / "bot" / "bot_app.py"


def lines_of(process: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's output lines as they come, read on a thread so waits can be bounded."""
    found: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stream = process.stdout

    def pump() -> None:
        for line in stream:
            found.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return found


def wait_for(found: queue.Queue[str], pattern: str, seen: list[str]) -> re.Match[str]:
    """The first line matching ``pattern`` within 20 s (uvicorn starts in well under 1 s)."""
    while True:
        try:
            line = found.get(timeout=20)
        except queue.Empty:
            raise AssertionError(f"no line matching {pattern!r}: {seen}") from None
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match


def test_the_bot_forwards_a_message_and_a_choice_to_kustomer(
    tmp_path: Path, kustomer_stub: KustomerStub
) -> None:
    with StubClient(kustomer_stub.url, kustomer_stub.api_key) as core:
        session = core.create_session("cust_7", "served bot", assistant="asst_support")
        init = core.init_assistant("asst_support")
    conversation = session["conversationId"]
    env = {
        "PATH": "/usr/bin:/bin",
        "PORT": "0",  # the server binds a free port itself and prints it: no race for one
        "BOT_DB": str(tmp_path / "bot.db"),
        "KUSTOMER_BASE_URL": kustomer_stub.url,
        "KUSTOMER_API_KEY": kustomer_stub.api_key,
    }
    seen: list[str] = []
    with subprocess.Popen(
        [sys.executable, str(BOT)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        try:
            found = lines_of(process)
            base = wait_for(found, r"Uvicorn running on (http://127\.0\.0\.1:\d+)", seen)[1]
            with httpx.Client(base_url=base, timeout=5) as bot:
                started = bot.post(f"/conversations/{conversation}/assistant", json=init)
                assert started.json() == {"state": "in_assistant"}
                offered = bot.get(f"/conversations/{conversation}").json()["choices"]
                said = bot.post(f"/conversations/{conversation}/messages", json={"body": "Hi"})
                assert said.status_code == 200, said.text
                chose = bot.post(
                    f"/conversations/{conversation}/choices", json={"choice": offered[0]}
                )
                assert chose.status_code == 200, chose.text
        finally:
            process.terminate()
            process.wait(timeout=15)
    received = [r["body"] for r in kustomer_stub.requests("assistant_messages")]
    assert [body["body"] for body in received] == ["Hi", offered[0]]
    assert received[0]["conversationId"] == conversation
    assert received[0]["initAssistantPayload"]["assistant"] == "asst_support"
    assert received[1]["payload"]  # the quick reply's value went with the choice
    assert all(body["isInAssistantMode"] is True for body in received)
    # uvicorn shuts down cleanly, then re-raises the SIGTERM it caught, as a server should.
    assert process.returncode == -15, seen
    assert (tmp_path / "bot.db").exists()  # conversations were kept in the SQLite store


def test_without_kustomer_settings_the_bot_serves_a_local_stub(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PORT": "0", "BOT_DB": str(tmp_path / "bot.db")}
    seen: list[str] = []
    with subprocess.Popen(
        [sys.executable, str(BOT)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        try:
            found = lines_of(process)
            stub = wait_for(found, r"messages go to a local Kustomer stub at (http://\S+)", seen)
            base = wait_for(found, r"Uvicorn running on (http://127\.0\.0\.1:\d+)", seen)[1]
            started = httpx.post(
                f"{base}/conversations/c1/assistant",
                json={"assistant": "a", "dialog": "d", "node": "n"},
                timeout=5,
            )
            assert started.json() == {"state": "in_assistant"}
            assert httpx.get(f"{stub[1]}/_stub/health", timeout=5).status_code == 200
        finally:
            process.terminate()
            process.wait(timeout=15)
    assert process.returncode == -15, seen
    wait_for(found, r"Application shutdown complete\.", seen)
