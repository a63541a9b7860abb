"""Real processes sharing one store: a SQLite file, or a real redis-server.

Eight worker processes race first replies and quick replies on the same 50 conversations;
a worker SIGKILLed while it holds a conversation's lock blocks it only until the lock lapses;
a dialog started in one process carries on in another. The workers are
tests/store_worker.py, each writing what it sent to its own JSON-lines file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis_server import RedisServer
from store_worker import BUTTONS, conversation_ids

from assistant_flow import (
    Flow,
    LockTimeoutError,
    MemoryTransport,
    RedisStore,
    SQLiteStore,
    Store,
)

WORKER = Path(__file__).parent / "store_worker.py"
WORKERS = 8
CONVERSATIONS = 50


@dataclass
class Shared:
    """How a test and its worker processes reach the same store."""

    spec: str
    prefix: str

    def open(self, lock_timeout: float = 10.0) -> Store:
        if self.spec.startswith("sqlite:"):
            return SQLiteStore(self.spec.removeprefix("sqlite:"), lock_timeout=lock_timeout)
        return RedisStore.from_url(self.spec, prefix=self.prefix, lock_timeout=lock_timeout)


@pytest.fixture(params=["sqlite", "redis"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Shared:
    prefix = f"proc:{uuid.uuid4().hex}:"
    if request.param == "sqlite":
        return Shared(f"sqlite:{tmp_path / 'shared.db'}", prefix)
    server: RedisServer = request.getfixturevalue("redis_server")
    return Shared(server.url, prefix)


def start_worker(shared: Shared, out: Path, *args: str, worker: int = 0) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            str(WORKER),
            shared.spec,
            str(out),
            "--worker",
            str(worker),
            "--prefix",
            shared.prefix,
            *args,
        ],
        stdout=subprocess.DEVNULL,  # structlog's default configuration prints there
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> None:
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr


def read_lines(*files: Path) -> list[dict[str, Any]]:
    lines = []
    for file in files:
        if file.exists():
            lines += [json.loads(line) for line in file.read_text().splitlines()]
    return lines


def test_racing_processes_send_each_first_reply_once_and_lose_nothing(
    shared: Shared, tmp_path: Path
) -> None:
    setup = shared.open()
    flow = Flow(MemoryTransport(), setup)
    for conversation_id in conversation_ids(CONVERSATIONS):
        flow.conversation(conversation_id).start_assistant(BUTTONS)

    go = tmp_path / "go"
    outs = [tmp_path / f"worker_{n}.jsonl" for n in range(WORKERS)]
    workers = [
        start_worker(
            shared, outs[n], "race", "--go", str(go), "--conversations", str(CONVERSATIONS),
            worker=n,
        )
        for n in range(WORKERS)
    ]  # fmt: skip
    # Start them together once all are ready (importing takes a while), so they really race.
    deadline = time.monotonic() + 60
    while sum(line["kind"] == "ready" for line in read_lines(*outs)) < WORKERS:
        for process in workers:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the workers never got ready"
        time.sleep(0.02)
    go.touch()
    for process in workers:
        finish(process)

    lines = read_lines(*outs)
    sent = sorted((line for line in lines if line["kind"] == "sent"), key=lambda line: line["at"])
    refused = [line for line in lines if line["kind"] == "refused"]
    by_conversation: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in sent:
        by_conversation[line["message"]["conversationId"]].append(line["message"])

    assert sorted(by_conversation) == conversation_ids(CONVERSATIONS)
    for conversation_id, messages in by_conversation.items():
        # no send lost: one plain reply per worker, plus the one quick reply that won
        assert len(messages) == WORKERS + 1, conversation_id
        assert sum("initAssistantPayload" in m for m in messages) == 1, conversation_id
        assert "initAssistantPayload" in messages[0], conversation_id  # and on the first
        quick = [m for m in messages if m.get("payload") == "billing"]
        assert len(quick) == 1, conversation_id
        assert all(m["isInAssistantMode"] is True for m in messages)
        # no state update lost: start (v1), then one version for each message delivered
        final = flow.conversation(conversation_id).snapshot()
        assert (final.machine_state, final.version) == (
            "in_assistant.conversing",
            1 + len(messages),
        ), conversation_id
        assert final.choices == ()
    assert len(refused) == CONVERSATIONS * (WORKERS - 1)  # every other quick reply was refused
    setup.close()


def test_a_worker_killed_while_holding_a_lock_blocks_it_only_until_the_lock_lapses(
    shared: Shared, tmp_path: Path
) -> None:
    out = tmp_path / "holder.jsonl"
    lease = 1.0  # short, so the test waits little; long enough to probe the held lock first
    holder = start_worker(shared, out, "--lock-timeout", str(lease), "hold", "conv_held")
    try:
        deadline = time.monotonic() + 30
        while not (holding := [line for line in read_lines(out) if line["kind"] == "holding"]):
            assert holder.poll() is None, holder.stderr.read() if holder.stderr else ""
            assert time.monotonic() < deadline, "the holder never took the lock"
            time.sleep(0.02)
        held_at = holding[0]["at"] / 1e9
        # While the holder lives, its lease is renewed: still held after more than a lease.
        time.sleep(max(0.0, held_at + 1.5 * lease - time.monotonic()))
        probe = shared.open(lock_timeout=0.05)
        with pytest.raises(LockTimeoutError), probe.lock("conv_held"):
            pass
        probe.close()
        os.kill(holder.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        holder.wait(10)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
        if holder.stderr:
            holder.stderr.close()
    assert holder.returncode == -signal.SIGKILL

    # Once killed it renews no more: the next worker gets in within one lease and sends. (Its
    # own lock_timeout, which bounds its wait, is generous so a loaded machine does not fail
    # the test; the bound is asserted on the clock instead, with generous slack.)
    transport = MemoryTransport()
    store = shared.open(lock_timeout=10 * lease)
    with store.lock("conv_held"):
        acquired_at = time.monotonic()
    assert acquired_at - held_at >= lease - 0.05  # the lease did last
    assert acquired_at - killed_at <= lease + 3.0  # and ended at most a lease after the kill
    flow = Flow(transport, store)
    flow.conversation("conv_held").start_assistant(BUTTONS)
    flow.conversation("conv_held").send_message("after the crash")
    assert [m["body"] for m in transport.sent] == ["after the crash"]
    assert "initAssistantPayload" in transport.sent[0]
    store.close()


def test_a_dialog_started_in_one_process_continues_in_another(
    shared: Shared, tmp_path: Path
) -> None:
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    finish(start_worker(shared, first, "steps", "conv_1", "start", "reply:Hi"))
    finish(start_worker(shared, second, "steps", "conv_1", "choose:Billing", "reply:Thanks"))

    before = [line["message"] for line in read_lines(first)]
    after = [line["message"] for line in read_lines(second)]
    assert [m["body"] for m in before] == ["Hi"]
    assert "initAssistantPayload" in before[0]
    # the second process knew the first reply was sent and which buttons were on offer
    assert [(m["body"], m.get("payload")) for m in after] == [
        ("Billing", "billing"),
        ("Thanks", None),
    ]
    assert not any("initAssistantPayload" in m for m in after)
    assert all(m["isInAssistantMode"] is True for m in after)
    store = shared.open()
    final = Flow(MemoryTransport(), store).conversation("conv_1").snapshot()
    assert (final.machine_state, final.version, final.choices) == (
        "in_assistant.conversing",
        4,  # start, then one version for each of the three messages
        (),
    )
    store.close()
