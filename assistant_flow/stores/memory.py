"""The default store: records in a dict, locks per conversation, nothing persisted."""

from __future__ import annotations

import asyncio
import threading
import time
from types import TracebackType

from .._conversation import ConversationRecord
from .._exceptions import ConflictError, LockTimeoutError
from ._options import check_timeouts
from ._waiting import timed_out
from .base import AsyncStore, Store, StoreSession

__all__ = ["MemoryStore"]


class MemoryStore(Store, AsyncStore):
    """Keeps records in this process, for tests, scripts and single-process bots.

    Records are immutable, so the store keeps the objects themselves rather than their JSON.
    A lock exists only while some caller holds or waits for it, so idle conversations cost
    just their record. It serves ``Flow`` (thread locks) and ``AsyncFlow`` (asyncio locks);
    the two kinds of lock do not exclude each other, so drive one store from one of them.

    ``ttl`` (seconds, optional) forgets a conversation that long after its last save or the
    last release of its lock: it then loads as ``None`` and a save must expect version 0.
    """

    def __init__(self, *, lock_timeout: float = 10.0, ttl: float | None = None) -> None:
        check_timeouts("MemoryStore", lock_timeout, ttl)
        self.lock_timeout = lock_timeout
        self.ttl = ttl
        self._ttl = 0.0 if ttl is None else ttl
        self._records: dict[str, ConversationRecord] = {}
        # Monotonic deadlines, kept only when a ttl is set so the default store stays lean.
        self._deadlines: dict[str, float] | None = None if ttl is None else {}
        # Makes save's compare-and-set atomic when threads share the store.
        self._guard = threading.Lock()
        self._thread_locks: dict[str, _ThreadLock] = {}
        self._task_locks: dict[str, _TaskLock] = {}

    def __len__(self) -> int:
        """How many conversations are stored."""
        return len(self._records)

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._records)} conversations)"

    # --- Store --------------------------------------------------------------------------

    def load(self, conversation_id: str) -> ConversationRecord | None:
        """The stored record, or ``None``."""
        if self._deadlines is not None:
            with self._guard:
                self._forget_if_expired(conversation_id)
        return self._records.get(conversation_id)

    def save(self, record: ConversationRecord, *, expected_version: int) -> None:
        """Store ``record`` if the stored version is still ``expected_version``."""
        with self._guard:
            if self._deadlines is not None:
                self._forget_if_expired(record.conversation_id)
            self._save_guarded(record, expected_version)
            if self._deadlines is not None:
                self._deadlines[record.conversation_id] = time.monotonic() + self._ttl

    def _save_guarded(self, record: ConversationRecord, expected_version: int) -> None:
        # Called under the guard: the compare-and-set itself.
        conversation_id = record.conversation_id
        current = self._records.get(conversation_id)
        found = 0 if current is None else current.version
        if found != expected_version:
            raise ConflictError(conversation_id, expected_version, found)
        self._records[conversation_id] = record

    def delete(self, conversation_id: str) -> None:
        """Forget the conversation."""
        with self._guard:
            self._records.pop(conversation_id, None)
            if self._deadlines is not None:
                self._deadlines.pop(conversation_id, None)

    def purge_expired(self) -> int:
        """Drop every expired conversation now; returns how many. Loads drop them anyway."""
        if self._deadlines is None:
            return 0
        with self._guard:
            now = time.monotonic()
            expired = [cid for cid, deadline in self._deadlines.items() if deadline <= now]
            for conversation_id in expired:
                del self._deadlines[conversation_id]
                self._records.pop(conversation_id, None)
        return len(expired)

    def _forget_if_expired(self, conversation_id: str) -> None:
        # Called under the guard.
        deadlines = self._deadlines
        if deadlines is None:
            return
        deadline = deadlines.get(conversation_id)
        if deadline is not None and deadline <= time.monotonic():
            del deadlines[conversation_id]
            self._records.pop(conversation_id, None)

    def _touch(self, conversation_id: str) -> None:
        """Restart a live conversation's time to live (its lock was just released)."""
        with self._guard:
            self._forget_if_expired(conversation_id)
            if self._deadlines is not None and conversation_id in self._records:
                self._deadlines[conversation_id] = time.monotonic() + self._ttl

    def lock(self, conversation_id: str) -> _ThreadLock:
        """Hold the conversation's thread lock for the ``with`` block."""
        with self._guard:
            held = self._thread_locks.get(conversation_id)
            if held is None:
                held = self._thread_locks[conversation_id] = _ThreadLock(self, conversation_id)
            held.users += 1
        return held

    def session(self, conversation_id: str) -> StoreSession:
        """One flow step: lock and load, then save and unlock (see :meth:`Store.session`).

        The same steps as the default session, with the store's guard taken once on the way
        in and once on the way out (the save and the lock's bookkeeping share it): on an
        in-memory send the guard was a tenth of the cost. A subclass that overrides ``load``,
        ``save`` or ``lock`` gets the default session, which calls them.
        """
        cls = type(self)
        if (
            cls.save is not MemoryStore.save
            or cls.load is not MemoryStore.load
            or (cls.lock is not MemoryStore.lock)
        ):
            return StoreSession(self, conversation_id)
        return _MemorySession(self, conversation_id)

    # --- AsyncStore: nothing here waits, so the async twins are the sync methods ----------

    async def aload(self, conversation_id: str) -> ConversationRecord | None:
        """The stored record, or ``None``."""
        return self.load(conversation_id)

    async def asave(self, record: ConversationRecord, *, expected_version: int) -> None:
        """Store ``record`` if the stored version is still ``expected_version``."""
        self.save(record, expected_version=expected_version)

    async def adelete(self, conversation_id: str) -> None:
        """Forget the conversation."""
        self.delete(conversation_id)

    def alock(self, conversation_id: str) -> _TaskLock:
        """Hold the conversation's asyncio lock for the ``async with`` block."""
        held = self._task_locks.get(conversation_id)
        if held is None:
            held = self._task_locks[conversation_id] = _TaskLock(self, conversation_id)
        held.users += 1
        return held


