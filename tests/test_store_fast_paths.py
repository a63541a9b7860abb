"""What the durable stores skip on a step, and that skipping it changes nothing they promise.

The record cache (a record decoded only when its stored text is not the one this store last
read or wrote), RedisStore's held connection with its self-packed EVALSHA, the save script's
version read without decoding the document, cheaper lease tokens, and the renewer's lock-free
hold and drop. Against a real SQLite file and a real redis-server.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis_server import RedisServer

from assistant_flow import (
    ConflictError,
    ConversationRecord,
    CorruptRecordError,
    Flow,
    LockLostError,
    MemoryTransport,
    RedisStore,
    SQLiteStore,
)
from assistant_flow.stores._leased import RecordCache, new_token
from assistant_flow.stores._redis_base import pack_evalsha
from assistant_flow.stores._renewal import Renewer

CONVERSING = "in_assistant.conversing"


def record(version: int, conversation_id: str = "conv_1", **fields: Any) -> ConversationRecord:
    return ConversationRecord(conversation_id, CONVERSING, version, **fields)


@pytest.fixture
def redis_store(redis_server: RedisServer) -> Iterator[RedisStore]:
    store = RedisStore.from_url(redis_server.url, prefix=f"fast:{uuid.uuid4().hex}:")
    yield store
    store.close()


# --- the record cache -------------------------------------------------------------------------


def test_the_cache_returns_a_record_only_for_the_exact_text_it_was_kept_with() -> None:
    cache: RecordCache[str] = RecordCache(size=2)
    one = record(1)
    cache.put("conv_1", one.to_json(), one)
    assert cache.get("conv_1", one.to_json()) is one
    assert cache.get("conv_1", record(2).to_json()) is None
    assert cache.get("conv_2", one.to_json()) is None


def test_the_cache_is_bounded_and_skips_long_texts() -> None:
    cache: RecordCache[str] = RecordCache(size=2, max_text=200)
    for n in range(3):
        kept = record(1, f"conv_{n}")
        cache.put(kept.conversation_id, kept.to_json(), kept)
    assert cache.get("conv_0", record(1, "conv_0").to_json()) is None  # the oldest went
    assert cache.get("conv_2", record(1, "conv_2").to_json()) is not None
    long = record(1, "conv_3", seen=tuple(f"msg_{n:030d}" for n in range(10)))
    cache.put("conv_3", long.to_json(), long)
    assert cache.get("conv_3", long.to_json()) is None


def test_a_sqlite_record_another_process_rewrote_is_read_anew(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    store, other = SQLiteStore(path), SQLiteStore(path)
    try:
        store.save(record(1), expected_version=0)
        assert store.load("conv_1") == record(1)  # now cached here
        other.save(record(2, run="another"), expected_version=1)
        with store.session("conv_1") as held:
            assert held.record == record(2, run="another")
        with sqlite3.connect(path, isolation_level=None) as db:
            db.execute("UPDATE assistant_flow_records SET record = '{\"format\": 99}'")
        db.close()
        with pytest.raises(CorruptRecordError), store.session("conv_1"):
            pass
    finally:
        store.close()
        other.close()


def test_a_redis_record_rewritten_behind_the_store_is_read_anew(
    redis_store: RedisStore, redis_server: RedisServer
) -> None:
    redis_store.save(record(1), expected_version=0)
    with redis_store.session("conv_1") as held:
        assert held.record == record(1)
    client = redis_server.client()
    try:
        key = f"{redis_store.prefix}{{conv_1}}"
        client.set(key, record(1, run="elsewhere").to_json())
        with redis_store.session("conv_1") as held:
            assert held.record == record(1, run="elsewhere")
        client.set(key, record(1, "conv_2").to_json())  # another conversation's record
        with pytest.raises(CorruptRecordError), redis_store.session("conv_1"):
            pass
    finally:
        client.close()


# --- Redis: the held connection and the scripts -------------------------------------------


def test_the_packed_command_is_what_redis_py_would_write() -> None:
    keys, args = [b"a:{c}:lock", b"a:{c}"], [b"token", b"10000", "é".encode()]
    ours = pack_evalsha("f" * 40, keys, args)
    packer = redis.Connection()  # type: ignore[no-untyped-call]
    theirs = b"".join(packer.pack_command("EVALSHA", "f" * 40, 2, *keys, *args))  # type: ignore[no-untyped-call]
    assert ours == theirs


def test_steps_from_many_threads_share_one_redis_store(redis_store: RedisStore) -> None:
    """Threads that find the held connection busy go through the pool; no step is lost."""
    flow = Flow(MemoryTransport(), redis_store)
    for n in range(8):
        redis_store.save(record(1, f"conv_{n}"), expected_version=0)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for _ in range(25):
                flow.conversation(f"conv_{n}").send_message("Hi")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [redis_store.load(f"conv_{n}").version for n in range(8)] == [26] * 8  # type: ignore[union-attr]


def test_scripts_flushed_from_redis_are_loaded_again(
    redis_store: RedisStore, redis_server: RedisServer
) -> None:
    redis_store.save(record(1), expected_version=0)
    client = redis_server.client()
    try:
        client.script_flush()
    finally:
        client.close()
    with redis_store.session("conv_1") as held:
        held.save(record(2))
    assert redis_store.load("conv_1") == record(2)


def test_a_redis_store_gives_its_connection_back_to_a_client_left_open(
    redis_server: RedisServer,
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    store = RedisStore(client, prefix=f"fast:{uuid.uuid4().hex}:")
    store.save(record(1), expected_version=0)
    pool = client.connection_pool
    assert len(pool._in_use_connections) == 1  # held by the store
    store.close()
    assert len(pool._in_use_connections) == 0
    assert client.ping()
    client.close()


def test_a_client_that_decodes_replies_runs_steps_and_keeps_records(
    redis_server: RedisServer,
) -> None:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    store = RedisStore(client, prefix=f"fast:{uuid.uuid4().hex}:")
    try:
        store.save(record(1), expected_version=0)
        for version in range(1, 4):
            with store.session("conv_1") as held:
                assert held.record == record(version)
                held.save(record(version + 1))
        assert store.load("conv_1") == record(4)
    finally:
        store.close()
        client.close()


def test_a_small_pool_lends_no_connection_for_good(redis_server: RedisServer) -> None:
    pool = redis.BlockingConnectionPool.from_url(redis_server.url, max_connections=2)
    client = redis.Redis(connection_pool=pool)
    store = RedisStore(client, prefix=f"fast:{uuid.uuid4().hex}:")
    try:
        store.save(record(1), expected_version=0)
        with store.session("conv_1") as held:
            assert store.load("conv_1") == record(1)  # the pool's second connection
            held.save(record(2))
        assert store._held is None  # every script went through the pool
    finally:
        store.close()
        client.close()


@pytest.mark.parametrize(
    "stored",
    [
        # written by to_json: the version is read without decoding
        '{"format":2,"conversationId":"conv_1","state":"in_assistant.conversing","version":7}',
        # another key order, escapes in the id, spaces: decoded with cjson
        '{"version":7,"format":2,"state":"in_assistant.conversing","conversationId":"conv_1"}',
        '{"format": 2, "conversationId": "conv_1", "state": "in_assistant.conversing", '
        '"version": 7}',
    ],
    ids=["to_json", "reordered", "spaced"],
)
def test_the_save_script_reads_the_stored_version_of_any_layout(
    redis_store: RedisStore, redis_server: RedisServer, stored: str
) -> None:
    client = redis_server.client()
    try:
        client.set(f"{redis_store.prefix}{{conv_1}}", stored)
        with pytest.raises(ConflictError) as caught:
            redis_store.save(record(9), expected_version=6)
        assert caught.value.found == 7
        redis_store.save(record(8), expected_version=7)
        assert redis_store.load("conv_1") == record(8)
    finally:
        client.close()


def test_a_stored_version_with_a_leading_zero_is_left_to_cjson(
    redis_store: RedisStore, redis_server: RedisServer
) -> None:
    """JSON has no leading zeros: the script's quick read declines, and cjson (lenient, as the
    script always was) reads 07 as 7."""
    client = redis_server.client()
    try:
        stored = '{"format":2,"conversationId":"conv_1","state":"init","version":07}'
        client.set(f"{redis_store.prefix}{{conv_1}}", stored)
        with pytest.raises(ConflictError) as caught:
            redis_store.save(record(8), expected_version=0)
        assert caught.value.found == 7
        redis_store.save(record(8), expected_version=7)
    finally:
        client.close()


# --- tokens and the renewer -------------------------------------------------------------------


def test_lease_tokens_are_unique() -> None:
    tokens = {new_token() for _ in range(10_000)}
    assert len(tokens) == 10_000


def _token_in_child(pipe: Any) -> None:
    pipe.send(new_token())
    os._exit(0)


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # Python 3.12+ on fork
def test_a_forked_child_never_repeats_its_parents_tokens() -> None:
    context = multiprocessing.get_context("fork")
    ours, theirs = context.Pipe()
    child = context.Process(target=_token_in_child, args=(theirs,))
    child.start()
    assert ours.poll(30)
    token = ours.recv()
    child.join(30)
    assert token.split(".")[0] != new_token().split(".")[0]


def test_many_quick_steps_then_a_slow_one_keep_the_lease(tmp_path: Path) -> None:
    """The renewer, woken once and then left alone by quick steps, still renews a long one."""
    store = SQLiteStore(tmp_path / "c.db", lock_timeout=0.3)
    try:
        store.save(record(1), expected_version=0)
        for version in range(1, 200):
            with store.session("conv_1") as held:
                held.save(record(version + 1))
        with store.session("conv_1") as held:
            time.sleep(1.0)  # more than three leases
            held.save(record(201))
        assert store.load("conv_1") == record(201)
    finally:
        store.close()


def test_holding_and_dropping_from_threads_while_the_renewer_runs() -> None:
    renewed: list[int] = []

    def renew(leases: list[tuple[str, str]]) -> list[str]:
        renewed.append(len(leases))
        return []

    renewer = Renewer(0.03, renew)  # renews every 10 ms
    errors: list[BaseException] = []

    def churn(n: int) -> None:
        try:
            for i in range(5_000):
                token = f"{n}-{i}"
                renewer.hold(f"conv_{n}", token)
                renewer.drop(token)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(n,)) for n in range(4)]
    renewer.hold("conv_long", "long")
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(0.05)
    renewer.close()
    assert errors == []
    assert renewed  # the long lease was renewed throughout
    assert renewer._thread is None


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_renewer_starts_again_after_its_thread_ended() -> None:
    calls: list[int] = []

    def renew(leases: list[tuple[str, str]]) -> list[str]:
        calls.append(len(leases))
        if len(calls) == 1:
            raise KeyboardInterrupt  # not an Exception: ends the thread
        return []

    renewer = Renewer(0.03, renew)
    renewer.hold("conv_1", "t1")
    for _ in range(100):
        if renewer._thread is None:
            break
        time.sleep(0.01)
    assert renewer._thread is None
    renewer.hold("conv_1", "t2")  # a new thread
    for _ in range(100):
        if len(calls) >= 2:
            break
        time.sleep(0.01)
    renewer.close()
    assert len(calls) >= 2


def test_a_lost_lease_still_refuses_the_save(tmp_path: Path) -> None:
    """Fencing is unchanged by the one-transaction save: a stolen lease saves nothing."""
    path = tmp_path / "c.db"
    store = SQLiteStore(path, lock_timeout=5)
    try:
        store.save(record(1), expected_version=0)

        def stolen_step() -> None:
            with store.session("conv_1") as held:
                with sqlite3.connect(path, isolation_level=None) as db:
                    db.execute("UPDATE assistant_flow_locks SET owner = 'thief'")
                db.close()
                held.save(record(2))

        with pytest.raises(LockLostError):
            stolen_step()
        assert store.load("conv_1") == record(1)
    finally:
        store.close()
