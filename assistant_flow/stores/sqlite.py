"""SQLiteStore: conversations in one SQLite file, shared safely by every process on a machine.

The file has two tables. ``assistant_flow_records`` holds each conversation's JSON record with
its version and, when a time to live is set, its expiry. ``assistant_flow_locks`` holds leases:
a conversation's lock is a row naming its owner (a random token) and when the lease lapses.
Taking a lock is one short write (an upsert that succeeds only when no live lease exists), so
no SQLite transaction stays open while a flow sends its message, and a holder that dies
(SIGKILL included) blocks its conversation only until its lease lapses, ``lock_timeout``
seconds after it was taken.

The file runs in WAL mode (readers do not wait for the writer) with a busy timeout, so
processes writing at the same moment queue for a few milliseconds instead of failing.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

from .._conversation import ConversationRecord
from .._exceptions import ConflictError, LockTimeoutError, StoreUnavailableError
from .._logging import get_logger
from ._options import check_timeouts
from .base import AsyncStore, Store

__all__ = ["AsyncSQLiteStore", "SQLiteStore"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS assistant_flow_records ("
    " conversation_id TEXT PRIMARY KEY, version INTEGER NOT NULL, record TEXT NOT NULL,"
    " expires REAL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS assistant_flow_locks ("
    " conversation_id TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL)"
    " WITHOUT ROWID",
)
# Takes the lease when nobody holds it or the holder's lease has lapsed; changes no row else.
_TAKE_LEASE = (
    "INSERT INTO assistant_flow_locks (conversation_id, owner, expires) VALUES (?, ?, ?)"
    " ON CONFLICT (conversation_id) DO UPDATE SET owner = excluded.owner,"
    " expires = excluded.expires WHERE assistant_flow_locks.expires <= ?"
)
_DROP_LEASE = "DELETE FROM assistant_flow_locks WHERE conversation_id = ? AND owner = ?"
_TOUCH = "UPDATE assistant_flow_records SET expires = ? WHERE conversation_id = ? AND expires > ?"
_LOAD = "SELECT record, expires FROM assistant_flow_records WHERE conversation_id = ?"
_INSERT = (
    "INSERT INTO assistant_flow_records (conversation_id, version, record, expires)"
    " VALUES (?, ?, ?, ?) ON CONFLICT (conversation_id) DO UPDATE SET"
    " version = excluded.version, record = excluded.record, expires = excluded.expires"
    " WHERE assistant_flow_records.expires IS NOT NULL AND assistant_flow_records.expires <= ?"
)
_UPDATE = (
    "UPDATE assistant_flow_records SET version = ?, record = ?, expires = ?"
    " WHERE conversation_id = ? AND version = ? AND (expires IS NULL OR expires > ?)"
)
_FOUND_VERSION = (
    "SELECT version FROM assistant_flow_records"
    " WHERE conversation_id = ? AND (expires IS NULL OR expires > ?)"
)
_DELETE = "DELETE FROM assistant_flow_records WHERE conversation_id = ?"
_DELETE_IF_EXPIRED = "DELETE FROM assistant_flow_records WHERE conversation_id = ? AND expires <= ?"
_COUNT = "SELECT count(*) FROM assistant_flow_records WHERE expires IS NULL OR expires > ?"
_PURGE = (
    "DELETE FROM assistant_flow_records WHERE expires <= ?",
    "DELETE FROM assistant_flow_locks WHERE expires <= ?",
)

# Waiting for a lease: first retry soon (steps are short), then back off to this at most.
_FIRST_POLL = 0.001
_MAX_POLL = 0.05


class SQLiteStore(Store):
    """Keeps conversations in a SQLite file: they survive restarts, and processes share them.

    ``path`` is the database file (created if missing). ``lock_timeout`` bounds both how long
    a step waits for a conversation's lock and how long a lock lasts: a holder that has not
    released it by then (it crashed, or its send hung) loses it, and the version check on save
    refuses a stale write. ``ttl`` (seconds, optional) forgets a conversation that long after
    its last save or the last release of its lock. ``busy_timeout`` is how long one statement
    waits for another process's write before :class:`StoreUnavailableError`.

    One store may be shared by the threads of a process; open one per process.
    """

    async_twin = "AsyncSQLiteStore"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lock_timeout: float = 10.0,
        ttl: float | None = None,
        busy_timeout: float = 5.0,
    ) -> None:
        check_timeouts("SQLiteStore", lock_timeout, ttl)
        self.path = os.fspath(path)
        self.lock_timeout = lock_timeout
        self.ttl = ttl
        self.busy_timeout = busy_timeout
        self._guard = threading.Lock()  # one connection, shared by this process's threads
        self._closed = False
        with self._failures("open"):
            self._connection = sqlite3.connect(
                self.path,
                timeout=busy_timeout,
                isolation_level=None,  # autocommit: each statement is its own transaction
                check_same_thread=False,
            )
            try:
                self._connection.execute("PRAGMA journal_mode=WAL")
                # Durable across process crashes; a power cut may lose the last few commits.
                self._connection.execute("PRAGMA synchronous=NORMAL")
                for statement in _SCHEMA:
                    self._connection.execute(statement)
            except BaseException:
                self._connection.close()
                raise

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    def __len__(self) -> int:
        """How many live (unexpired) conversations are stored."""
        with self._failures("count records"), self._guard:
            row = self._connection.execute(_COUNT, (time.time(),)).fetchone()
        return int(row[0])

    # --- Store --------------------------------------------------------------------------

    def load(self, conversation_id: str) -> ConversationRecord | None:
        """The stored record, or ``None`` (also once it expired; it is then purged)."""
        with self._failures("load"), self._guard:
            row = self._connection.execute(_LOAD, (conversation_id,)).fetchone()
            if row is None:
                return None
            text, expires = row
            if expires is not None and expires <= (now := time.time()):
                self._connection.execute(_DELETE_IF_EXPIRED, (conversation_id, now))
                return None
        return ConversationRecord.from_json(text)

    def save(self, record: ConversationRecord, *, expected_version: int) -> None:
        """Store ``record`` if the stored version is still ``expected_version``.

        The check and the write are one statement, so two processes saving at once cannot
        both succeed.
        """
        conversation_id = record.conversation_id
        text = record.to_json()
        with self._failures("save"), self._guard:
            now = time.time()
            expires = None if self.ttl is None else now + self.ttl
            if expected_version == 0:
                cursor = self._connection.execute(
                    _INSERT, (conversation_id, record.version, text, expires, now)
                )
            else:
                cursor = self._connection.execute(
                    _UPDATE, (record.version, text, expires, conversation_id, expected_version, now)
                )
            if cursor.rowcount == 1:
                return
            row = self._connection.execute(_FOUND_VERSION, (conversation_id, now)).fetchone()
        raise ConflictError(conversation_id, expected_version, 0 if row is None else int(row[0]))

    def delete(self, conversation_id: str) -> None:
        """Forget the conversation."""
        with self._failures("delete"), self._guard:
            self._connection.execute(_DELETE, (conversation_id,))

    def lock(self, conversation_id: str) -> _Lease:
        """Hold the conversation's lease for the ``with`` block (across processes)."""
        return _Lease(self, conversation_id)

    def purge_expired(self) -> int:
        """Delete expired records and lapsed leases now; returns how many records went.

        Expired records already load as missing; this only reclaims their space.
        """
        with self._failures("purge"), self._guard:
            now = time.time()
            records = self._connection.execute(_PURGE[0], (now,)).rowcount
            self._connection.execute(_PURGE[1], (now,))
        return records

    def close(self) -> None:
        """Close the connection. Closing twice is harmless; other calls then fail."""
        with self._guard:
            if not self._closed:
                self._closed = True
                self._connection.close()

    # --- leases, used by _Lease and AsyncSQLiteStore ----------------------------------------

    def _try_lease(self, conversation_id: str, owner: str) -> bool:
        """Take the lease if it is free or lapsed; one short write transaction."""
        with self._failures("lock"), self._guard:
            now = time.time()
            cursor = self._connection.execute(
                _TAKE_LEASE, (conversation_id, owner, now + self.lock_timeout, now)
            )
            return cursor.rowcount == 1

    def _drop_lease(self, conversation_id: str, owner: str) -> None:
        """Release the lease if still ours, and restart the record's time to live."""
        try:
            with self._failures("unlock"), self._guard:
                if self.ttl is None:
                    self._connection.execute(_DROP_LEASE, (conversation_id, owner))
                    return
                now = time.time()
                with self._transaction():
                    self._connection.execute(_DROP_LEASE, (conversation_id, owner))
                    self._connection.execute(_TOUCH, (now + self.ttl, conversation_id, now))
        except StoreUnavailableError as exc:
            # The step already happened; failing it now would invite a duplicate send. The
            # lease lapses by itself after lock_timeout.
            get_logger().warning("unlock_failed", conversation_id=conversation_id, error=str(exc))

    def _timed_out(self, conversation_id: str) -> LockTimeoutError:
        return LockTimeoutError(
            f"conversation {conversation_id!r} stayed locked for more than "
            f"{self.lock_timeout} s (SQLiteStore {self.path!r})"
        )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    @contextmanager
    def _failures(self, action: str) -> Iterator[None]:
        """Turn sqlite3's errors into StoreUnavailableError with a message that says why."""
        if self._closed:
            raise StoreUnavailableError(f"SQLiteStore {self.path!r} is closed; cannot {action}")
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreUnavailableError(
                f"SQLiteStore {self.path!r} could not {action}: {_explain(exc, self.busy_timeout)}"
            ) from exc


