"""What a send costs on the durable stores, against the bare storage operations it wraps.

    python benchmarks/store_cost.py            (make bench runs it too)

Starts its own redis-server on a free loopback port (no persistence) and a SQLite file in a
temporary folder, and stops/removes both at the end. Prints, from one process:

* Redis round trips per send, counted on the client (every command written to a socket)
  and on the server (``MONITOR``: commands from clients, not the scripts' own calls), for a
  reply and for a first reply;
* the median time of ``flow.conversation(id).send_message(...)`` on RedisStore +
  MemoryTransport, as a ratio to a bare ``GET`` + ``SET`` pair through the same redis-py
  client, batches interleaved in the same run; also the pair on one connection held out of
  the pool (what the wire costs, without redis-py's per-command pool work);
* SQLite sends per second on SQLiteStore + MemoryTransport, as a ratio to a bare
  ``UPDATE ... WHERE id = ?`` (autocommit) writing a new value each time, in a file of its
  own next to the store's with the same settings (so each side pays for its own WAL
  checkpoints), also interleaved; and to the same UPDATE writing the value already stored,
  which SQLite turns into no write at all (the baseline before 2026-12, which made every
  ratio larger);
* all of it again from ``--processes`` worker processes at once (4 by default), each on its
  own conversations, rounds interleaved: the flow's workers against as many doing the bare
  operation, as aggregate time per send.

Each ratio is the median over the rounds of one batch against the bare batch of the same
round, so a slow spell of a shared machine weighs on both sides of it. The rows "record not
cached" clear the store's record cache before each send, as when
another process saved the record last: the JSON is then decoded as well.

structlog drops info events in every process (``structlog.make_filtering_bound_logger(
logging.WARNING)``), as a high-volume backend would; every figure is measured so.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import shutil
import socket
import sqlite3
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

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


def quiet_logging() -> None:
    """Info events dropped before they are built: the set-up every figure is measured with."""
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        cache_logger_on_first_use=True,
    )


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


def conversation_id(n: int, worker: int = 0) -> str:
    return f"conv_{worker:02d}_{n:08d}"


def measure(
    contenders: dict[str, Callable[[str], object]],
    ids_for: dict[str, Callable[[], Sequence[str]]],
    repeats: int,
) -> dict[str, list[float]]:
    """Seconds per call of each contender in each round; batches interleaved round-robin."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, call in contenders.items():
            ids = ids_for[name]()
            start = time.perf_counter()
            for cid in ids:
                call(cid)
            samples[name].append((time.perf_counter() - start) / len(ids))
    return samples


def summary(samples: dict[str, list[float]], baseline: str) -> dict[str, tuple[float, float]]:
    """Each contender's median seconds per call, and its ratio to ``baseline``: the median of
    the rounds' ratios, each batch against the baseline's batch of the same round (so a slow
    spell of the shared machine weighs on both sides of a ratio, not on one median)."""
    base = samples[baseline]
    return {
        name: (
            statistics.median(values),
            statistics.median(value / bare for value, bare in zip(values, base, strict=True)),
        )
        for name, values in samples.items()
    }


class Fixture:
    """A flow on one store, with conversations made ready for replies and first replies."""

    def __init__(self, store: Store, conversations: int, worker: int = 0) -> None:
        self.store = store
        self.transport = MemoryTransport()
        self.flow = Flow(self.transport, store)
        self.conversations = conversations
        self.worker = worker
        self._fresh = 0
        for n in range(conversations):
            record = ConversationRecord(conversation_id(n, worker), CONVERSING, 2)
            store.save(record, expected_version=0)

    def ids(self, count: int) -> list[str]:
        return [conversation_id(n % self.conversations, self.worker) for n in range(count)]

    def reply(self, cid: str) -> None:
        self.flow.conversation(cid).send_message(BODY)
        self.transport.sent.clear()

    def cold_reply(self, cid: str) -> None:
        """A reply whose record this store did not write or read last: decoded from JSON."""
        cache = getattr(self.store, "_records", None)  # none in stores before 2026-12
        if cache is not None:
            cache.clear()
        self.reply(cid)

    def awaiting(self, count: int) -> list[str]:
        """``count`` new conversations, each waiting for its first reply."""
        ids = []
        for _ in range(count):
            self._fresh += 1
            cid = f"first_{self.worker:02d}_{self._fresh:09d}"
            record = ConversationRecord(cid, AWAITING, 1, init_payload=INIT_PAYLOAD)
            self.store.save(record, expected_version=0)
            ids.append(cid)
        return ids


# --- the bare operations ------------------------------------------------------------------


