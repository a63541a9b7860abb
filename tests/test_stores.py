"""The store contract, held by every store through its sync and its async methods alike.

Each test runs over MemoryStore, SQLiteStore (a real file) and RedisStore (a real
redis-server), each as ``sync`` and ``async``, under the same test names. Tests about what
outlives a store object (the JSON on disk or in Redis, reopening, a lapsed lock) run over the
durable stores only.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from payloads import greeting, init_response, quick_replies
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis_server import PASSWORD, RedisServer
from structlog.testing import capture_logs

from assistant_flow import (
    AsyncFlow,
    AsyncRedisStore,
    AsyncSQLiteStore,
    ConflictError,
    ConversationRecord,
    CorruptRecordError,
    Flow,
    InvalidInputError,
    LockLostError,
    LockTimeoutError,
    MemoryStore,
    MemoryTransport,
    RedisStore,
    SQLiteStore,
    Store,
    StoreUnavailableError,
)

BACKENDS = ["memory", "sqlite", "redis"]
DURABLE = ["sqlite", "redis"]


@dataclass
class StoreView:
    """A store's primitives, awaited the same way for its sync and its async methods."""

    store: Any
    mode: str
    load: Callable[[str], Awaitable[ConversationRecord | None]]
    save: Callable[[ConversationRecord, int], Awaitable[None]]
    delete: Callable[[str], Awaitable[None]]
    lock: Callable[[str], AbstractAsyncContextManager[None]]
    close: Callable[[], Awaitable[None]]


def view_of(store: Any, mode: str) -> StoreView:
    if mode == "async":
        return StoreView(
            store,
            mode,
            store.aload,
            lambda record, expected: store.asave(record, expected_version=expected),
            store.adelete,
            store.alock,
            store.aclose,
        )

    async def load(conversation_id: str) -> ConversationRecord | None:
        loaded: ConversationRecord | None = store.load(conversation_id)
        return loaded

    async def save(record: ConversationRecord, expected: int) -> None:
        store.save(record, expected_version=expected)

    async def delete(conversation_id: str) -> None:
        store.delete(conversation_id)

    @asynccontextmanager
    async def lock(conversation_id: str) -> AsyncIterator[None]:
        with store.lock(conversation_id):
            yield

    async def close() -> None:
        store.close()

    return StoreView(store, mode, load, save, delete, lock, close)


@dataclass
class Backend:
    """Opens stores of one kind that share their data (except MemoryStore, which cannot)."""

    kind: str
    mode: str
    tmp_path: Path
    server: RedisServer | None
    prefix: str

    def open(self, **options: Any) -> StoreView:
        is_async = self.mode == "async"
        store: Any
        if self.kind == "memory":
            store = MemoryStore(**options)
        elif self.kind == "sqlite":
            cls = AsyncSQLiteStore if is_async else SQLiteStore
            store = cls(self.tmp_path / "conversations.db", **options)
        else:
            assert self.server is not None
            redis_cls = AsyncRedisStore if is_async else RedisStore
            store = redis_cls.from_url(self.server.url, prefix=self.prefix, **options)
        return view_of(store, self.mode)

    # Raw access to what a durable store wrote, bypassing the store.
    def raw(self, conversation_id: str) -> str | None:
        if self.kind == "sqlite":
            with closing_sqlite(self.tmp_path / "conversations.db") as db:
                row = db.execute(
                    "SELECT record FROM assistant_flow_records WHERE conversation_id = ?",
                    (conversation_id,),
                ).fetchone()
            return None if row is None else str(row[0])
        assert self.server is not None
        client = self.server.client()
        try:
            value = client.get(f"{self.prefix}{{{conversation_id}}}")
        finally:
            client.close()
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    def write_raw(self, conversation_id: str, text: str) -> None:
        if self.kind == "sqlite":
            with closing_sqlite(self.tmp_path / "conversations.db") as db:
                db.execute(
                    "UPDATE assistant_flow_records SET record = ? WHERE conversation_id = ?",
                    (text, conversation_id),
                )
            return
        assert self.server is not None
        client = self.server.client()
        try:
            client.set(f"{self.prefix}{{{conversation_id}}}", text)
        finally:
            client.close()


