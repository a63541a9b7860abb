"""Store faults: a StoreError subclass with a clear message, nothing sent when loading failed,
nothing half-written. Against a real redis-server (stopped and restarted by the test) and a
real SQLite file (locked by another connection, or read-only).
"""

from __future__ import annotations

import sqlite3
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from payloads import init_response
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
    LockLostError,
    MemoryStore,
    MemoryTransport,
    RedisStore,
    SendMessageOptions,
    SentMessage,
    SQLiteStore,
    StoreError,
    StoreUnavailableError,
    TransportError,
)

# Fail fast when Redis is down instead of redis-py's default ten retries with backoff.
FAST: dict[str, Any] = {
    "retry": Retry(NoBackoff(), 1),
    "socket_connect_timeout": 2,
    "socket_timeout": 2,
}


class Driver:
    """Runs one flow call the same way for Flow (sync) and AsyncFlow."""

    def __init__(self, mode: str, transport: MemoryTransport, store: Any) -> None:
        self.mode = mode
        self.store = store
        self.flow: Flow | AsyncFlow = (
            Flow(transport, store) if mode == "sync" else AsyncFlow(transport, store)
        )

    async def call(self, method: str, *args: Any) -> Any:
        result = getattr(self.flow.conversation("conv_1"), method)(*args)
        return await result if isinstance(result, Awaitable) else result

    async def close(self) -> None:
        if self.mode == "sync":
            self.store.close()
        else:
            await self.store.aclose()


def redis_store(mode: str, server: RedisServer, **options: Any) -> Any:
    cls = RedisStore if mode == "sync" else AsyncRedisStore
    return cls.from_url(server.url, **FAST, **options)


def sqlite_store(mode: str, path: Path | str, **options: Any) -> Any:
    cls = SQLiteStore if mode == "sync" else AsyncSQLiteStore
    return cls(path, **options)


def chain_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_redis_down_raises_store_unavailable_and_sends_nothing(
    mode: str, own_redis_server: RedisServer
) -> None:
    transport = MemoryTransport()
    driver = Driver(mode, transport, redis_store(mode, own_redis_server))
    await driver.call("start_assistant", init_response())
    own_redis_server.stop()
    with pytest.raises(StoreUnavailableError, match="unreachable") as caught:
        await driver.call("send_message", "Hi")
    assert transport.sent == []
    assert f"127.0.0.1:{own_redis_server.port}" in str(caught.value)
    assert PASSWORD not in chain_text(caught.value)
    assert caught.value.__cause__ is not None

    # Back up (empty: the test server keeps nothing on disk): the same store works again,
    # reconnecting and reloading its scripts by itself.
    own_redis_server.start()
    await driver.call("send_message", "Hi again")
    assert [m["body"] for m in transport.sent] == ["Hi again"]
    await driver.close()


async def test_redis_restarted_during_a_send_refuses_the_save_whole(
    mode: str, own_redis_server: RedisServer
) -> None:
    class RestartingTransport(MemoryTransport):
        def send(self, message: SendMessageOptions) -> SentMessage:
            own_redis_server.stop()
            own_redis_server.start()
            return super().send(message)

    transport = RestartingTransport()
    driver = Driver(mode, transport, redis_store(mode, own_redis_server))
    await driver.call("start_assistant", init_response())
    with pytest.raises(StoreError) as caught:
        # Redis lost the lock and every record while the message went out: the save finds
        # the lock gone and refuses, rather than write over the gap.
        await driver.call("send_message", "Hi")
    assert isinstance(caught.value, LockLostError | ConflictError | StoreUnavailableError)
    assert len(transport.sent) == 1
    # The caller learns the message was delivered although its state was not saved.
    assert caught.value.sent is not None
    assert caught.value.sent.message_id == "msg_1"
    assert "msg_1" in chain_text(caught.value)  # the note says so in the traceback too
    client = own_redis_server.client()
    assert client.keys("*") == []  # nothing half-written
    client.close()
    await driver.close()