def bare_redis(client: redis.Redis) -> Callable[[str], None]:
    """A GET and a SET of the conversation's key through the redis-py client (its pool)."""

    def get_set(cid: str) -> None:
        key = f"bare:{{{cid}}}"
        client.get(key)
        client.set(key, BODY)

    return get_set


def bare_redis_held(client: redis.Redis) -> Callable[[str], None]:
    """The same GET and SET on one connection held out of the pool: the wire's own cost."""
    held = client.connection_pool.get_connection()

    def get_set(cid: str) -> None:
        key = f"bare:{{{cid}}}"
        held.send_command("GET", key)  # type: ignore[no-untyped-call]
        held.read_response()
        held.send_command("SET", key, BODY)  # type: ignore[no-untyped-call]
        held.read_response()

    return get_set


def bare_sqlite(path: Path, ids: Sequence[str]) -> tuple[sqlite3.Connection, Callable[[str], None]]:
    """An autocommit UPDATE of one row that writes a new value each time.

    In ``path``'s own sibling file ``bare.db``, on a connection set up as the store's (WAL,
    ``synchronous=NORMAL``: no fsync a commit).
    """
    bare = sqlite3.connect(path.with_name("bare.db"), isolation_level=None, timeout=30)
    bare.execute("PRAGMA journal_mode=WAL")
    bare.execute("PRAGMA synchronous=NORMAL")
    rows = [(cid, BODY) for cid in ids]
    for table in ("bare", "bare_same"):
        bare.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY, body TEXT) WITHOUT ROWID"
        )
        bare.executemany(f"INSERT OR IGNORE INTO {table} VALUES (?, ?)", rows)
    counter = iter(range(1 << 62))

    def update(cid: str) -> None:
        bare.execute("UPDATE bare SET body = ? WHERE id = ?", (f"{BODY} {next(counter)}", cid))

    return bare, update


def bare_sqlite_same(bare: sqlite3.Connection) -> Callable[[str], None]:
    """The UPDATE as it was measured before: the stored value again, so no page is written."""

    def update(cid: str) -> None:
        bare.execute("UPDATE bare_same SET body = ? WHERE id = ?", (BODY, cid))

    return update


# --- one process --------------------------------------------------------------------------


def server_commands(port: int, run: Callable[[], object]) -> list[str]:
    """The commands Redis received from clients while ``run()`` ran, seen through MONITOR.

    Commands a script issues (``redis.call``) are left out: they are not round trips.
    """
    marker = redis.Redis(port=port)
    watcher = redis.Redis(port=port)
    seen: list[str] = []
    with watcher.monitor() as monitor:  # type: ignore[no-untyped-call]
        marker.echo("store_cost:start")
        run()
        marker.echo("store_cost:end")
        counting = False
        while True:
            command = monitor.next_command()
            text = str(command["command"])
            if text == "ECHO store_cost:start":
                counting = True
            elif text == "ECHO store_cost:end":
                break
            elif counting and command["client_type"] != "lua":
                seen.append(text.split(" ", 1)[0].upper())
    marker.close()
    watcher.close()
    return seen


def redis_figures(port: int, args: argparse.Namespace) -> dict[str, float]:
    store = RedisStore.from_url(
        f"redis://127.0.0.1:{port}/0", connection_class=CountingConnection, prefix="bench:"
    )
    bench = Fixture(store, args.conversations)
    bare = store.client

    # Warm up: the first use of each script loads it into Redis (one extra round trip once).
    bench.reply(conversation_id(0))
    bench.reply(bench.awaiting(1)[0])

    def trips(
        call: Callable[[str], object], ids: Sequence[str], watched: Sequence[str]
    ) -> tuple[float, float, float]:
        """Round trips per send: counted on the client over ``ids``; on the server over
        ``watched`` (all commands, and EVALSHA alone)."""
        before = CountingConnection.sent
        for cid in ids:
            call(cid)
        client = (CountingConnection.sent - before) / len(ids)
        seen = server_commands(port, lambda: [call(cid) for cid in watched])
        return client, len(seen) / len(watched), seen.count("EVALSHA") / len(watched)

    reply_trips = trips(bench.reply, bench.ids(args.batch), bench.ids(args.batch))
    first_trips = trips(bench.reply, bench.awaiting(args.batch), bench.awaiting(args.batch))

    def ids() -> list[str]:
        return bench.ids(args.batch)

    samples = measure(
        {
            "bare": bare_redis(bare),
            "held": bare_redis_held(bare),
            "reply": bench.reply,
            "first": bench.reply,
            "cold": bench.cold_reply,
        },
        {
            "bare": ids,
            "held": ids,
            "reply": ids,
            "first": lambda: bench.awaiting(args.batch),
            "cold": ids,
        },
        args.repeats,
    )
    store.close()
    timed = summary(samples, "bare")
    return {
        "redis_reply_round_trips": reply_trips[0],
        "redis_first_reply_round_trips": first_trips[0],
        "redis_reply_server_calls": reply_trips[1],
        "redis_reply_server_evalsha": reply_trips[2],
        "redis_first_server_calls": first_trips[1],
        "redis_first_server_evalsha": first_trips[2],
        **{f"redis_{name}_us": seconds * 1e6 for name, (seconds, _) in timed.items()},
        **{f"redis_{name}_ratio": ratio for name, (_, ratio) in timed.items()},
    }