class _MemorySession(StoreSession):
    """:meth:`MemoryStore.session`: one guard section to enter, one to leave."""

    __slots__ = ()
    _store: MemoryStore
    _lock: _ThreadLock | None

    def __enter__(self) -> _MemorySession:
        store = self._store
        held = store.lock(self.conversation_id)
        held.__enter__()
        self._lock = held
        self.record = store.load(self.conversation_id)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        held, self._lock = self._lock, None
        if held is None:
            return
        store = self._store
        pending = self._pending if exc_type is None else None
        if store._deadlines is not None:  # the ttl bookkeeping takes the slow path
            try:
                if pending is not None:
                    store.save(pending, expected_version=self.expected_version)
            finally:
                held.__exit__(exc_type, exc, traceback)
            return
        try:
            with store._guard:
                try:
                    if pending is not None:
                        store._save_guarded(pending, self.expected_version)
                finally:
                    held.users -= 1
                    if held.users == 0:
                        del store._thread_locks[held.conversation_id]
        finally:
            held._lock.release()


class _HeldLock:
    """What both kinds of per-conversation lock share: who uses it, and how it times out."""

    __slots__ = ("_store", "conversation_id", "users")

    def __init__(self, store: MemoryStore, conversation_id: str) -> None:
        self._store = store
        self.conversation_id = conversation_id
        self.users = 0  # holders and waiters; the entry is dropped when this reaches 0

    def _timed_out(self) -> LockTimeoutError:
        return timed_out(self.conversation_id, self._store.lock_timeout)


class _ThreadLock(_HeldLock):
    """One conversation's lock for threads, dropped from the store when nobody uses it."""

    __slots__ = ("_lock",)

    def __init__(self, store: MemoryStore, conversation_id: str) -> None:
        super().__init__(store, conversation_id)
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        if not self._lock.acquire(timeout=self._store.lock_timeout):
            self._leave()
            raise self._timed_out()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._lock.release()
        if self._store._deadlines is not None:
            self._store._touch(self.conversation_id)
        self._leave()

    def _leave(self) -> None:
        with self._store._guard:  # threads share the counter
            self.users -= 1
            if self.users == 0:
                del self._store._thread_locks[self.conversation_id]


class _TaskLock(_HeldLock):
    """One conversation's lock for asyncio tasks, dropped from the store when nobody uses it."""

    __slots__ = ("_lock",)

    def __init__(self, store: MemoryStore, conversation_id: str) -> None:
        super().__init__(store, conversation_id)
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> None:
        try:
            if self._lock.locked():
                async with asyncio.timeout(self._store.lock_timeout):
                    await self._lock.acquire()
            else:
                await self._lock.acquire()
        except TimeoutError:
            self._leave()
            raise self._timed_out() from None
        except BaseException:
            self._leave()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._lock.release()
        if self._store._deadlines is not None:
            self._store._touch(self.conversation_id)
        self._leave()

    def _leave(self) -> None:
        # Tasks of one event loop take turns, so the counter needs no guard.
        self.users -= 1
        if self.users == 0:
            del self._store._task_locks[self.conversation_id]