async def test_a_sqlite_file_locked_too_long_raises_store_unavailable(
    mode: str, tmp_path: Path
) -> None:
    path = tmp_path / "conversations.db"
    transport = MemoryTransport()
    driver = Driver(mode, transport, sqlite_store(mode, path, busy_timeout=0.1))
    await driver.call("start_assistant", init_response())
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another program holds the file's write lock
    try:
        with pytest.raises(StoreUnavailableError, match="locked") as caught:
            await driver.call("send_message", "Hi")
        assert str(path) in str(caught.value)
        assert transport.sent == []
    finally:
        other.execute("ROLLBACK")
        other.close()
    await driver.call("send_message", "Hi")  # and once the other program lets go
    assert [m["body"] for m in transport.sent] == ["Hi"]
    assert "initAssistantPayload" in transport.sent[0]
    await driver.close()


async def test_a_read_only_sqlite_file_raises_store_unavailable(mode: str, tmp_path: Path) -> None:
    path = tmp_path / "conversations.db"
    transport = MemoryTransport()
    store = sqlite_store(mode, path)
    driver = Driver(mode, transport, store)
    await driver.call("start_assistant", init_response())
    # File modes do not stop root (the test user in CI), so make the connection read-only.
    sync_store = store if mode == "sync" else store._sync
    sync_store._connection.execute("PRAGMA query_only = ON")
    with pytest.raises(StoreUnavailableError, match="read-only"):
        await driver.call("send_message", "Hi")
    assert transport.sent == []
    await driver.close()
    reopened = SQLiteStore(path)
    record = reopened.load("conv_1")
    assert record is not None
    assert record.awaiting_first_reply  # nothing half-written: still before the first reply
    reopened.close()


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_a_corrupt_record_sends_nothing_and_frees_the_lock(
    mode: str, kind: str, tmp_path: Path, redis_server: RedisServer
) -> None:
    path = tmp_path / "conversations.db"
    transport = MemoryTransport()
    prefix = f"corrupt:{kind}:{mode}:{tmp_path.name}:"
    # A short lease, and a probe that waits far less: a lock left behind would make the
    # probe time out, not just slow the next send down.
    store = (
        sqlite_store(mode, path, lock_timeout=0.5)
        if kind == "sqlite"
        else redis_store(mode, redis_server, prefix=prefix, lock_timeout=0.5)
    )
    probe = (
        SQLiteStore(path, lock_timeout=0.05)
        if kind == "sqlite"
        else RedisStore.from_url(redis_server.url, prefix=prefix, lock_timeout=0.05)
    )
    driver = Driver(mode, transport, store)
    await driver.call("start_assistant", init_response())
    corrupt: Callable[[], None]
    if kind == "sqlite":

        def corrupt() -> None:
            with sqlite3.connect(path, isolation_level=None) as db:
                db.execute("UPDATE assistant_flow_records SET record = '{\"format\": 99}'")
            db.close()

    else:

        def corrupt() -> None:
            client = redis_server.client()
            client.set(f"{prefix}{{conv_1}}", b"\x80\x04not json")
            client.close()

    corrupt()
    with pytest.raises(CorruptRecordError):
        await driver.call("send_message", "Hi")
    assert transport.sent == []
    with probe.lock("conv_1"):  # the lock was released on the way out
        pass
    probe.close()
    # Deleting and starting again works.
    if mode == "sync":
        store.delete("conv_1")
    else:
        await store.adelete("conv_1")
    await driver.call("send_message", "Hi")
    assert len(transport.sent) == 1
    await driver.close()


async def test_a_wrong_redis_password_is_refused_without_being_shown(
    mode: str, redis_server: RedisServer
) -> None:
    wrong = "not-the-pw-" + PASSWORD[::-1]
    url = redis_server.url.replace(PASSWORD, wrong)
    transport = MemoryTransport()
    cls = RedisStore if mode == "sync" else AsyncRedisStore
    driver = Driver(mode, transport, cls.from_url(url, **FAST))
    assert wrong not in repr(driver.store)
    with pytest.raises(StoreUnavailableError, match="refused the credentials") as caught:
        await driver.call("send_message", "Hi")
    assert transport.sent == []
    assert wrong not in chain_text(caught.value)
    assert PASSWORD not in chain_text(caught.value)
    await driver.close()