@contextmanager
def closing_sqlite(path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        yield db
    finally:
        db.close()


def make_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    kind, mode = request.param
    server = request.getfixturevalue("redis_server") if kind == "redis" else None
    return Backend(kind, mode, tmp_path, server, f"test:{uuid.uuid4().hex}:")


def ids(param: tuple[str, str]) -> str:
    return "-".join(param)


@pytest.fixture(params=[(kind, mode) for kind in BACKENDS for mode in ("sync", "async")], ids=ids)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend(request, tmp_path)


@pytest.fixture(params=[(kind, mode) for kind in DURABLE for mode in ("sync", "async")], ids=ids)
def durable(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend(request, tmp_path)


@pytest.fixture
async def view(backend: Backend) -> AsyncIterator[StoreView]:
    opened = backend.open()
    yield opened
    await opened.close()


def stop_renewing(opened: StoreView) -> None:
    """Stop a durable store renewing its leases, as if its process stalled or died."""
    store = opened.store
    renewer = store._sync._renewer if isinstance(store, AsyncSQLiteStore) else store._renewer
    renewer._held.leases.clear()


def record(version: int, state: str = "init") -> ConversationRecord:
    return ConversationRecord("conv_1", machine_state=state, version=version)


# --- load, save, conflicts, delete ------------------------------------------------------------


async def test_an_unknown_conversation_loads_as_none(view: StoreView) -> None:
    assert await view.load("conv_1") is None


async def test_a_saved_record_loads_back(view: StoreView) -> None:
    await view.save(record(1), 0)
    await view.save(record(2, "ended"), 1)
    assert await view.load("conv_1") == record(2, "ended")


@pytest.mark.parametrize("expected", [0, 2])
async def test_a_save_expecting_another_version_is_refused(view: StoreView, expected: int) -> None:
    await view.save(record(1), 0)
    with pytest.raises(ConflictError) as caught:
        await view.save(record(9, "ended"), expected)
    assert (caught.value.expected, caught.value.found) == (expected, 1)
    assert await view.load("conv_1") == record(1)


async def test_a_first_save_must_expect_no_record(view: StoreView) -> None:
    with pytest.raises(ConflictError):
        await view.save(record(1), 1)
    assert await view.load("conv_1") is None


async def test_delete_forgets_and_tolerates_unknown_ids(view: StoreView) -> None:
    await view.save(record(1), 0)
    await view.delete("conv_1")
    await view.delete("conv_1")
    assert await view.load("conv_1") is None
    await view.save(record(1), 0)  # a deleted conversation starts again from version 0
    assert await view.load("conv_1") == record(1)


# --- locks ------------------------------------------------------------------------------------


async def test_a_held_lock_excludes_others_until_released(backend: Backend) -> None:
    # A durable store's lock lapses after the holder's lock_timeout, so the holder's must
    # outlast the waiter's; a MemoryStore's lock only times out its waiters.
    shared = backend.kind == "memory"
    holder = backend.open(lock_timeout=0.1 if shared else 5)
    waiter = holder if shared else backend.open(lock_timeout=0.1)
    try:
        async with holder.lock("conv_1"):
            with pytest.raises(LockTimeoutError, match="conv_1"):
                async with waiter.lock("conv_1"):
                    pytest.fail("the lock was taken twice")
            async with waiter.lock("conv_2"):  # other conversations do not wait
                pass
        async with waiter.lock("conv_1"):  # free again once released
            pass
    finally:
        await holder.close()
        await waiter.close()


async def test_the_lock_timeout_must_be_positive(backend: Backend) -> None:
    with pytest.raises(ValueError, match="lock_timeout"):
        backend.open(lock_timeout=0)
    with pytest.raises(ValueError, match="ttl"):
        backend.open(ttl=-1)


async def test_a_lock_abandoned_by_its_holder_lapses_after_the_lock_timeout(
    durable: Backend,
) -> None:
    """What a crashed worker leaves behind: a lock nobody will release."""
    crashed = durable.open(lock_timeout=0.6)
    abandoned = crashed.lock("conv_1")
    await abandoned.__aenter__()  # and never __aexit__: the holder "died"
    await crashed.close()  # and with it the renewal of its lease
    impatient = durable.open(lock_timeout=0.05)
    patient = durable.open(lock_timeout=5)
    try:
        with pytest.raises(LockTimeoutError):
            async with impatient.lock("conv_1"):
                pass
        async with patient.lock("conv_1"):  # the lease lapses; the next holder gets in
            pass
    finally:
        for opened in (crashed, impatient, patient):
            await opened.close()


async def test_only_the_owner_releases_a_lock(durable: Backend) -> None:
    """A holder whose lease lapsed does not release the next holder's lock on its way out."""
    slow = durable.open(lock_timeout=0.2)
    other = durable.open(lock_timeout=5)
    probe = durable.open(lock_timeout=0.05)
    try:
        async with slow.lock("conv_1"):
            stop_renewing(slow)  # as if slow's whole process stalled
            await asyncio.sleep(0.3)  # slow's lease lapses meanwhile
            async with other.lock("conv_1"):
                pass  # (nested: `other` got in after the lapse)
            lock = other.lock("conv_1")
            await lock.__aenter__()
        # slow has now left its block; other's second lock must still hold
        with pytest.raises(LockTimeoutError):
            async with probe.lock("conv_1"):
                pass
        await lock.__aexit__(None, None, None)
    finally:
        for opened in (slow, other, probe):
            await opened.close()


# --- time to live -----------------------------------------------------------------------------


async def test_an_idle_conversation_expires_after_the_ttl(backend: Backend) -> None:
    opened = backend.open(ttl=0.4, lock_timeout=0.4)
    try:
        await opened.save(record(1), 0)
        assert await opened.load("conv_1") == record(1)
        await asyncio.sleep(0.6)
        assert await opened.load("conv_1") is None
        await opened.save(record(1), 0)  # an expired conversation starts again from version 0
        assert await opened.load("conv_1") == record(1)
    finally:
        await opened.close()


async def test_without_a_ttl_conversations_stay(view: StoreView) -> None:
    await view.save(record(1), 0)
    await asyncio.sleep(0.3)
    assert await view.load("conv_1") == record(1)


# --- what is stored ---------------------------------------------------------------------------


async def test_records_are_stored_as_json_not_pickle(durable: Backend) -> None:
    opened = durable.open()
    saved = ConversationRecord(
        "conv_1",
        machine_state="in_assistant.conversing",
        version=3,
    )
    try:
        await opened.save(saved, 0)
    finally:
        await opened.close()
    raw = durable.raw("conv_1")
    assert raw is not None
    assert json.loads(raw) == saved.to_dict()  # pickle bytes would not parse as JSON


async def test_a_corrupt_stored_record_raises_corrupt_record_error(durable: Backend) -> None:
    opened = durable.open()
    try:
        await opened.save(record(1), 0)
        durable.write_raw("conv_1", "\x80not json")
        with pytest.raises(CorruptRecordError):
            await opened.load("conv_1")
    finally:
        await opened.close()


async def test_close_is_idempotent(view: StoreView) -> None:
    await view.save(record(1), 0)
    await view.close()
    await view.close()


async def test_a_reopened_store_sees_what_was_saved(durable: Backend) -> None:
    first = durable.open()
    await first.save(record(1), 0)
    await first.close()
    second = durable.open()
    try:
        assert await second.load("conv_1") == record(1)
        await second.save(record(2, "ended"), 1)
    finally:
        await second.close()


async def test_reprs_and_errors_never_show_the_redis_password(redis_server: RedisServer) -> None:
    for store in (
        RedisStore.from_url(redis_server.url),
        AsyncRedisStore.from_url(redis_server.url),
    ):
        assert PASSWORD not in repr(store)
        assert f"127.0.0.1:{redis_server.port}" in repr(store)
    holder = RedisStore.from_url(redis_server.url, prefix="pw-test:")
    waiter = RedisStore.from_url(redis_server.url, lock_timeout=0.05, prefix="pw-test:")
    with holder.lock("conv_1"), pytest.raises(LockTimeoutError) as caught, waiter.lock("conv_1"):
        pass
    assert PASSWORD not in str(caught.value)
    holder.close()
    waiter.close()


# --- a whole flow on each store ---------------------------------------------------------------

BUTTONS = init_response(greeting(quick_replies("Pick one", ("Billing", "billing"), ("Tech", "t"))))


async def test_a_flow_runs_a_dialog_on_the_store(backend: Backend) -> None:
    opened = backend.open()
    transport = MemoryTransport()
    try:
        if backend.mode == "sync":
            flow = Flow(transport, opened.store)
            conv = flow.conversation("conv_1")
            conv.start_assistant(BUTTONS)
            conv.send_message("Hi")
            conv.choose("Billing")
            conv.send_message("Thanks")
            conv.end_assistant()
            conv.send_message("Bye")
            final = conv.snapshot()
        else:
            aflow = AsyncFlow(transport, opened.store)
            aconv = aflow.conversation("conv_1")
            await aconv.start_assistant(BUTTONS)
            await aconv.send_message("Hi")
            await aconv.choose("Billing")
            await aconv.send_message("Thanks")
            await aconv.end_assistant()
            await aconv.send_message("Bye")
            final = await aconv.snapshot()
    finally:
        await opened.close()
    sent = transport.sent
    assert [m.get("body") for m in sent] == ["Hi", "Billing", "Thanks", "Bye"]
    assert ["initAssistantPayload" in m for m in sent] == [True, False, False, False]
    assert sent[1]["payload"] == "billing"
    assert [m.get("isInAssistantMode") for m in sent] == [True, True, True, False]
    # One version a step that changes the record: start, four messages, the end.
    assert (final.state, final.version) == ("ended", 6)


def test_sync_stores_refuse_async_flows_by_name(tmp_path: Path) -> None:
    store: Store = SQLiteStore(tmp_path / "c.db")
    with pytest.raises(TypeError, match="AsyncSQLiteStore"):
        AsyncFlow(MemoryTransport(), store)  # type: ignore[arg-type]
    store.close()


def test_the_redis_client_is_left_open_when_passed_in(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    store = RedisStore(client, prefix=f"test:{uuid.uuid4().hex}:")
    store.save(record(1), expected_version=0)
    store.close()
    assert client.ping()
    client.close()


# --- sessions: what a flow step relies on -----------------------------------------------------


@asynccontextmanager
async def session(opened: StoreView, conversation_id: str) -> AsyncIterator[Any]:
    """A flow step's session, entered the same way for sync and async stores."""
    if opened.mode == "async":
        async with opened.store.asession(conversation_id) as held:
            yield held
    else:
        with opened.store.session(conversation_id) as held:
            yield held


async def test_a_session_that_raises_saves_nothing_and_frees_the_lock(backend: Backend) -> None:
    opened = backend.open(lock_timeout=0.5)
    probe = opened if backend.kind == "memory" else backend.open(lock_timeout=0.05)
    try:
        await opened.save(record(1), 0)

        async def failing_step() -> None:
            async with session(opened, "conv_1") as held:
                assert held.record == record(1)
                held.save(record(2, "ended"))
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await failing_step()
        assert await opened.load("conv_1") == record(1)
        async with probe.lock("conv_1"):  # free at once, not after the lease
            pass
    finally:
        await opened.close()
        if probe is not opened:
            await probe.close()


async def test_a_session_whose_save_conflicts_frees_the_lock(backend: Backend) -> None:
    opened = backend.open(lock_timeout=0.5)
    probe = opened if backend.kind == "memory" else backend.open(lock_timeout=0.05)
    try:
        await opened.save(record(1), 0)

        async def overtaken_step() -> None:
            async with session(opened, "conv_1") as held:
                await opened.save(record(2), 1)  # behind the session's back
                held.save(record(2, "ended"))

        with pytest.raises(ConflictError):
            await overtaken_step()
        assert await opened.load("conv_1") == record(2)
        async with probe.lock("conv_1"):
            pass
    finally:
        await opened.close()
        if probe is not opened:
            await probe.close()


async def test_a_session_that_stages_nothing_unlocks_and_restarts_the_ttl(
    backend: Backend,
) -> None:
    opened = backend.open(lock_timeout=0.5, ttl=0.5)
    probe = opened if backend.kind == "memory" else backend.open(lock_timeout=0.05)
    try:
        await opened.save(record(1), 0)
        for _ in range(3):  # 0.9 s of steps that change nothing, each restarting the ttl
            await asyncio.sleep(0.3)
            async with session(opened, "conv_1") as held:
                assert held.record == record(1)
        assert await opened.load("conv_1") == record(1)
        async with probe.lock("conv_1"):
            pass
        await asyncio.sleep(0.75)  # idle now: it expires
        assert await opened.load("conv_1") is None
    finally:
        await opened.close()
        if probe is not opened:
            await probe.close()


@pytest.mark.parametrize(
    ("kind", "mode"), [("memory", "sync"), ("sqlite", "sync"), ("sqlite", "async")]
)
async def test_purge_expired_reclaims_expired_records_only(
    kind: str, mode: str, tmp_path: Path
) -> None:
    """Expired records already load as missing; purging reclaims their space (Redis needs not)."""
    backend = Backend(kind, mode, tmp_path, None, "")
    opened = backend.open(lock_timeout=0.2, ttl=0.2)
    store = opened.store
    try:
        await opened.save(record(1), 0)
        await asyncio.sleep(0.3)
        await opened.save(ConversationRecord("conv_2", version=1), 0)
        purged = await store.apurge_expired() if mode == "async" else store.purge_expired()
        assert purged == 1
        assert await opened.load("conv_2") == ConversationRecord("conv_2", version=1)
        if kind == "sqlite":
            assert durable_count(backend, "assistant_flow_records") == 1
    finally:
        await opened.close()


def durable_count(backend: Backend, table: str) -> int:
    with closing_sqlite(backend.tmp_path / "conversations.db") as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


async def test_options_no_store_can_honour_are_refused_naming_the_field(
    backend: Backend,
) -> None:
    for options, field in [
        ({"lock_timeout": float("inf")}, "lock_timeout"),
        ({"lock_timeout": float("nan")}, "lock_timeout"),
        ({"ttl": float("inf")}, "ttl"),
        ({"lock_timeout": 10.0, "ttl": 5.0}, "ttl"),  # would expire mid-step
    ]:
        with pytest.raises(InvalidInputError) as caught:
            backend.open(**options)
        assert caught.value.field == field
        assert f"`{field}`" in str(caught.value)
    if backend.kind == "sqlite":
        with pytest.raises(InvalidInputError, match="busy_timeout") as caught:
            backend.open(busy_timeout=0)
        assert caught.value.field == "busy_timeout"


def test_a_record_version_beyond_2_53_is_refused() -> None:
    with pytest.raises(CorruptRecordError, match="version"):
        ConversationRecord("conv_1", version=2**53)
    with pytest.raises(CorruptRecordError, match="version"):
        ConversationRecord.from_json(
            '{"format":1,"conversationId":"conv_1","state":"init","version":9007199254740993}'
        )


async def test_redis_refuses_to_compare_a_stored_version_beyond_2_53(
    redis_server: RedisServer,
) -> None:
    """Lua's numbers are doubles: 2**53 + 1 would compare equal to 2**53."""
    prefix = f"test:{uuid.uuid4().hex}:"
    store = RedisStore.from_url(redis_server.url, prefix=prefix)
    raw = '{"format":1,"conversationId":"conv_1","state":"init","version":9007199254740992}'
    client = redis_server.client()
    try:
        client.set(f"{prefix}{{conv_1}}", raw)
        with pytest.raises(CorruptRecordError):
            store.save(ConversationRecord("conv_1", version=2**53 - 1), expected_version=2**53 - 2)
        assert client.get(f"{prefix}{{conv_1}}") == raw.encode()
    finally:
        client.close()
        store.close()


# --- leases: renewed while a step runs, fenced on save ----------------------------------------


class SlowTransport(MemoryTransport):
    """Delivers after ``delay`` seconds, like a slow Kustomer."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def send(self, message: Any) -> Any:
        time.sleep(self.delay)
        return super().send(message)

    async def asend(self, message: Any) -> Any:
        await asyncio.sleep(self.delay)
        return super().send(message)


async def run_reply(opened: StoreView, transport: MemoryTransport, body: str) -> None:
    if opened.mode == "async":
        await AsyncFlow(transport, opened.store).conversation("conv_1").send_message(body)
    else:
        flow = Flow(transport, opened.store)
        await asyncio.to_thread(flow.conversation("conv_1").send_message, body)


async def test_a_send_that_outlasts_the_lock_timeout_keeps_the_lock(durable: Backend) -> None:
    """The lease is renewed while the send runs: the next message waits, nothing is sent twice."""
    setup = durable.open()
    slow_store = durable.open(lock_timeout=0.3)  # A's lease: much shorter than its send
    patient = durable.open(lock_timeout=5)
    slow, quick = SlowTransport(0.9), MemoryTransport()
    try:
        if durable.mode == "async":
            await (
                AsyncFlow(MemoryTransport(), setup.store)
                .conversation("conv_1")
                .start_assistant(init_response())
            )
        else:
            Flow(MemoryTransport(), setup.store).conversation("conv_1").start_assistant(
                init_response()
            )

        async def second() -> None:
            await asyncio.sleep(0.5)  # A's first lease has lapsed by now, if not renewed
            await run_reply(patient, quick, "from B")

        await asyncio.gather(run_reply(slow_store, slow, "from A"), second())
        final = await setup.load("conv_1")
    finally:
        for opened in (setup, slow_store, patient):
            await opened.close()
    assert ["initAssistantPayload" in m for m in slow.sent] == [True]
    assert ["initAssistantPayload" in m for m in quick.sent] == [False]
    assert final is not None
    # start_assistant, A's reply and B's: B waited and acted on the record A saved.
    assert (final.state, final.version) == ("in_assistant", 3)


async def test_a_holder_that_lost_its_lease_cannot_save(durable: Backend) -> None:
    stalled = durable.open(lock_timeout=0.2)
    other = durable.open(lock_timeout=5)
    try:
        await stalled.save(record(1), 0)

        async def stalled_step() -> None:
            async with session(stalled, "conv_1") as held:
                stop_renewing(stalled)  # its process stalls past the lease
                await asyncio.sleep(0.3)
                async with session(other, "conv_1") as taken:
                    taken.save(record(2, "ended"))
                held.save(record(2))

        with pytest.raises(LockLostError):
            await stalled_step()
        assert await other.load("conv_1") == record(2, "ended")
    finally:
        await stalled.close()
        await other.close()


@pytest.mark.parametrize("kind", DURABLE)
async def test_cancelling_a_step_while_it_takes_the_lock_leaves_it_free(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue("redis_server") if kind == "redis" else None
    backend = Backend(kind, "async", tmp_path, server, f"test:{uuid.uuid4().hex}:")
    leaked = []
    for attempt in range(12):
        conversation_id = f"conv_{attempt}"
        holder = backend.open(lock_timeout=5)

        async def step(opened: StoreView = holder, cid: str = conversation_id) -> None:
            async with opened.store.asession(cid):
                await asyncio.sleep(10)

        task = asyncio.create_task(step())
        for _ in range(attempt % 4):  # cancel at different points of taking the lock
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        probe = backend.open(lock_timeout=0.5)  # far less than the holder's 5 s lease
        try:
            async with probe.lock(conversation_id):
                pass
        except LockTimeoutError:
            leaked.append(conversation_id)
        finally:
            await probe.close()
            await holder.close()
    assert leaked == []


async def test_redis_scripts_repeated_by_a_retry_report_the_same_success(
    redis_server: RedisServer,
) -> None:
    """redis-py re-sends a command whose connection dropped; the scripts must be idempotent."""
    store = RedisStore.from_url(redis_server.url, prefix=f"test:{uuid.uuid4().hex}:")
    keys, token = store._keys("conv_1"), "token-1"
    try:
        store.save(record(1), expected_version=0)
        first = store._lock_and_load(keys=keys, args=[token, 5000])
        again = store._lock_and_load(keys=keys, args=[token, 5000])
        assert first[0] == again[0] == 1
        assert store._lock_and_load(keys=keys, args=["someone-else", 5000])[0] == 0
        args = store._save_args(token, 1, record(2, "ended"))
        assert list(store._save_and_unlock(keys=keys, args=args)) == [1, 1]
        assert store._save_and_unlock(keys=keys, args=args)[0] == 1  # already saved: done
        assert store.load("conv_1") == record(2, "ended")
        with store.lock("conv_1"):  # and the lock was released
            pass
    finally:
        store.close()


async def test_a_redis_timeout_after_sending_says_the_outcome_is_unknown(
    redis_server: RedisServer,
) -> None:
    busy = "local t0 = redis.call('TIME') while true do local t = redis.call('TIME') if (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) > tonumber(ARGV[1]) then break end end return 1"  # noqa: E501
    prefix = f"test:{uuid.uuid4().hex}:"
    store = RedisStore.from_url(
        redis_server.url, prefix=prefix, socket_timeout=0.1, retry=Retry(NoBackoff(), 0)
    )
    store.client.ping()
    blocker = redis_server.client()
    thread = threading.Thread(target=blocker.eval, args=(busy, 0, 500_000))
    try:
        thread.start()
        time.sleep(0.1)  # Redis is now busy for 0.5 s
        with pytest.raises(StoreUnavailableError, match="outcome is unknown"):
            store.save(record(1), expected_version=0)
        thread.join()
        store.save(record(1), expected_version=0)  # repeating is safe, whether or not it ran
        assert store.load("conv_1") == record(1)
    finally:
        thread.join()
        blocker.close()
        store.close()


async def test_a_lease_taken_from_its_holder_is_reported_and_no_longer_renewed(
    durable: Backend,
) -> None:
    opened = durable.open(lock_timeout=0.3)
    try:
        with capture_logs() as logs:
            async with session(opened, "conv_1"):
                steal_lock(durable, "conv_1")  # as after a lapse and another worker's take
                for _ in range(100):  # the renewer runs every 0.1 s
                    if any(log["event"] == "lock_lost" for log in logs):
                        break
                    await asyncio.sleep(0.02)
        lost = [log for log in logs if log["event"] == "lock_lost"]
        assert [log["conversation_id"] for log in lost] == ["conv_1"]
    finally:
        await opened.close()


def steal_lock(backend: Backend, conversation_id: str) -> None:
    if backend.kind == "sqlite":
        with closing_sqlite(backend.tmp_path / "conversations.db") as db:
            db.execute(
                "UPDATE assistant_flow_locks SET owner = 'thief' WHERE conversation_id = ?",
                (conversation_id,),
            )
        return
    assert backend.server is not None
    client = backend.server.client()
    try:
        client.set(f"{backend.prefix}{{{conversation_id}}}:lock", "thief", px=5000)
    finally:
        client.close()


async def test_sqlite_stores_count_live_conversations_without_blocking_the_loop(
    tmp_path: Path,
) -> None:
    sync_store = SQLiteStore(tmp_path / "c.db")
    async_store = AsyncSQLiteStore(tmp_path / "c.db")
    try:
        sync_store.save(record(1), expected_version=0)
        await async_store.asave(ConversationRecord("conv_2", version=1), expected_version=0)
        assert len(sync_store) == sync_store.count() == 2
        assert await async_store.acount() == 2
        assert not hasattr(async_store, "__len__")  # a count on the loop would block it
    finally:
        sync_store.close()
        await async_store.aclose()


async def test_cancelling_a_step_while_its_save_waits_for_the_sqlite_thread_frees_the_lock(
    tmp_path: Path,
) -> None:
    # The store's one worker thread is busy when the step saves; the step is cancelled
    # while its save-and-release waits in the queue. The lock must not stay held (and
    # renewed) forever.
    path = tmp_path / "c.db"
    store = AsyncSQLiteStore(path, lock_timeout=5)
    probe = SQLiteStore(path, lock_timeout=0.5)  # far less than the holder's 5 s lease
    busy = threading.Event()
    saving = asyncio.Event()

    async def step() -> None:
        async with store.asession("conv_1") as session:
            session.save(record(1))
            store._executor.submit(busy.wait, 10)  # another conversation's statement
            saving.set()

    task = asyncio.create_task(step())
    try:
        await asyncio.wait_for(saving.wait(), 10)  # the step now awaits its queued save
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        busy.set()
        await store._run(lambda: None)  # what the step queued before this has run
        with probe.lock("conv_1"):
            pass
    finally:
        busy.set()
        probe.close()
        await store.aclose()


def test_a_sqlite_lock_attempt_cancelled_as_asyncio_run_ends_leaves_the_lock_free(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.db"
    store = AsyncSQLiteStore(path, lock_timeout=5)
    probe = SQLiteStore(path, lock_timeout=0.5)  # far less than the holder's 5 s lease
    busy = threading.Event()

    async def main() -> None:
        store._executor.submit(busy.wait, 10)  # the store's one thread is busy

        async def step() -> None:
            async with store.asession("conv_1"):
                pass

        asyncio.create_task(step())  # noqa: RUF006 - left to asyncio.run to cancel
        for _ in range(3):
            await asyncio.sleep(0)  # the step now waits for its lock attempt
        # main returns: asyncio.run cancels the step, then closes the loop

    try:
        asyncio.run(main())
        busy.set()
        for _ in range(2):  # the attempt, then any release it queued, have run
            store._executor.submit(lambda: None).result(10)
        with probe.lock("conv_1"):
            pass
    finally:
        busy.set()
        probe.close()
        asyncio.run(store.aclose())


def _slow_step_in_a_child(store: RedisStore, conversation_id: str) -> None:
    """Run in a forked child: a step longer than the lease, which the renewer must keep."""
    try:
        with store.session(conversation_id) as session:
            time.sleep(1.5)  # 2.5 lease lengths
            session.save(record(1))
    except LockLostError:
        os._exit(3)
    os._exit(0)


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # Python 3.12+ on fork
def test_a_store_used_before_a_fork_renews_leases_in_the_child(redis_server: RedisServer) -> None:
    store = RedisStore.from_url(
        redis_server.url, prefix=f"test:{uuid.uuid4().hex}:", lock_timeout=0.6
    )
    try:
        with store.session("conv_0"):  # the parent's renewer thread starts
            pass
        child = multiprocessing.get_context("fork").Process(
            target=_slow_step_in_a_child, args=(store, "conv_1")
        )
        child.start()
        child.join(30)
        assert child.exitcode == 0  # 3: the child lost its lease, as nothing renewed it
        assert store.load("conv_1") == record(1)
    finally:
        store.close()


async def test_a_step_on_a_closed_store_raises_saying_so_and_sends_nothing(
    durable: Backend,
) -> None:
    # A closed store renews no lease: a step on it would lose its lock unnoticed.
    opened = durable.open()
    await opened.close()
    transport = MemoryTransport()
    with pytest.raises(StoreUnavailableError) as raised:
        await run_reply(opened, transport, "Hi")
    assert type(opened.store).__name__ in str(raised.value)
    assert "closed" in str(raised.value)
    assert transport.sent == []
    with pytest.raises(StoreUnavailableError, match="closed"):
        await opened.load("conv_1")


def test_a_redis_store_on_a_client_left_open_refuses_steps_once_closed(
    redis_server: RedisServer,
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    store = RedisStore(client, prefix=f"test:{uuid.uuid4().hex}:")
    try:
        with store.session("conv_1"):
            pass
        store.close()
        with (
            pytest.raises(StoreUnavailableError, match=r"RedisStore .* was closed"),
            store.session("conv_1"),
        ):
            pass
        assert client.ping()  # the caller's client itself still works
    finally:
        client.close()
