"""examples/bot/bot_app.py serves as its docstring says (its dialogs are tested beside it)."""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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


@dataclass
class ServedBot:
    """The bot's process and its output so far."""

    process: subprocess.Popen[str]
    found: queue.Queue[str]
    seen: list[str] = field(default_factory=list)

    def wait_for(self, pattern: str) -> re.Match[str]:
        return wait_for(self.found, pattern, self.seen)


@contextmanager
def served_bot(env: dict[str, str]) -> Iterator[ServedBot]:
    """Run the bot with ``env``; SIGTERM it when the block ends, however it ends."""
    with subprocess.Popen(
        [sys.executable, str(BOT)],
        env={"PATH": "/usr/bin:/bin", "PORT": "0", **env},  # port 0: no race for a free port
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        bot = ServedBot(process, lines_of(process))
        try:
            yield bot
        finally:
            process.terminate()
            process.wait(timeout=15)


def test_the_bot_forwards_a_message_and_a_choice_to_kustomer(
    tmp_path: Path, kustomer_stub: KustomerStub
) -> None:
    with StubClient(kustomer_stub.url, kustomer_stub.api_key) as core:
        session = core.create_session("cust_7", "served bot", assistant="asst_support")
        init = core.init_assistant("asst_support")
    conversation = session["conversationId"]
    env = {
        "BOT_DB": str(tmp_path / "bot.db"),
        "KUSTOMER_BASE_URL": kustomer_stub.url,
        "KUSTOMER_API_KEY": kustomer_stub.api_key,
    }
    with served_bot(env) as served:
        base = served.wait_for(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")[1]
        with httpx.Client(base_url=base, timeout=5) as bot:
            started = bot.post(f"/conversations/{conversation}/assistant", json=init)
            assert started.json() == {"state": "in_assistant"}
            offered = bot.get(f"/conversations/{conversation}").json()["choices"]
            said = bot.post(f"/conversations/{conversation}/messages", json={"body": "Hi"})
            assert said.status_code == 200, said.text
            chose = bot.post(f"/conversations/{conversation}/choices", json={"choice": offered[0]})
            assert chose.status_code == 200, chose.text
    received = [r["body"] for r in kustomer_stub.requests("assistant_messages")]
    assert [body["body"] for body in received] == ["Hi", offered[0]]
    assert received[0]["conversationId"] == conversation
    assert received[0]["initAssistantPayload"]["assistant"] == "asst_support"
    assert received[1]["payload"]  # the quick reply's value went with the choice
    assert all(body["isInAssistantMode"] is True for body in received)
    # uvicorn shuts down cleanly, then re-raises the SIGTERM it caught, as a server should.
    assert served.process.returncode == -15, served.seen
    assert (tmp_path / "bot.db").exists()  # conversations were kept in the SQLite store


def test_without_kustomer_settings_the_bot_serves_a_local_stub(tmp_path: Path) -> None:
    with served_bot({"BOT_DB": str(tmp_path / "bot.db")}) as served:
        stub = served.wait_for(r"messages go to a local Kustomer stub at (http://\S+)")
        base = served.wait_for(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")[1]
        started = httpx.post(
            f"{base}/conversations/c1/assistant",
            json={"assistant": "a", "dialog": "d", "node": "n"},
            timeout=5,
        )
        assert started.json() == {"state": "in_assistant"}
        assert httpx.get(f"{stub[1]}/_stub/health", timeout=5).status_code == 200
    assert served.process.returncode == -15, served.seen
    served.wait_for(r"Application shutdown complete\.")
