"""SQLiteStore: conversations in one SQLite file, shared safely by every process on a machine.

The file has two tables. ``assistant_flow_records`` holds each conversation's JSON record with
its version and, when a time to live is set, its expiry. ``assistant_flow_locks`` holds leases:
a conversation's lock is a row naming its owner (a random token) and when the lease lapses.
Taking a lock is one short write (an upsert that succeeds only when no live lease exists), so
no SQLite transaction stays open while a flow sends its message. While the lease is held, the
store's renewer thread extends it every third of ``lock_timeout``, so a slow send keeps it; a
holder that dies (SIGKILL included) stops renewing and blocks its conversation only until the
lease lapses, at most ``lock_timeout`` seconds later. A step's save and the lease's release are
one transaction that first checks the lease is still this owner's: a holder that lost it
(its process stalled for a whole lease) cannot overwrite the next holder's work.

The file runs in WAL mode (readers do not wait for the writer) with a busy timeout, so
processes writing at the same moment queue for a few milliseconds instead of failing. One
store has one connection: its statements run one at a time, and a statement waiting out
another process's write holds up the store's other conversations meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from types import TracebackType
from typing import TypeVar

from .._conversation import ConversationRecord
from .._exceptions import (
    ConflictError,
    InvalidInputError,
    LockLostError,
    LockTimeoutError,
    StoreUnavailableError,
)
from .._logging import get_logger
from ._options import check_timeouts
from ._renewal import Leases, Renewer
from ._waiting import Backoff
from .base import AsyncStore, AsyncStoreSession, Store, StoreSession

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
_RENEW_LEASE = "UPDATE assistant_flow_locks SET expires = ? WHERE conversation_id = ? AND owner = ?"
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

_T = TypeVar("_T")


class SQLiteStore(Store):
    """Keeps conversations in a SQLite file: they survive restarts, and processes share them.

    ``path`` is the database file (created if missing), or a ``file:`` URI. ``lock_timeout``
    bounds how long a step waits for a conversation's lock, and how long a lock outlives a
    holder that stopped renewing it (it crashed): a live holder keeps its lease while its step
    runs, as a background thread renews it. ``ttl`` (seconds, optional, at least
    ``lock_timeout``) forgets a conversation that long after its last save or the last release
    of its lock. ``busy_timeout`` is how long one statement waits for another process's write
    before :class:`StoreUnavailableError`.

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
        if not (busy_timeout > 0 and math.isfinite(busy_timeout)):
            raise InvalidInputError(
                "SQLiteStore: `busy_timeout` must be a positive, finite number of seconds "
                "(how long a statement waits for another process's write)",
                field="busy_timeout",
            )
        self.path = os.fspath(path)
        self.lock_timeout = lock_timeout
        self.ttl = ttl
        self.busy_timeout = busy_timeout
        self._guard = threading.Lock()  # one connection, shared by this process's threads
        self._closed = False
        self._renewer = Renewer(lock_timeout, self._renew_leases)
        with self._failures("open"):
            self._connection = sqlite3.connect(
                self.path,
                uri=self.path.startswith("file:"),  # e.g. file:conversations.db?mode=ro
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
        return self.count()

    def count(self) -> int:
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
            if self._write(record, text, expected_version, now):
                return
            found = self._found(conversation_id, now)
        raise ConflictError(conversation_id, expected_version, found)

    def delete(self, conversation_id: str) -> None:
        """Forget the conversation."""
        with self._failures("delete"), self._guard:
            self._connection.execute(_DELETE, (conversation_id,))

    def lock(self, conversation_id: str) -> _Lease:
        """Hold the conversation's lease for the ``with`` block (across processes)."""
        return _Lease(self, conversation_id)

    def session(self, conversation_id: str) -> _Session:
        """One flow step; the save and the release are one transaction (see the module)."""
        return _Session(self, conversation_id)

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
        self._renewer.close()
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
            taken = cursor.rowcount == 1
        if taken:
            self._renewer.hold(conversation_id, owner)
        return taken

    def _take_lease(self, conversation_id: str, owner: str) -> None:
        """Wait for the lease, within lock_timeout."""
        backoff = Backoff(self.lock_timeout)
        while not self._try_lease(conversation_id, owner):
            pause = backoff.next_pause()
            if pause is None:
                raise self._timed_out(conversation_id)
            time.sleep(pause)

    def _renew_leases(self, leases: Leases) -> list[str]:
        """Extend the leases still ours (the renewer's call); returns the tokens that were not."""
        lost = []
        with self._failures("renew locks"), self._guard:
            expires = time.time() + self.lock_timeout
            with self._transaction():
                for conversation_id, owner in leases:
                    renewed = (expires, conversation_id, owner)
                    if self._connection.execute(_RENEW_LEASE, renewed).rowcount != 1:
                        lost.append(owner)
        return lost

    def _save_and_drop(self, record: ConversationRecord, expected_version: int, owner: str) -> None:
        """Save ``record`` and release the lease in one transaction, if the lease is ours."""
        self._renewer.drop(owner)
        conversation_id = record.conversation_id
        text = record.to_json()
        with self._failures("save"), self._guard, self._transaction():
            now = time.time()
            if self._connection.execute(_DROP_LEASE, (conversation_id, owner)).rowcount != 1:
                raise LockLostError(conversation_id, self.lock_timeout)
            saved = self._write(record, text, expected_version, now)
            found = None if saved else self._found(conversation_id, now)
        if found is not None:
            raise ConflictError(conversation_id, expected_version, found)

    def _write(
        self, record: ConversationRecord, text: str, expected_version: int, now: float
    ) -> bool:
        expires = None if self.ttl is None else now + self.ttl
        if expected_version == 0:
            cursor = self._connection.execute(
                _INSERT, (record.conversation_id, record.version, text, expires, now)
            )
        else:
            cursor = self._connection.execute(
                _UPDATE,
                (record.version, text, expires, record.conversation_id, expected_version, now),
            )
        return cursor.rowcount == 1

    def _found(self, conversation_id: str, now: float) -> int:
        row = self._connection.execute(_FOUND_VERSION, (conversation_id, now)).fetchone()
        return 0 if row is None else int(row[0])

    def _drop_lease(self, conversation_id: str, owner: str) -> None:
        """Release the lease if still ours, and restart the record's time to live."""
        self._renewer.drop(owner)
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
        self._store._take_lease(self.conversation_id, self._owner)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._store._drop_lease(self.conversation_id, self._owner)


class _Session(StoreSession):
    """SQLiteStore's flow step: lease and load on entry; save and release in one transaction."""

    __slots__ = ("_owner",)
    _store: SQLiteStore

    def __init__(self, store: SQLiteStore, conversation_id: str) -> None:
        super().__init__(store, conversation_id)
        self._owner = secrets.token_hex(16)

    def __enter__(self) -> _Session:
        store, conversation_id = self._store, self.conversation_id
        store._take_lease(conversation_id, self._owner)
        try:
            self.record = store.load(conversation_id)
        except BaseException:
            store._drop_lease(conversation_id, self._owner)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        store, pending = self._store, self._pending
        if exc_type is not None or pending is None:
            store._drop_lease(self.conversation_id, self._owner)
            return
        try:
            store._save_and_drop(pending, self.expected_version, self._owner)
        except StoreUnavailableError:
            store._drop_lease(self.conversation_id, self._owner)  # may fail too; then it lapses
            raise


class AsyncSQLiteStore(AsyncStore):
    """The asyncio twin of :class:`SQLiteStore`, with the same options and the same file format.

    The blocking SQLite work runs on the store's own worker thread (one, as the connection is
    one), so the event loop never waits on the file; waiting for a lock sleeps with
    ``asyncio.sleep``. Cancelling a task while it takes a lock leaves the lock free.
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
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="assistant_flow-sqlite")

    def __repr__(self) -> str:
        return f"AsyncSQLiteStore({self.path!r})"

    async def acount(self) -> int:
        """How many live (unexpired) conversations are stored."""
        return await self._run(self._sync.count)

    async def aload(self, conversation_id: str) -> ConversationRecord | None:
        """The stored record, or ``None``."""
        return await self._run(self._sync.load, conversation_id)

    async def asave(self, record: ConversationRecord, *, expected_version: int) -> None:
        """Store ``record`` if the stored version is still ``expected_version``."""
        save = functools.partial(self._sync.save, expected_version=expected_version)
        await self._run(save, record)

    async def adelete(self, conversation_id: str) -> None:
        """Forget the conversation."""
        await self._run(self._sync.delete, conversation_id)

    def alock(self, conversation_id: str) -> _AsyncLease:
        """Hold the conversation's lease for the ``async with`` block (across processes)."""
        return _AsyncLease(self, conversation_id)

    def asession(self, conversation_id: str) -> _AsyncSession:
        """One flow step; see :meth:`SQLiteStore.session`."""
        return _AsyncSession(self, conversation_id)

    async def apurge_expired(self) -> int:
        """Delete expired records and lapsed leases now; see :meth:`SQLiteStore.purge_expired`."""
        return await self._run(self._sync.purge_expired)

    async def aclose(self) -> None:
        """Close the connection and stop the store's worker thread."""
        if not self._sync._closed:
            await self._run(self._sync.close)
        self._executor.shutdown(wait=False)

    async def _run(self, call: Callable[..., _T], *args: object) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call, *args)

    async def _take_lease(self, conversation_id: str, owner: str) -> None:
        """Wait for the lease; if cancelled meanwhile, release what the thread took."""
        store = self._sync
        backoff = Backoff(store.lock_timeout)
        loop = asyncio.get_running_loop()
        while True:
            attempt = loop.run_in_executor(self._executor, store._try_lease, conversation_id, owner)
            try:
                taken = await asyncio.shield(attempt)
            except asyncio.CancelledError:
                # The thread goes on and may take the lease after we gave up: give it back.
                give_back = functools.partial(self._give_back, conversation_id, owner)
                attempt.add_done_callback(give_back)
                raise
            if taken:
                return
            pause = backoff.next_pause()
            if pause is None:
                raise store._timed_out(conversation_id)
            await asyncio.sleep(pause)

    def _give_back(self, conversation_id: str, owner: str, attempt: asyncio.Future[bool]) -> None:
        if attempt.cancelled() or attempt.exception() is not None or not attempt.result():
            return
        with contextlib.suppress(RuntimeError):  # closed meanwhile: the lease lapses by itself
            self._executor.submit(self._sync._drop_lease, conversation_id, owner)

    async def _drop_lease(self, conversation_id: str, owner: str) -> None:
        await self._shielded(self._sync._drop_lease, conversation_id, owner)

    async def _shielded(self, call: Callable[..., None], *args: object) -> None:
        """Run a release to its end even if the task is cancelled while it runs."""
        done: Future[None] = self._executor.submit(call, *args)
        await asyncio.shield(asyncio.wrap_future(done))


