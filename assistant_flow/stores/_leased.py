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


def new_token() -> str:
    """A lease owner's token: unguessable, so no other worker can release or renew it."""
    return secrets.token_hex(16)


def log_unlock_failed(conversation_id: str, exc: StoreUnavailableError) -> None:
    """Log a release that failed, instead of raising it.

    The step already happened; failing it now would invite a duplicate send. The lease lapses
    by itself after the lock timeout.
    """
    get_logger().warning("unlock_failed", conversation_id=conversation_id, error=str(exc))


class _Lease(Generic[_L]):
    """A lease on one conversation, with the token that will own it."""

    __slots__ = ("_store", "_token", "conversation_id")

    def __init__(self, store: _L, conversation_id: str) -> None:
        self._store = store
        self.conversation_id = conversation_id
        self._token = new_token()


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
        super().__init__(store, conversation_id)
        self._leases = leases  # the same store, seen through its lease methods
        self._token = new_token()

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
        super().__init__(store, conversation_id)
        self._leases = leases  # the same store, seen through its lease methods
        self._token = new_token()

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
