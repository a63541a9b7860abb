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
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import ClassVar, TypeVar

from .._conversation import ConversationRecord
from .._exceptions import (
    ConflictError,
    InvalidInputError,
    LockLostError,
    LockTimeoutError,
    StoreUnavailableError,
)
from ._leased import (
    AsyncLeasedSession,
    AsyncLeaseLock,
    LeasedSession,
    LeaseLock,
    RecordCache,
    log_unlock_failed,
)
from ._options import check_timeouts
from ._renewal import Leases, Renewer
from ._sqlite_sql import (
    COUNT,
    DELETE,
    DELETE_IF_EXPIRED,
    DROP_LEASE,
    FOUND_VERSION,
    INSERT,
    LOAD,
    PURGE,
    RENEW_LEASE,
    SCHEMA,
    TAKE_LEASE,
    TOUCH,
    UPDATE,
)
from ._waiting import Backoff, timed_out
from .base import AsyncStore, Store

__all__ = ["AsyncSQLiteStore", "SQLiteStore"]

_T = TypeVar("_T")

# What taking a lease returned: None when another holder has it; else the record's text read
# in the same statement (None: no live record).
_Taken = tuple[str | None] | None


class _SQLiteOptions:
    """The options both SQLite stores take, checked in one place, and how the stores show."""

    _name: ClassVar[str]

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lock_timeout: float = 10.0,
        ttl: float | None = None,
        busy_timeout: float = 5.0,
    ) -> None:
        # Named SQLiteStore for both: AsyncSQLiteStore is SQLiteStore run on a thread.
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
        self._open()

    def _open(self) -> None:
        """Open the file (each store its own way), once the options are known to be good."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{self._name}({self.path!r})"


class SQLiteStore(_SQLiteOptions, Store):
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
    _name: ClassVar[str] = "SQLiteStore"

    def _open(self) -> None:
        self._guard = threading.Lock()  # one connection, shared by this process's threads
        self._closed = False
        self._renewer = Renewer(self.lock_timeout, self._renew_leases)
        self._records: RecordCache[str] = RecordCache()
        with self._failures("open"):
            self._connection = sqlite3.connect(
                self.path,
                uri=self.path.startswith("file:"),  # e.g. file:conversations.db?mode=ro
                timeout=self.busy_timeout,
                isolation_level=None,  # autocommit: each statement is its own transaction
                check_same_thread=False,
            )
            try:
                self._connection.execute("PRAGMA journal_mode=WAL")
                # Durable across process crashes; a power cut may lose the last few commits.
                self._connection.execute("PRAGMA synchronous=NORMAL")
                for statement in SCHEMA:
                    self._connection.execute(statement)
                # One cursor for every statement (all run under the guard): a new cursor
                # per statement was a measurable part of a step.
                self._cursor = self._connection.cursor()
            except BaseException:
                self._connection.close()
                raise

    def __len__(self) -> int:
        """How many live (unexpired) conversations are stored."""
        return self.count()

    def count(self) -> int:
        """How many live (unexpired) conversations are stored."""
        with self._failures("count records"), self._guard:
            rows = self._cursor.execute(COUNT, (time.time(),)).fetchall()
        return int(rows[0][0])

    # --- Store --------------------------------------------------------------------------

    def load(self, conversation_id: str) -> ConversationRecord | None:
        """The stored record, or ``None`` (also once it expired; it is then purged)."""
        with self._failures("load"), self._guard:
            rows = self._cursor.execute(LOAD, (conversation_id,)).fetchall()
            if not rows:
                return None
            text, expires = rows[0]
            if expires is not None and expires <= (now := time.time()):
                self._cursor.execute(DELETE_IF_EXPIRED, (conversation_id, now))
                return None
        return self._decode(conversation_id, text)

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
                self._records.put(conversation_id, text, record)
                return
            found = self._found(conversation_id, now)
        raise ConflictError(conversation_id, expected_version, found)

    def delete(self, conversation_id: str) -> None:
        """Forget the conversation."""
        with self._failures("delete"), self._guard:
            self._cursor.execute(DELETE, (conversation_id,))
        self._records.forget(conversation_id)

    def lock(self, conversation_id: str) -> LeaseLock:
        """Hold the conversation's lease for the ``with`` block (across processes)."""
        return LeaseLock(self, conversation_id)

    def session(self, conversation_id: str) -> LeasedSession:
        """One flow step; the save and the release are one transaction (see the module)."""
        return LeasedSession(self, self, conversation_id)

    def purge_expired(self) -> int:
        """Delete expired records and lapsed leases now; returns how many records went.

        Expired records already load as missing; this only reclaims their space.
        """
        with self._failures("purge"), self._guard:
            now = time.time()
            records = self._cursor.execute(PURGE[0], (now,)).rowcount
            self._cursor.execute(PURGE[1], (now,))
        return records

    def close(self) -> None:
        """Close the connection. Closing twice is harmless; other calls then fail."""
        self._renewer.close()
        with self._guard:
            if not self._closed:
                self._closed = True
                self._connection.close()
        self._records.clear()

    # --- the lease, for LeaseLock, LeasedSession and AsyncSQLiteStore -----------------------
    #
    # A step is two short write transactions: taking the lease (then reading the record,
    # under the same hold of the guard), and one transaction that drops the lease and writes
    # the record. What they cost is mostly the pages written (the lease row's page twice, the
    # record's once), not the statements: reading the record in the take's own statement
    # (INSERT ... RETURNING) measured no faster. The hot paths catch sqlite3.Error themselves
    # rather than through _failures (a generator context manager costs more than a statement).

    def _try_lease(self, conversation_id: str, owner: str) -> _Taken:
        """Take the lease if it is free or lapsed, and read the record while at it.

        One short write transaction, then a read, under one hold of the guard. ``None`` when
        someone else holds the lease; else the record's text (``(None,)`` when there is no
        live record; an expired one is purged).
        """
        if self._closed:
            raise self._closed_error("lock")
        cursor = self._cursor
        with self._guard:
            now = time.time()
            arguments = (conversation_id, owner, now + self.lock_timeout, now)
            try:
                if cursor.execute(TAKE_LEASE, arguments).rowcount != 1:
                    return None
            except sqlite3.Error as exc:
                raise self._unavailable("lock", exc) from exc
            try:
                rows = cursor.execute(LOAD, (conversation_id,)).fetchall()
                text, expires = rows[0] if rows else (None, None)
                if expires is not None and expires <= now:
                    cursor.execute(DELETE_IF_EXPIRED, (conversation_id, now))
                    text = None
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):  # else the lease lapses by itself
                    cursor.execute(DROP_LEASE, (conversation_id, owner))
                raise self._unavailable("load", exc) from exc
        self._renewer.hold(conversation_id, owner)
        return (text,)

    def _take(self, conversation_id: str, owner: str) -> _Taken:
        """Wait for the lease, within lock_timeout; returns what taking it read."""
        taken = self._try_lease(conversation_id, owner)
        if taken is not None:
            return taken
        backoff = Backoff(self.lock_timeout)
        while True:
            pause = backoff.next_pause()
            if pause is None:
                raise self._timed_out(conversation_id)
            time.sleep(pause)
            taken = self._try_lease(conversation_id, owner)
            if taken is not None:
                return taken

    def _load_taken(self, conversation_id: str, taken: _Taken) -> ConversationRecord | None:
        """The record from the text read with the lease (nothing more is read)."""
        text = None if taken is None else taken[0]
        return None if text is None else self._decode(conversation_id, text)

    def _decode(self, conversation_id: str, text: str) -> ConversationRecord:
        record = self._records.get(conversation_id, text)
        if record is None:
            record = ConversationRecord.from_json(text)
            self._records.put(conversation_id, text, record)
        return record

    def _release(self, conversation_id: str, owner: str) -> None:
        """Release the lease if still ours, and restart the record's time to live."""
        self._renewer.drop(owner)
        try:
            with self._failures("unlock"), self._guard:
                if self.ttl is None:
                    self._cursor.execute(DROP_LEASE, (conversation_id, owner))
                    return
                now = time.time()
                with self._transaction():
                    self._cursor.execute(DROP_LEASE, (conversation_id, owner))
                    self._cursor.execute(TOUCH, (now + self.ttl, conversation_id, now))
        except StoreUnavailableError as exc:
            log_unlock_failed(conversation_id, exc)

    def _save_and_release(self, record: ConversationRecord, expected: int, owner: str) -> None:
        """Save ``record`` and release the lease in one transaction, if the lease is ours."""
        self._renewer.drop(owner)
        conversation_id = record.conversation_id
        text = record.to_json()
        if self._closed:
            raise self._closed_error("save")
        cursor = self._cursor
        with self._guard:
            try:
                cursor.execute("BEGIN IMMEDIATE")
                try:
                    now = time.time()
                    if cursor.execute(DROP_LEASE, (conversation_id, owner)).rowcount != 1:
                        raise LockLostError(conversation_id, self.lock_timeout)
                    saved = self._write(record, text, expected, now)
                    found = None if saved else self._found(conversation_id, now)
                except BaseException:
                    self._connection.rollback()
                    raise
                self._connection.commit()
            except sqlite3.Error as exc:
                raise self._unavailable("save", exc) from exc
        if found is not None:
            raise ConflictError(conversation_id, expected, found)
        self._records.put(conversation_id, text, record)

    def _renew_leases(self, leases: Leases) -> list[str]:
        """Extend the leases still ours (the renewer's call); returns the tokens that were not."""
        lost = []
        with self._failures("renew locks"), self._guard:
            expires = time.time() + self.lock_timeout
            with self._transaction():
                for conversation_id, owner in leases:
                    renewed = (expires, conversation_id, owner)
                    if self._cursor.execute(RENEW_LEASE, renewed).rowcount != 1:
                        lost.append(owner)
        return lost

    def _timed_out(self, conversation_id: str) -> LockTimeoutError:
        return timed_out(conversation_id, self.lock_timeout, f"SQLiteStore {self.path!r}")

    # --- statements -----------------------------------------------------------------------

    def _write(
        self, record: ConversationRecord, text: str, expected_version: int, now: float
    ) -> bool:
        expires = None if self.ttl is None else now + self.ttl
        if expected_version == 0:
            cursor = self._cursor.execute(
                INSERT, (record.conversation_id, record.version, text, expires, now)
            )
        else:
            cursor = self._cursor.execute(
                UPDATE,
                (record.version, text, expires, record.conversation_id, expected_version, now),
            )
        return cursor.rowcount == 1

    def _found(self, conversation_id: str, now: float) -> int:
        rows = self._cursor.execute(FOUND_VERSION, (conversation_id, now)).fetchall()
        return int(rows[0][0]) if rows else 0

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._cursor.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._cursor.execute("ROLLBACK")
            raise
        self._cursor.execute("COMMIT")

    @contextmanager
    def _failures(self, action: str) -> Iterator[None]:
        """Turn sqlite3's errors into StoreUnavailableError with a message that says why."""
        if self._closed:
            raise self._closed_error(action)
        try:
            yield
        except sqlite3.Error as exc:
            raise self._unavailable(action, exc) from exc

    def _closed_error(self, action: str) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"SQLiteStore {self.path!r} was closed; cannot {action} (make a new store)"
        )

    def _unavailable(self, action: str, exc: sqlite3.Error) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"SQLiteStore {self.path!r} could not {action}: {_explain(exc, self.busy_timeout)}"
        )