def sqlite_figures(directory: Path, args: argparse.Namespace) -> dict[str, float]:
    path = directory / "bench.db"
    store = SQLiteStore(path)
    bench = Fixture(store, args.conversations)
    connection, bare_update = bare_sqlite(path, bench.ids(args.conversations))

    def ids() -> list[str]:
        return bench.ids(args.batch)

    samples = measure(
        {
            "bare": bare_update,
            "same": bare_sqlite_same(connection),
            "reply": bench.reply,
            "first": bench.reply,
            "cold": bench.cold_reply,
        },
        {
            "bare": ids,
            "same": ids,
            "reply": ids,
            "first": lambda: bench.awaiting(args.batch),
            "cold": ids,
        },
        args.repeats,
    )
    connection.close()
    store.close()
    timed, same = summary(samples, "bare"), summary(samples, "same")
    return {
        **{f"sqlite_{name}_per_s": 1 / seconds for name, (seconds, _) in timed.items()},
        **{f"sqlite_{name}_ratio": ratio for name, (_, ratio) in timed.items()},
        **{f"sqlite_{name}_same_ratio": ratio for name, (_, ratio) in same.items()},
    }


# --- several processes --------------------------------------------------------------------


@dataclass
class Job:
    """What one worker process runs: its store, its share of conversations, its batches."""

    kind: str  # "redis" or "sqlite"
    where: str  # the Redis port, or the SQLite file
    worker: int
    conversations: int
    batch: int


def worker_main(job: Job, pipe: Connection) -> None:
    """One worker process: sets up its own store and bare operation, then runs what it is
    told, replying with when it started and ended (``time.perf_counter`` is system-wide)."""
    quiet_logging()
    store: Store
    if job.kind == "redis":
        store = RedisStore.from_url(f"redis://127.0.0.1:{job.where}/0", prefix="bench:")
        bench = Fixture(store, job.conversations, job.worker)
        bare = bare_redis(store.client)
        connection = None
    else:
        store = SQLiteStore(job.where)
        bench = Fixture(store, job.conversations, job.worker)
        connection, bare = bare_sqlite(Path(job.where), bench.ids(job.conversations))
    calls: dict[str, Callable[[str], object]] = {
        "bare": bare,
        "reply": bench.reply,
        "first": bench.reply,
    }
    bench.reply(bench.ids(1)[0])  # warm up
    pipe.send("ready")
    ready: dict[str, list[str]] = {}
    while (order := pipe.recv()) is not None:
        command, name = order
        if command == "prepare":
            ready[name] = bench.awaiting(job.batch) if name == "first" else bench.ids(job.batch)
            pipe.send("prepared")
            continue
        call, ids = calls[name], ready.pop(name)
        start = time.perf_counter()
        for cid in ids:
            call(cid)
        pipe.send((start, time.perf_counter()))
    if connection is not None:
        connection.close()
    store.close()


def processes_figures(kind: str, where: str, args: argparse.Namespace) -> dict[str, float]:
    """Aggregate seconds per send of ``args.processes`` workers at once, rounds interleaved."""
    context = multiprocessing.get_context("spawn")
    pipes, workers = [], []
    for worker in range(args.processes):
        ours, theirs = context.Pipe()
        job = Job(kind, where, worker + 1, args.conversations, args.batch)
        process = context.Process(target=worker_main, args=(job, theirs), daemon=True)
        process.start()
        pipes.append(ours)
        workers.append(process)
    try:
        timed = summary(run_rounds(kind, pipes, args), "bare")
        for process in workers:
            process.join(30)
    finally:
        for process in workers:
            if process.is_alive():
                process.terminate()
    return {
        **{f"{kind}_{name}_procs_s": seconds for name, (seconds, _) in timed.items()},
        **{f"{kind}_{name}_procs_ratio": ratio for name, (_, ratio) in timed.items()},
    }


