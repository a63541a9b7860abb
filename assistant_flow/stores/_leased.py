"""Locks and flow-step sessions for stores whose lock is a lease owned by a random token.

The durable stores (Redis, SQLite) lock a conversation by writing a lease that names its
owner, so only the owner can release it, and a save can be fenced on it: refused once the
lease is no longer the saver's. What such a lock and session do around the lease is the same
for every store, and is written here once, over four methods each store provides:

* ``_take(id, token)``: wait for the lease (within the lock timeout) and start renewing it.
  Returns whatever the store got along the way, handed to ``_load_taken``: Redis loads the
  record in the same round trip; SQLite gets nothing and loads after.
* ``_load_taken(id, taken)``: the record, from what ``_take`` returned.
* ``_release(id, token)``: stop renewing and drop the lease if still ours. Never raises a
  store failure: the step already happened, and the lease lapses by itself.
* ``_save_and_release(record, expected, token)``: save fenced on the token and drop the lease,
  in one round trip or transaction where the store can.

The async stores provide the same four as coroutines. Why the session does not reuse the
default :class:`StoreSession` flow: that one composes a lock context manager (told the
exception on exit, released in a ``finally`` after any save), while a leased session saves and
releases in one fenced call and releases separately only when that call's outcome is unknown.
The state they hold (the loaded record, the staged one, the expected version) is shared.
"""

from __future__ import annotations

import itertools
import os
import secrets
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, Self, TypeVar

from .._conversation import ConversationRecord
from .._exceptions import ConflictError, LockLostError, StoreUnavailableError
from .._logging import get_logger
from .base import AsyncStoreSession, StoreSession

if TYPE_CHECKING:
    from .base import AsyncStore, Store

__all__ = [
    "AsyncLeaseLock",
    "AsyncLeasedSession",
    "AsyncLeasing",
    "LeaseLock",
    "LeasedSession",
    "Leasing",
    "RecordCache",
    "log_unlock_failed",
]


_L = TypeVar("_L")  # Leasing or AsyncLeasing


class Leasing(Protocol):
    """What a sync store provides for :class:`LeaseLock` and :class:`LeasedSession`.

    ``taken`` is whatever the store's ``_take`` returned, only ever handed back to the same
    store's ``_load_taken``; its type is the store's business, hence ``Any``.
    """

    def _take(self, conversation_id: str, token: str) -> Any: ...  # noqa: ANN401
    def _load_taken(self, conversation_id: str, taken: Any) -> ConversationRecord | None: ...  # noqa: ANN401
    def _release(self, conversation_id: str, token: str) -> None: ...
    def _save_and_release(self, record: ConversationRecord, expected: int, token: str) -> None: ...


class AsyncLeasing(Protocol):
    """What an async store provides for :class:`AsyncLeaseLock` and :class:`AsyncLeasedSession`."""

    async def _take(self, conversation_id: str, token: str) -> Any: ...  # noqa: ANN401
    async def _load_taken(self, conversation_id: str, taken: Any) -> ConversationRecord | None: ...  # noqa: ANN401
    async def _release(self, conversation_id: str, token: str) -> None: ...
    async def _save_and_release(
        self, record: ConversationRecord, expected: int, token: str
    ) -> None: ...


class _Tokens:
    """Lease owner tokens: a random prefix per process, and a counter.

    Unique across processes and machines (128 random bits each process) and within one, and
    unguessable by other workers, so no other worker can release or renew a lease; cheaper
    than drawing 16 random bytes from the OS for every step. A forked child draws its own
    prefix, so it never repeats its parent's tokens.
    """

    def __init__(self) -> None:
        self.renew()

    def renew(self) -> None:
        self.prefix = secrets.token_hex(16) + "."
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):x}"


_tokens = _Tokens()
if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_tokens.renew)


def new_token() -> str:
    """A lease owner's token: unique and unguessable (see :class:`_Tokens`)."""
    return _tokens.next()


def log_unlock_failed(conversation_id: str, exc: StoreUnavailableError) -> None:
    """Log a release that failed, instead of raising it.

    The step already happened; failing it now would invite a duplicate send. The lease lapses
    by itself after the lock timeout.
    """
    get_logger().warning("unlock_failed", conversation_id=conversation_id, error=str(exc))


_Raw = TypeVar("_Raw", str, bytes)


