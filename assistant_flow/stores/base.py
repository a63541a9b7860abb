"""The store seam: load, save with an expected version, delete, and a per-conversation lock.

A flow always takes the conversation's lock *before* loading its record and releases it after
saving, so two messages for one conversation are handled one after the other, each on the
record the other left. The expected version in :meth:`Store.save` is a second line of defence:
a save that would overwrite a record someone else saved meanwhile raises
:class:`ConflictError` instead.

A flow step goes through :meth:`Store.session` (:meth:`AsyncStore.asession`): lock and load on
entry, the new record staged with :meth:`StoreSession.save`, then saved and unlocked on exit.
The default session composes :meth:`Store.lock`, :meth:`Store.load` and :meth:`Store.save`; a
networked store overrides it to do lock-and-load in one round trip and save-and-unlock in
another.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from types import TracebackType
from typing import ClassVar, Generic, TypeVar

from .._conversation import ConversationRecord

__all__ = ["AsyncStore", "AsyncStoreSession", "Store", "StoreSession"]

_S = TypeVar("_S")


class Store(ABC):
    """Blocking storage for conversation records. Used by ``Flow``.

    Failures raise :class:`StoreError` subclasses; a missing record is not a failure.
    """

    async_twin: ClassVar[str | None] = None
    """The name of this store's async counterpart, quoted in configuration errors."""

    @abstractmethod
    def load(self, conversation_id: str) -> ConversationRecord | None:
        """The stored record, or ``None`` if the conversation has none yet."""

    @abstractmethod
    def save(self, record: ConversationRecord, *, expected_version: int) -> None:
        """Store ``record`` if the stored version is ``expected_version`` (0: none stored).

        Raises :class:`ConflictError` otherwise, leaving the stored record untouched.
        """

    @abstractmethod
    def delete(self, conversation_id: str) -> None:
        """Forget the conversation; deleting an unknown one is not an error."""

    @abstractmethod
    def lock(self, conversation_id: str) -> AbstractContextManager[None]:
        """Hold the conversation's lock for the ``with`` block.

        Raises :class:`LockTimeoutError` if it cannot be taken in the store's lock timeout.
        """

    def session(self, conversation_id: str) -> StoreSession:
        """One flow step on the conversation: ``with store.session(id) as held: ...``.

        Entering takes the lock and loads the record (``held.record``); ``held.save(record)``
        stages the new record; leaving without an exception saves it (expecting the loaded
        version) and releases the lock. Leaving with an exception saves nothing.
        """
        return StoreSession(self, conversation_id)

    def close(self) -> None:  # noqa: B027 - deliberately empty: nothing to release by default
        """Release connections or files the store opened. The default holds none."""


class AsyncStore(ABC):
    """Non-blocking storage for conversation records. Used by ``AsyncFlow``."""

    sync_twin: ClassVar[str | None] = None
    """The name of this store's sync counterpart, quoted in configuration errors."""

    @abstractmethod
    async def aload(self, conversation_id: str) -> ConversationRecord | None:
        """The stored record, or ``None`` if the conversation has none yet."""

    @abstractmethod
    async def asave(self, record: ConversationRecord, *, expected_version: int) -> None:
        """Store ``record`` if the stored version is ``expected_version`` (0: none stored)."""

    @abstractmethod
    async def adelete(self, conversation_id: str) -> None:
        """Forget the conversation; deleting an unknown one is not an error."""

    @abstractmethod
    def alock(self, conversation_id: str) -> AbstractAsyncContextManager[None]:
        """Hold the conversation's lock for the ``async with`` block."""

    def asession(self, conversation_id: str) -> AsyncStoreSession:
        """One flow step on the conversation; see :meth:`Store.session`."""
        return AsyncStoreSession(self, conversation_id)

    async def aclose(self) -> None:  # noqa: B027 - deliberately empty, as Store.close
        """Release connections or files the store opened. The default holds none."""


class _Step(Generic[_S]):
    """What a flow step holds, sync or async: the loaded record and the one staged to save.

    The sessions set these attributes in their own ``__init__``: a call to a shared one
    would be paid on every send (a measurable part of a MemoryStore send).
    """

    __slots__ = ("_lock", "_pending", "_store", "conversation_id", "record")
    _store: _S
    conversation_id: str
    record: ConversationRecord | None
    """The record loaded on entry, or ``None`` if the conversation has none yet."""
    _pending: ConversationRecord | None

    def save(self, record: ConversationRecord) -> None:
        """Stage ``record``; it is saved when the block ends without an exception."""
        self._pending = record

    @property
    def expected_version(self) -> int:
        """The version the save expects to replace: the loaded one (0: none was stored)."""
        return 0 if self.record is None else self.record.version


class StoreSession(_Step[Store]):
    """A conversation locked and loaded for one flow step; see :meth:`Store.session`.

    This default composes the store's ``lock``, ``load`` and ``save``. Stores that can do
    better (fewer round trips) subclass it and return their subclass from ``session``.
    """

    __slots__ = ()
    _lock: AbstractContextManager[None] | None

    def __init__(self, store: Store, conversation_id: str) -> None:
        self._store = store
        self.conversation_id = conversation_id
        self.record = None
        self._pending = None
        self._lock = None

    def __enter__(self) -> StoreSession:
        lock = self._store.lock(self.conversation_id)
        lock.__enter__()
        try:
            self.record = self._store.load(self.conversation_id)
        except BaseException as exc:
            lock.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._lock = lock
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        lock, self._lock = self._lock, None
        try:
            if exc_type is None and self._pending is not None:
                self._store.save(self._pending, expected_version=self.expected_version)
        finally:
            if lock is not None:
                lock.__exit__(exc_type, exc, traceback)


class AsyncStoreSession(_Step[AsyncStore]):
    """The asyncio twin of :class:`StoreSession`: ``async with store.asession(id) as held``."""

    __slots__ = ()
    _lock: AbstractAsyncContextManager[None] | None

    def __init__(self, store: AsyncStore, conversation_id: str) -> None:
        self._store = store
        self.conversation_id = conversation_id
        self.record = None
        self._pending = None
        self._lock = None

    async def __aenter__(self) -> AsyncStoreSession:
        lock = self._store.alock(self.conversation_id)
        await lock.__aenter__()
        try:
            self.record = await self._store.aload(self.conversation_id)
        except BaseException as exc:
            await lock.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        self._lock = lock
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        lock, self._lock = self._lock, None
        try:
            if exc_type is None and self._pending is not None:
                await self._store.asave(self._pending, expected_version=self.expected_version)
        finally:
            if lock is not None:
                await lock.__aexit__(exc_type, exc, traceback)