def run_rounds(
    kind: str, pipes: list[Connection], args: argparse.Namespace
) -> dict[str, list[float]]:
    """Each round, every worker runs one batch of each contender at the same time."""
    for pipe in pipes:
        if pipe.recv() != "ready":
            raise SystemExit(f"a {kind} worker did not start")
    samples: dict[str, list[float]] = {"bare": [], "reply": [], "first": []}
    for _ in range(args.repeats):
        for name, values in samples.items():
            for pipe in pipes:
                pipe.send(("prepare", name))
            for pipe in pipes:
                pipe.recv()
            for pipe in pipes:
                pipe.send(("run", name))
            spans: list[Any] = [pipe.recv() for pipe in pipes]
            wall = max(end for _, end in spans) - min(start for start, _ in spans)
            values.append(wall / (args.batch * len(pipes)))
    for pipe in pipes:
        pipe.send(None)
    return samples


# --- the report ---------------------------------------------------------------------------


def report(results: dict[str, float], args: argparse.Namespace) -> None:
    procs = args.processes
    print(
        f"store cost, Flow + MemoryTransport; structlog drops info events (WARNING threshold) "
        f"in every process; medians of {args.repeats} interleaved batches of {args.batch} "
        f"sends a process"
    )
    print(
        f"Redis round trips per send: reply {results['redis_reply_round_trips']:.2f}, "
        f"first reply (record saved) {results['redis_first_reply_round_trips']:.2f}"
    )
    print(
        "Redis commands per send, as the server received them (MONITOR): "
        f"reply {results['redis_reply_server_calls']:.2f} "
        f"(EVALSHA {results['redis_reply_server_evalsha']:.2f}), "
        f"first reply {results['redis_first_server_calls']:.2f} "
        f"(EVALSHA {results['redis_first_server_evalsha']:.2f})"
    )
    many = f"{procs} processes" if procs else ""
    print(f"{'':48} {'1 process':>20}   {many:>20}")
    print(f"{'':48} {'median':>11} {'ratio':>8}   {'per send':>11} {'ratio':>8}")
    for label, name in (
        ("Redis: bare GET + SET (redis-py client)", "bare"),
        ("Redis: bare GET + SET, one held connection", "held"),
        ("Redis: reply through the flow", "reply"),
        ("Redis: first reply through the flow", "first"),
        ("Redis: reply, record not cached", "cold"),
    ):
        us, ratio = results[f"redis_{name}_us"], results[f"redis_{name}_ratio"]
        row = f"{label:48} {us:8.1f} us {ratio:7.2f}x"
        if procs and f"redis_{name}_procs_s" in results:
            row += (
                f"   {results[f'redis_{name}_procs_s'] * 1e6:8.1f} us"
                f" {results[f'redis_{name}_procs_ratio']:7.2f}x"
            )
        print(row)
    print(f"{'':48} {'per s':>11} {'ratio':>8} {'(same)':>8}   {'per s':>11} {'ratio':>8}")
    for label, name in (
        ("SQLite: bare UPDATE (autocommit), a new value", "bare"),
        ("SQLite: bare UPDATE of the same value", "same"),
        ("SQLite: replies through the flow", "reply"),
        ("SQLite: first replies through the flow", "first"),
        ("SQLite: replies, record not cached", "cold"),
    ):
        row = (
            f"{label:48} {results[f'sqlite_{name}_per_s']:11,.0f} "
            f"{results[f'sqlite_{name}_ratio']:7.2f}x {results[f'sqlite_{name}_same_ratio']:7.2f}x"
        )
        if procs and f"sqlite_{name}_procs_s" in results:
            row += (
                f"   {1 / results[f'sqlite_{name}_procs_s']:11,.0f}"
                f" {results[f'sqlite_{name}_procs_ratio']:7.2f}x"
            )
        print(row)
    print(
        "ratio: median over rounds of each batch against the bare batch of the same round; "
        "(same): against the UPDATE of the same value, which writes no page"
    )


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=200, help="sends per timed batch")
    parser.add_argument("--repeats", type=int, default=15, help="timed batches per contender")
    parser.add_argument(
        "--processes", type=int, default=4, help="worker processes at once (0: skip)"
    )
    args = parser.parse_args(argv)
    quiet_logging()
    with tempfile.TemporaryDirectory(prefix="store_cost_") as folder:
        directory = Path(folder)
        with redis_server(directory) as port:
            results = redis_figures(port, args)
            if args.processes:
                results |= processes_figures("redis", str(port), args)
        results |= sqlite_figures(directory, args)
        if args.processes:
            results |= processes_figures("sqlite", str(directory / "bench.db"), args)
    report(results, args)
    return results


if __name__ == "__main__":
    main()