class RecordCache(Generic[_Raw]):
    """The records a durable store last read or wrote, each with the exact text stored.

    A step loads what this process's previous step on the conversation saved. When the text
    read back is, byte for byte, the text kept here, the kept record is returned instead of
    decoding the JSON again: a record read from its own JSON equals it (an invariant the tests
    hold: ``ConversationRecord.from_json(record.to_json()) == record``), and records are
    immutable. Any other text (another process saved, the record was edited or corrupted) is
    decoded as before. Bounded: at most ``size`` conversations, oldest use dropped first, and
    no text longer than ``max_text`` characters (a kept message's files).

    Each operation is one or two dict calls, atomic in CPython, so threads may share it.
    """

    __slots__ = ("_entries", "_max_text", "_size")

    def __init__(self, size: int = 1024, max_text: int = 8192) -> None:
        self._entries: dict[str, tuple[_Raw, ConversationRecord]] = {}
        self._size = size
        self._max_text = max_text

    def get(self, conversation_id: str, raw: _Raw) -> ConversationRecord | None:
        """The kept record if ``raw`` is exactly the text it was kept with, else ``None``."""
        entry = self._entries.get(conversation_id)
        if entry is not None and entry[0] == raw:
            return entry[1]
        return None

    def put(self, conversation_id: str, raw: _Raw, record: ConversationRecord) -> None:
        """Keep ``record``, stored as ``raw``, as the conversation's latest."""
        entries = self._entries
        entries.pop(conversation_id, None)  # re-inserted last: the most recent use
        if len(raw) > self._max_text:
            return
        if len(entries) >= self._size:
            entries.pop(next(iter(entries), ""), None)
        entries[conversation_id] = (raw, record)

    def forget(self, conversation_id: str) -> None:
        """Drop what is kept for the conversation (deleted)."""
        self._entries.pop(conversation_id, None)

    def clear(self) -> None:
        """Drop everything (a store closing, or a benchmark measuring cold loads)."""
        self._entries.clear()


class _Lease(Generic[_L]):
    """A lease on one conversation, with the token that will own it."""

    __slots__ = ("_store", "_token", "conversation_id")

    def __init__(self, store: _L, conversation_id: str) -> None:
        self._store = store
        self.conversation_id = conversation_id
        self._token = _tokens.next()


class LeaseLock(_Lease[Leasing]):
    """A conversation's lease for a ``with`` block: taken on entry, released on exit."""

    __slots__ = ()

    def __enter__(self) -> None:
        self._store._take(self.conversation_id, self._token)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._store._release(self.conversation_id, self._token)


class AsyncLeaseLock(_Lease[AsyncLeasing]):
    """A conversation's lease for an ``async with`` block; see :class:`LeaseLock`."""

    __slots__ = ()

    async def __aenter__(self) -> None:
        await self._store._take(self.conversation_id, self._token)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._store._release(self.conversation_id, self._token)


class LeasedSession(StoreSession):
    """A flow step on a leased store: take and load on entry; save and release on exit.

    Leaving with an exception, or with nothing staged, only releases. A save whose outcome is
    unknown (:class:`StoreUnavailableError`, or an interruption such as a cancelled task) is
    followed by a release attempt, which may fail too; the lease then lapses. A refused save
    (conflict, lost lease) already released.
    """

    __slots__ = ("_leases", "_token")

    def __init__(self, store: Store, leases: Leasing, conversation_id: str) -> None:
        # The base's attributes set here rather than through its __init__: one call less
        # on every step (see _Step).
        self._store = store
        self.conversation_id = conversation_id
        self.record = None
        self._pending = None
        self._lock = None
        self._leases = leases  # the same store, seen through its lease methods
        self._token = _tokens.next()

    def __enter__(self) -> Self:
        leases, conversation_id = self._leases, self.conversation_id
        taken = leases._take(conversation_id, self._token)
        try:
            self.record = leases._load_taken(conversation_id, taken)
        except BaseException:
            leases._release(conversation_id, self._token)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        leases, pending = self._leases, self._pending
        if exc_type is not None or pending is None:
            leases._release(self.conversation_id, self._token)
            return
        try:
            leases._save_and_release(pending, self.expected_version, self._token)
        except (ConflictError, LockLostError):
            raise  # refused: the store already released
        except BaseException:
            # Unknown outcome (the store failed, or an interrupt): release, so the lease is
            # neither kept nor renewed.
            leases._release(self.conversation_id, self._token)
            raise


class AsyncLeasedSession(AsyncStoreSession):
    """The asyncio twin of :class:`LeasedSession`."""

    __slots__ = ("_leases", "_token")

    def __init__(self, store: AsyncStore, leases: AsyncLeasing, conversation_id: str) -> None:
        self._store = store
        self.conversation_id = conversation_id
        self.record = None
        self._pending = None
        self._lock = None
        self._leases = leases  # the same store, seen through its lease methods
        self._token = _tokens.next()

    async def __aenter__(self) -> Self:
        leases, conversation_id = self._leases, self.conversation_id
        taken = await leases._take(conversation_id, self._token)
        try:
            self.record = await leases._load_taken(conversation_id, taken)
        except BaseException:
            await leases._release(conversation_id, self._token)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        leases, pending = self._leases, self._pending
        if exc_type is not None or pending is None:
            await leases._release(self.conversation_id, self._token)
            return
        try:
            await leases._save_and_release(pending, self.expected_version, self._token)
        except (ConflictError, LockLostError):
            raise  # refused: the store already released
        except BaseException:
            # Unknown outcome: the store failed, or the task was cancelled while the save
            # ran. Release, so the lease is neither kept nor renewed.
            await leases._release(self.conversation_id, self._token)
            raise
