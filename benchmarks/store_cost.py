"""What a send costs on the durable stores, against the bare storage operations it wraps.

    python benchmarks/store_cost.py            (make bench runs it too)

Starts its own redis-server on a free loopback port (no persistence) and a SQLite file in a
temporary folder, and stops/removes both at the end. Prints, from one process:

* Redis round trips per send, counted on the client (every command written to the socket),
  for a reply in a running assistant (nothing to save) and for a first reply (record saved);
* the median time of ``flow.conversation(id).send_message(...)`` on RedisStore +
  MemoryTransport, as a ratio to a bare ``GET`` + ``SET`` pair on the same connection,
  batches interleaved in the same run;
* SQLite sends per second on SQLiteStore + MemoryTransport, as a ratio to a bare
  ``UPDATE ... WHERE id = ?`` (autocommit) on the same file, also interleaved.

structlog drops info events (a WARNING threshold), as a high-volume backend would.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import socket
import sqlite3
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import redis
import structlog

from assistant_flow import (
    ConversationRecord,
    Flow,
    InitAssistantResponse,
    MemoryTransport,
    RedisStore,
    SQLiteStore,
    Store,
)

BODY = "Thanks, that answers it."
CONVERSING = "in_assistant.conversing"
AWAITING = "in_assistant.awaiting_first_reply"
INIT_PAYLOAD = InitAssistantResponse.model_validate(
    {
        "assistant": "asst_bench",
        "dialog": "dlg_bench",
        "node": "node_bench",
        "initialMessages": [
            {
                "meta": {"template": {"templateType": "text", "body": "How can I help?"}},
                "direction": "out",
                "directionType": "initial-out",
                "importedAt": "2026-11-25T09:00:00.000Z",
                "trackingId": "trk_1",
                "lang": "en_us",
            }
        ],
    }
).to_init_payload()


class CountingConnection(redis.Connection):
    """A redis-py connection that counts the commands it writes: one per round trip."""

    sent = 0

    def send_packed_command(self, command: object, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


@contextmanager
def redis_server(directory: Path) -> Iterator[int]:
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("redis-server is not installed: `make test` or `make bench` installs it")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    process = subprocess.Popen(
        [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = redis.Redis(port=port)
        for _ in range(500):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        else:
            raise SystemExit("redis-server did not answer PING")
        client.close()
        yield port
    finally:
        process.terminate()
        process.wait(10)


def conversation_id(n: int) -> str:
    return f"conv_{n:08d}"


def measure(
    contenders: dict[str, Callable[[str], object]],
    ids_for: dict[str, Callable[[], Sequence[str]]],
    repeats: int,
) -> dict[str, float]:
    """Median seconds per call of each contender, batches interleaved round-robin."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, call in contenders.items():
            ids = ids_for[name]()
            start = time.perf_counter()
            for cid in ids:
                call(cid)
            samples[name].append((time.perf_counter() - start) / len(ids))
    return {name: statistics.median(values) for name, values in samples.items()}


class Fixture:
    """A flow on one store, with conversations made ready for replies and first replies."""

    def __init__(self, store: Store, conversations: int) -> None:
        self.store = store
        self.transport = MemoryTransport()
        self.flow = Flow(self.transport, store)
        self.conversations = conversations
        self._fresh = 0
        for n in range(conversations):
            store.save(ConversationRecord(conversation_id(n), CONVERSING, 2), expected_version=0)

    def reply(self, cid: str) -> None:
        self.flow.conversation(cid).send_message(BODY)
        self.transport.sent.clear()

    def awaiting(self, count: int) -> list[str]:
        """``count`` new conversations, each waiting for its first reply."""
        ids = []
        for _ in range(count):
            self._fresh += 1
            cid = f"first_{self._fresh:09d}"
            record = ConversationRecord(cid, AWAITING, 1, init_payload=INIT_PAYLOAD)
            self.store.save(record, expected_version=0)
            ids.append(cid)
        return ids