async def test_a_sqlite_file_opened_read_only_raises_store_unavailable(
    mode: str, tmp_path: Path
) -> None:
    """A real read-only database (SQLite's ``mode=ro``; file modes do not stop root)."""
    path = tmp_path / "conversations.db"
    writable = SQLiteStore(path)
    Flow(MemoryTransport(), writable).conversation("conv_1").start_assistant(init_response())
    writable.close()
    transport = MemoryTransport()
    driver = Driver(mode, transport, sqlite_store(mode, f"file:{path}?mode=ro"))
    with pytest.raises(StoreUnavailableError, match="read-only"):
        await driver.call("send_message", "Hi")
    assert transport.sent == []
    await driver.close()
    reopened = SQLiteStore(path)
    record = reopened.load("conv_1")
    assert record is not None
    assert record.awaiting_first_reply
    reopened.close()


class FailingSaveStore(MemoryStore):
    """A store whose saves fail, as a store that lost its connection after the send would."""

    def __init__(self, error: StoreError) -> None:
        super().__init__()
        self.error = error
        self.failing = False

    def save(self, record: ConversationRecord, *, expected_version: int) -> None:
        if self.failing:
            raise self.error
        super().save(record, expected_version=expected_version)


@pytest.mark.parametrize(
    "error",
    [ConflictError("conv_1", 1, 2), StoreUnavailableError("the store went away")],
    ids=["conflict", "unavailable"],
)
async def test_a_save_failing_after_the_send_says_the_message_was_delivered(
    mode: str, error: StoreError
) -> None:
    store = FailingSaveStore(error)
    transport = MemoryTransport()
    driver = Driver(mode, transport, store)
    await driver.call("start_assistant", init_response())
    store.failing = True
    with capture_logs() as logs, pytest.raises(type(error)) as caught:
        await driver.call("send_message", "Hi")
    assert caught.value.sent is not None
    assert caught.value.sent.message_id == "msg_1"
    assert [m["body"] for m in transport.sent] == ["Hi"]
    assert [log["event"] for log in logs if log["event"] == "message_sent"] == ["message_sent"]
    record = store.load("conv_1")
    assert record is not None
    assert record.awaiting_first_reply  # the stored state is the one before the step


async def test_a_store_error_with_nothing_sent_carries_no_message(mode: str) -> None:
    store = FailingSaveStore(StoreUnavailableError("unused"))
    driver = Driver(mode, MemoryTransport(), store)
    await driver.call("start_assistant", init_response())
    store.failing = True
    with pytest.raises(StoreUnavailableError) as caught:
        await driver.call("start_assistant", init_response())  # fails at its save, sends nothing
    assert caught.value.sent is None


async def test_a_failed_unlock_after_a_step_is_logged_not_raised(
    mode: str, own_redis_server: RedisServer
) -> None:
    """The step is over; failing it for the unlock would hide its outcome. The lock lapses."""

    class StoppingTransport(MemoryTransport):
        stop = False

        def send(self, message: SendMessageOptions) -> SentMessage:
            if self.stop:
                own_redis_server.stop()
                # Refused for good: the step saves nothing, its session only unlocks.
                raise TransportError("refused")
            return super().send(message)

    transport = StoppingTransport()
    driver = Driver(mode, transport, redis_store(mode, own_redis_server))
    await driver.call("start_assistant", init_response())
    await driver.call("send_message", "Hi")
    transport.stop = True
    with capture_logs() as logs, pytest.raises(TransportError) as caught:
        await driver.call("send_message", "Again")
    assert caught.value.kept is False  # the send's own error, not the store's
    warnings = [log for log in logs if log["event"] == "unlock_failed"]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"
    assert PASSWORD not in str(warnings[0])
    own_redis_server.start()
    await driver.close()