def _explain(exc: sqlite3.Error, busy_timeout: float) -> str:
    """Why a statement failed, in words: the common causes named, others as sqlite3 put them."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        return (
            f"the file stayed locked by another connection for more than {busy_timeout} s ({text})"
        )
    if "readonly" in text or "read-only" in text:
        return f"the file or its folder is read-only ({text})"
    return f"{type(exc).__name__}: {text}"


class AsyncSQLiteStore(_SQLiteOptions, AsyncStore):
    """The asyncio twin of :class:`SQLiteStore`, with the same options and the same file format.

    The blocking SQLite work runs on the store's own worker thread (one, as the connection is
    one), so the event loop never waits on the file; waiting for a lock sleeps with
    ``asyncio.sleep``. Cancelling a task while it takes a lock leaves the lock free.
    """

    sync_twin = "SQLiteStore"
    _name: ClassVar[str] = "AsyncSQLiteStore"

    def _open(self) -> None:
        self._sync = SQLiteStore(
            self.path,
            lock_timeout=self.lock_timeout,
            ttl=self.ttl,
            busy_timeout=self.busy_timeout,
        )
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="assistant_flow-sqlite")

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

    def alock(self, conversation_id: str) -> AsyncLeaseLock:
        """Hold the conversation's lease for the ``async with`` block (across processes)."""
        return AsyncLeaseLock(self, conversation_id)

    def asession(self, conversation_id: str) -> AsyncLeasedSession:
        """One flow step; see :meth:`SQLiteStore.session`."""
        return AsyncLeasedSession(self, self, conversation_id)

    async def apurge_expired(self) -> int:
        """Delete expired records and lapsed leases now; see :meth:`SQLiteStore.purge_expired`."""
        return await self._run(self._sync.purge_expired)

    async def aclose(self) -> None:
        """Close the connection and stop the store's worker thread."""
        if not self._sync._closed:
            await self._run(self._sync.close)
        self._executor.shutdown(wait=False)

    async def _run(self, call: Callable[..., _T], *args: object) -> _T:
        return await asyncio.wrap_future(self._submit(call, *args))

    def _submit(self, call: Callable[..., _T], *args: object) -> Future[_T]:
        """Queue ``call`` on the store's thread; a closed store says so, by name."""
        try:
            return self._executor.submit(call, *args)
        except RuntimeError as exc:  # the thread was stopped by aclose
            raise StoreUnavailableError(
                f"AsyncSQLiteStore {self.path!r} was closed; cannot use it (make a new store)"
            ) from exc

    # --- the lease, for AsyncLeaseLock and AsyncLeasedSession -----------------------------

    async def _take(self, conversation_id: str, owner: str) -> _Taken:
        """Wait for the lease; if cancelled meanwhile, release what the thread took.

        Returns what taking it read (the record's text): loading costs no second trip to the
        store's thread.
        """
        store = self._sync
        backoff = Backoff(store.lock_timeout)
        while True:
            attempt = self._submit(store._try_lease, conversation_id, owner)
            try:
                taken = await asyncio.shield(asyncio.wrap_future(attempt))
            except asyncio.CancelledError:
                # The thread goes on and may take the lease after we gave up: give it back.
                # The callback is on the thread's own future, not the event loop's, so it
                # runs even when the loop closed meanwhile (a task cancelled as
                # ``asyncio.run`` ends).
                give_back = functools.partial(self._give_back, conversation_id, owner)
                attempt.add_done_callback(give_back)
                raise
            if taken is not None:
                return taken
            pause = backoff.next_pause()
            if pause is None:
                raise store._timed_out(conversation_id)
            await asyncio.sleep(pause)

    def _give_back(self, conversation_id: str, owner: str, attempt: Future[_Taken]) -> None:
        if attempt.cancelled() or attempt.exception() is not None or attempt.result() is None:
            return
        # Called on the worker thread (or here, if the attempt already ended): either way
        # the release is queued on the store's thread, which needs no event loop.
        with contextlib.suppress(RuntimeError):  # closed meanwhile: the lease lapses by itself
            self._executor.submit(self._sync._release, conversation_id, owner)

    async def _load_taken(self, conversation_id: str, taken: _Taken) -> ConversationRecord | None:
        # Decoded here, on the loop: a few microseconds, and usually a cache hit.
        return self._sync._load_taken(conversation_id, taken)

    async def _release(self, conversation_id: str, owner: str) -> None:
        # Run to its end even if the task is cancelled meanwhile, so the lease is not kept.
        try:
            done: Future[None] = self._submit(self._sync._release, conversation_id, owner)
        except StoreUnavailableError as exc:
            log_unlock_failed(conversation_id, exc)
            return
        await asyncio.shield(asyncio.wrap_future(done))

    async def _save_and_release(
        self, record: ConversationRecord, expected: int, owner: str
    ) -> None:
        # Shielded, so a task cancelled while the job waits for the store's thread does not
        # cancel the queued job: it runs, and drops the lease from the renewer either way.
        done: Future[None] = self._submit(self._sync._save_and_release, record, expected, owner)
        await asyncio.shield(asyncio.wrap_future(done))