def redis_figures(port: int, args: argparse.Namespace) -> dict[str, float]:
    store = RedisStore.from_url(
        f"redis://127.0.0.1:{port}/0", connection_class=CountingConnection, prefix="bench:"
    )
    bench = Fixture(store, args.conversations)
    bare = store.client

    # Warm up: the first use of each script loads it into Redis (one extra round trip once).
    bench.reply(conversation_id(0))
    bench.reply(bench.awaiting(1)[0])

    def trips(call: Callable[[str], object], ids: Sequence[str]) -> float:
        before = CountingConnection.sent
        for cid in ids:
            call(cid)
        return (CountingConnection.sent - before) / len(ids)

    sample = [conversation_id(n % args.conversations) for n in range(args.batch)]
    reply_trips = trips(bench.reply, sample)
    first_trips = trips(bench.reply, bench.awaiting(args.batch))

    def bare_get_set(cid: str) -> None:
        key = f"bare:{{{cid}}}"
        bare.get(key)
        bare.set(key, BODY)

    def ids() -> list[str]:
        return [conversation_id(n % args.conversations) for n in range(args.batch)]

    timed = measure(
        {"bare": bare_get_set, "reply": bench.reply, "first": bench.reply},
        {"bare": ids, "reply": ids, "first": lambda: bench.awaiting(args.batch)},
        args.repeats,
    )
    store.close()
    return {
        "redis_reply_round_trips": reply_trips,
        "redis_first_reply_round_trips": first_trips,
        "redis_bare_us": timed["bare"] * 1e6,
        "redis_reply_us": timed["reply"] * 1e6,
        "redis_first_us": timed["first"] * 1e6,
        "redis_reply_ratio": timed["reply"] / timed["bare"],
        "redis_first_ratio": timed["first"] / timed["bare"],
    }


def sqlite_figures(directory: Path, args: argparse.Namespace) -> dict[str, float]:
    path = directory / "bench.db"
    store = SQLiteStore(path)
    bench = Fixture(store, args.conversations)
    bare = sqlite3.connect(path, isolation_level=None)
    bare.execute("CREATE TABLE bare (id TEXT PRIMARY KEY, body TEXT) WITHOUT ROWID")
    bare.executemany(
        "INSERT INTO bare VALUES (?, ?)",
        [(conversation_id(n), BODY) for n in range(args.conversations)],
    )

    def bare_update(cid: str) -> None:
        bare.execute("UPDATE bare SET body = ? WHERE id = ?", (BODY, cid))

    def ids() -> list[str]:
        return [conversation_id(n % args.conversations) for n in range(args.batch)]

    timed = measure(
        {"bare": bare_update, "reply": bench.reply, "first": bench.reply},
        {"bare": ids, "reply": ids, "first": lambda: bench.awaiting(args.batch)},
        args.repeats,
    )
    bare.close()
    store.close()
    return {
        "sqlite_bare_per_s": 1 / timed["bare"],
        "sqlite_reply_per_s": 1 / timed["reply"],
        "sqlite_first_per_s": 1 / timed["first"],
        "sqlite_reply_ratio": timed["reply"] / timed["bare"],
        "sqlite_first_ratio": timed["first"] / timed["bare"],
    }


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=200, help="sends per timed batch")
    parser.add_argument("--repeats", type=int, default=15, help="timed batches per contender")
    args = parser.parse_args(argv)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        cache_logger_on_first_use=True,
    )
    with tempfile.TemporaryDirectory(prefix="store_cost_") as folder:
        directory = Path(folder)
        with redis_server(directory) as port:
            results = redis_figures(port, args)
        results |= sqlite_figures(directory, args)

    print(
        f"store cost, Flow + MemoryTransport (info events filtered; medians of {args.repeats} "
        f"interleaved batches of {args.batch})"
    )
    print(
        f"Redis round trips per send: reply {results['redis_reply_round_trips']:.2f}, "
        f"first reply (record saved) {results['redis_first_reply_round_trips']:.2f}"
    )
    print(f"{'':44} {'median':>10} {'ratio':>8}")
    for name, key, ratio in (
        ("Redis: bare GET + SET", "redis_bare_us", 1.0),
        ("Redis: reply through the flow", "redis_reply_us", results["redis_reply_ratio"]),
        ("Redis: first reply through the flow", "redis_first_us", results["redis_first_ratio"]),
    ):
        print(f"{name:44} {results[key]:8.1f} us {ratio:7.2f}x")
    print(f"{'':44} {'per s':>10} {'ratio':>8}")
    for name, key, ratio in (
        ("SQLite: bare UPDATE (autocommit)", "sqlite_bare_per_s", 1.0),
        ("SQLite: replies through the flow", "sqlite_reply_per_s", results["sqlite_reply_ratio"]),
        (
            "SQLite: first replies through the flow",
            "sqlite_first_per_s",
            results["sqlite_first_ratio"],
        ),
    ):
        print(f"{name:44} {results[key]:10,.0f} {ratio:7.2f}x")
    return results


if __name__ == "__main__":
    main()