def _explain(exc: sqlite3.Error, busy_timeout: float) -> str:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return (
            f"the file stayed locked by another connection for more than {busy_timeout} s ({text})"
        )
    if "readonly" in text or "read-only" in text:
        return f"the file or its folder is read-only ({text})"
    return f"{type(exc).__name__}: {text}"


class _Lease:
    """A conversation's lease in the SQLite file, taken on entry and dropped on exit."""

    __slots__ = ("_owner", "_store", "conversation_id")

    def __init__(self, store: SQLiteStore, conversation_id: str) -> None:
        self._store = store
        self.conversation_id = conversation_id
        self._owner = secrets.token_hex(16)

    def __enter__(self) -> None:
        store = self._store
        deadline = time.monotonic() + store.lock_timeout
        pause = _FIRST_POLL
        while not store._try_lease(self.conversation_id, self._owner):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise store._timed_out(self.conversation_id)
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, _MAX_POLL)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._store._drop_lease(self.conversation_id, self._owner)


class AsyncSQLiteStore(AsyncStore):
    """The asyncio twin of :class:`SQLiteStore`, with the same options and the same file format.

    Each call runs the blocking SQLite work in a worker thread (``asyncio.to_thread``), so the
    event loop never waits on the file; waiting for a lock sleeps with ``asyncio.sleep``.
    """

    sync_twin = "SQLiteStore"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lock_timeout: float = 10.0,
        ttl: float | None = None,
        busy_timeout: float = 5.0,
    ) -> None:
        self._sync = SQLiteStore(
            path, lock_timeout=lock_timeout, ttl=ttl, busy_timeout=busy_timeout
        )
        self.path = self._sync.path
        self.lock_timeout = lock_timeout
        self.ttl = ttl

    def __repr__(self) -> str:
        return f"AsyncSQLiteStore({self.path!r})"

    def __len__(self) -> int:
        """How many live (unexpired) conversations are stored (a quick blocking count)."""
        return len(self._sync)

    async def aload(self, conversation_id: str) -> ConversationRecord | None:
        """The stored record, or ``None``."""
        return await asyncio.to_thread(self._sync.load, conversation_id)

    async def asave(self, record: ConversationRecord, *, expected_version: int) -> None:
        """Store ``record`` if the stored version is still ``expected_version``."""
        await asyncio.to_thread(self._sync.save, record, expected_version=expected_version)

    async def adelete(self, conversation_id: str) -> None:
        """Forget the conversation."""
        await asyncio.to_thread(self._sync.delete, conversation_id)

    def alock(self, conversation_id: str) -> _AsyncLease:
        """Hold the conversation's lease for the ``async with`` block (across processes)."""
        return _AsyncLease(self._sync, conversation_id)

    async def apurge_expired(self) -> int:
        """Delete expired records and lapsed leases now; see :meth:`SQLiteStore.purge_expired`."""
        return await asyncio.to_thread(self._sync.purge_expired)

    async def aclose(self) -> None:
        """Close the connection."""
        await asyncio.to_thread(self._sync.close)


class _AsyncLease:
    """A conversation's lease for asyncio tasks: polls in a thread, sleeps on the loop."""

    __slots__ = ("_owner", "_store", "conversation_id")

    def __init__(self, store: SQLiteStore, conversation_id: str) -> None:
        self._store = store
        self.conversation_id = conversation_id
        self._owner = secrets.token_hex(16)

    async def __aenter__(self) -> None:
        store = self._store
        deadline = time.monotonic() + store.lock_timeout
        pause = _FIRST_POLL
        while not await asyncio.to_thread(store._try_lease, self.conversation_id, self._owner):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise store._timed_out(self.conversation_id)
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 2, _MAX_POLL)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self._store._drop_lease, self.conversation_id, self._owner)
