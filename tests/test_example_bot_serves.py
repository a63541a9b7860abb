"""examples/bot/bot_app.py serves as its docstring says (its dialogs are tested beside it)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

BOT = Path(__file__).parent.parent / "examples" / "bot" / "bot_app.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_bot_serves_its_webhook_against_a_local_stub(tmp_path: Path) -> None:
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "PORT": str(port), "BOT_DB": str(tmp_path / "bot.db")}
    with subprocess.Popen(
        [sys.executable, str(BOT)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(200):  # up to 10 s for uvicorn to listen
                try:
                    started = httpx.post(
                        f"{base}/conversations/c1/assistant",
                        json={"assistant": "a", "dialog": "d", "node": "n"},
                        timeout=2,
                    )
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            else:
                raise AssertionError("the bot did not start listening")
            assert started.json() == {"state": "in_assistant"}
            assert httpx.get(f"{base}/conversations/c1", timeout=2).json() == {
                "state": "in_assistant",
                "choices": [],
            }
        finally:
            process.terminate()
            output, _ = process.communicate(timeout=15)
    # uvicorn shuts down cleanly, then re-raises the SIGTERM it caught, as a server should.
    assert process.returncode == -15, output
    assert "Application shutdown complete." in output
    assert (
        "No KUSTOMER_BASE_URL: messages go to a local Kustomer stub at http://127.0.0.1:" in output
    )
    assert (tmp_path / "bot.db").exists()  # conversations were kept in the SQLite store