class _AsyncLease:
    """A conversation's lease for asyncio tasks: polls on the store's thread, sleeps on the loop."""

    __slots__ = ("_owner", "_store", "conversation_id")

    def __init__(self, store: AsyncSQLiteStore, conversation_id: str) -> None:
        self._store = store
        self.conversation_id = conversation_id
        self._owner = secrets.token_hex(16)

    async def __aenter__(self) -> None:
        await self._store._take_lease(self.conversation_id, self._owner)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._store._drop_lease(self.conversation_id, self._owner)


class _AsyncSession(AsyncStoreSession):
    """AsyncSQLiteStore's flow step; see :class:`_Session`."""

    __slots__ = ("_owner",)
    _store: AsyncSQLiteStore

    def __init__(self, store: AsyncSQLiteStore, conversation_id: str) -> None:
        super().__init__(store, conversation_id)
        self._owner = secrets.token_hex(16)

    async def __aenter__(self) -> _AsyncSession:
        store, conversation_id = self._store, self.conversation_id
        await store._take_lease(conversation_id, self._owner)
        try:
            self.record = await store._run(store._sync.load, conversation_id)
        except BaseException:
            await store._drop_lease(conversation_id, self._owner)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        store, pending = self._store, self._pending
        if exc_type is not None or pending is None:
            await store._drop_lease(self.conversation_id, self._owner)
            return
        try:
            save = store._sync._save_and_drop
            await store._run(save, pending, self.expected_version, self._owner)
        except StoreUnavailableError:
            await store._drop_lease(self.conversation_id, self._owner)
            raise
