"""RedisStore: conversations in Redis, shared by worker processes on any number of machines.

Needs ``redis-py`` (``pip install 'assistant_flow[redis]'``); ``import assistant_flow`` works
without it, and only using these classes imports it.

Keys, for a conversation ``c`` and the default prefix: ``assistant_flow:{c}`` holds the JSON
record (never pickle) and ``assistant_flow:{c}:lock`` the lock's owner token. The braces keep
both keys in one Redis Cluster slot, so the scripts below may touch both.

A flow step costs two round trips, each one Lua script run atomically by Redis:

* lock and load: take the lock (``PX`` lease) if it is free, and if so ``GET record``;
  otherwise the lock's remaining time, so the caller knows how long to wait;
* save and unlock: refuse if the lock is no longer this caller's; otherwise compare the stored
  record's version with the expected one, write the new record (``PX`` ttl when a time to
  live is set) if they match, and delete the lock. A step that changed nothing just unlocks
  (and restarts the record's time to live).

Both scripts are idempotent: run twice (redis-py retries a command whose connection dropped),
the second run sees the lock already holds this caller's token, or the record already is the
one being saved, and reports the same success.

While a step holds the lock, the store's renewer (a daemon thread, or an asyncio task for
:class:`AsyncRedisStore`) extends it every third of ``lock_timeout``, checking the token, so a
slow send keeps it. A worker that dies stops renewing: its conversation is blocked no longer
than ``lock_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self

import redis
import redis.asyncio
from redis.exceptions import RedisError

from .._conversation import MAX_VERSION, ConversationRecord
from .._exceptions import (
    ConflictError,
    CorruptRecordError,
    LockLostError,
    LockTimeoutError,
    StoreUnavailableError,
)
from .._logging import get_logger
from ._options import check_timeouts
from ._renewal import AsyncRenewer, Leases, Renewer
from ._waiting import Backoff
from .base import AsyncStore, AsyncStoreSession, Store, StoreSession

__all__ = ["AsyncRedisStore", "RedisStore"]

DEFAULT_PREFIX = "assistant_flow:"

# KEYS: lock, record. ARGV: owner token, lease ms.
# Returns {1, record or false} when the lock is ours (taken now, or by an earlier run of this
# same call that redis-py retried), {0, lock's remaining ms} otherwise.
_LOCK_AND_LOAD = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  return {1, redis.call('GET', KEYS[2])}
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, redis.call('GET', KEYS[2])}
end
return {0, redis.call('PTTL', KEYS[1])}
"""

# KEYS: lock, record. ARGV: owner token ('' when no lock is held), expected version,
# record JSON, ttl ms (0: none). Returns {status, version found (-1: unreadable)} with status
# 1 saved, 0 refused (another version), 2 refused (the lock is not the caller's any more).
# A record already equal to ARGV[3] was saved by an earlier run of this call: success again.
# Versions are compared below 2^53, where Lua's doubles hold integers exactly.
_SAVE_AND_UNLOCK = """
local current = redis.call('GET', KEYS[2])
local ours = ARGV[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1]
if current == ARGV[3] then
  if ours then redis.call('DEL', KEYS[1]) end
  return {1, 0}
end
if ARGV[1] ~= '' and not ours then
  return {2, 0}
end
local found = 0
if current then
  local ok, doc = pcall(cjson.decode, current)
  local version = ok and type(doc) == 'table' and doc['version']
  if type(version) == 'number' and version >= 0 and version <= tonumber(ARGV[5])
     and version == math.floor(version) then
    found = version
  else
    found = -1
  end
end
local saved = 0
if found == tonumber(ARGV[2]) then
  if tonumber(ARGV[4]) > 0 then
    redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
  else
    redis.call('SET', KEYS[2], ARGV[3])
  end
  saved = 1
end
if ours then redis.call('DEL', KEYS[1]) end
return {saved, found}
"""

# KEYS: lock, record. ARGV: owner token, ttl ms (0: none). Deletes the lock if it is ours and
# restarts the record's time to live.
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if tonumber(ARGV[2]) > 0 then
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
  end
  return 1
end
return 0
"""

# KEYS: lock. ARGV: owner token, lease ms. Extends the lease if it is still ours (1), else 0.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_SAVED, _LOCK_LOST = 1, 2


class _RedisStoreBase:
    """What the sync and async stores share: options, key names, scripts, replies, errors."""

    def __init__(
        self,
        name: str,
        client: Any,  # noqa: ANN401 - a redis.Redis or a redis.asyncio.Redis
        lock_timeout: float,
        ttl: float | None,
        prefix: str,
    ) -> None:
        check_timeouts(name, lock_timeout, ttl)
        self.lock_timeout = lock_timeout
        self.ttl = ttl
        self.prefix = prefix
        self._owns_client = False
        self._lease_ms = max(1, round(lock_timeout * 1000))
        self._ttl_ms = 0 if ttl is None else max(1, round(ttl * 1000))
        self._where = _describe(client)
        self._lock_and_load = client.register_script(_LOCK_AND_LOAD)
        self._save_and_unlock = client.register_script(_SAVE_AND_UNLOCK)
        self._unlock = client.register_script(_UNLOCK)
        self._renew = client.register_script(_RENEW)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._where}, prefix={self.prefix!r})"

    def _keys(self, conversation_id: str) -> list[str]:
        record = f"{self.prefix}{{{conversation_id}}}"
        return [f"{record}:lock", record]

    def _save_args(self, token: str, expected: int, record: ConversationRecord) -> list[Any]:
        return [token, expected, record.to_json(), self._ttl_ms, MAX_VERSION]

    def _timed_out(self, conversation_id: str) -> LockTimeoutError:
        return LockTimeoutError(
            f"conversation {conversation_id!r} stayed locked for more than "
            f"{self.lock_timeout} s (Redis at {self._where})"
        )

    def _unavailable(self, action: str, exc: RedisError) -> StoreUnavailableError:
        if isinstance(exc, redis.AuthenticationError):
            why = f"Redis at {self._where} refused the credentials in the URL or client"
            after = "Nothing was written"
        elif isinstance(exc, redis.ConnectionError | redis.TimeoutError):
            if _before_sending(exc):
                why = f"Redis at {self._where} is unreachable"
                after = "Nothing was written; try again once Redis is back"
            else:
                why = (
                    f"Redis at {self._where} became unreachable (a timeout or a dropped "
                    "connection) after the command was sent"
                )
                # The command may have run: a save may be stored, a lock may be held (until
                # its lease lapses). The scripts are idempotent, so repeating is safe.
                after = f"The outcome is unknown: the {action} may or may not have happened"
        else:
            why = f"Redis at {self._where} refused the command"
            after = "Nothing was written"
        return StoreUnavailableError(
            f"could not {action} the conversation: {why} ({type(exc).__name__}). {after}."
        )

    @contextmanager
    def _failures(self, action: str) -> Iterator[None]:
        try:
            yield
        except RedisError as exc:
            raise self._unavailable(action, exc) from exc

    def _decode(self, conversation_id: str, raw: bytes | str | None) -> ConversationRecord | None:
        if raw is None:
            return None
        record = ConversationRecord.from_json(raw)
        if record.conversation_id != conversation_id:
            raise CorruptRecordError(
                f"the record under conversation {conversation_id!r} belongs to "
                f"{record.conversation_id!r}"
            )
        return record

    def _check_saved(
        self, record: ConversationRecord, expected_version: int, reply: Sequence[int]
    ) -> None:
        status, found = int(reply[0]), int(reply[1])
        if status == _SAVED:
            return
        if status == _LOCK_LOST:
            raise LockLostError(record.conversation_id, self.lock_timeout)
        if found < 0:
            raise CorruptRecordError(
                f"conversation {record.conversation_id!r}: the stored record is not a "
                "conversation record this version can compare; it was left as it was"
            )
        raise ConflictError(record.conversation_id, expected_version, found)

    def _lock_log(self, conversation_id: str, exc: StoreUnavailableError) -> None:
        # The step already happened; failing it now would invite a duplicate send. The lock
        # lapses by itself after lock_timeout.
        get_logger().warning("unlock_failed", conversation_id=conversation_id, error=str(exc))


def _before_sending(exc: RedisError) -> bool:
    """Whether redis-py failed while connecting, so no command reached Redis."""
    text = str(exc)
    return "connecting to" in text or "Timeout connecting" in text


def _describe(client: object) -> str:
    """Where the client connects, for reprs and errors: host, port and db, never a password."""
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if not isinstance(kwargs, dict):
        return type(client).__name__
    if "path" in kwargs:
        return f"unix:{kwargs['path']} db {kwargs.get('db', 0)}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)} db {kwargs.get('db', 0)}"


def _held_for(held_ms: int) -> float:
    return held_ms / 1000


class RedisStore(_RedisStoreBase, Store):
    """Keeps conversations in Redis; any number of worker processes and machines share them.

    Pass a ``redis.Redis`` client, or use :meth:`from_url`. The client must return bytes or
    strings as it likes (``decode_responses`` either way). ``lock_timeout`` bounds how long a
    step waits for a conversation's lock, and how long a lock outlives a worker that died
    holding it (a live worker's lock is renewed while its step runs). ``ttl`` (seconds,
    optional, at least ``lock_timeout``) forgets a conversation that long after its last save
    or step. ``prefix`` starts every key.

    Redis failures raise :class:`StoreUnavailableError`; redis-py's own retries (see its
    ``retry`` option) happen first, which the idempotent scripts make safe.
    """

    async_twin = "AsyncRedisStore"

    def __init__(
        self,
        client: redis.Redis,
        *,
        lock_timeout: float = 10.0,
        ttl: float | None = None,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        super().__init__("RedisStore", client, lock_timeout, ttl, prefix)
        self.client = client
        self._renewer = Renewer(lock_timeout, self._renew_leases)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        lock_timeout: float = 10.0,
        ttl: float | None = None,
        prefix: str = DEFAULT_PREFIX,
        **client_options: Any,  # noqa: ANN401 - passed on to redis-py as they are
    ) -> Self:
        """A store on a new client for ``url`` (``redis://[:password@]host:port/db``).

        ``client_options`` go to ``redis.Redis.from_url``. The store closes this client in
        :meth:`close`. The password is never shown in the store's repr or errors.
        """
        client = redis.Redis.from_url(url, **client_options)
        store = cls(client, lock_timeout=lock_timeout, ttl=ttl, prefix=prefix)
        store._owns_client = True
        return store

    # --- Store --------------------------------------------------------------------------

    def load(self, conversation_id: str) -> ConversationRecord | None:
        """The stored record, or ``None`` (also once it expired)."""
        with self._failures("load"):
            raw = self.client.get(self._keys(conversation_id)[1])
        return self._decode(conversation_id, raw)

    def save(self, record: ConversationRecord, *, expected_version: int) -> None:
        """Store ``record`` if the stored version is still ``expected_version`` (one script)."""
        with self._failures("save"):
            reply = self._save_and_unlock(
                keys=self._keys(record.conversation_id),
                args=self._save_args("", expected_version, record),
            )
        self._check_saved(record, expected_version, reply)

    def delete(self, conversation_id: str) -> None:
        """Forget the conversation."""
        with self._failures("delete"):
            self.client.delete(self._keys(conversation_id)[1])

    def lock(self, conversation_id: str) -> _Lock:
        """Hold the conversation's lock for the ``with`` block (a token with a lease)."""
        return _Lock(self, conversation_id)

    def session(self, conversation_id: str) -> _Session:
        """One flow step in two round trips: lock-and-load, then save-and-unlock."""
        return _Session(self, conversation_id)

    def close(self) -> None:
        """Stop renewing; close the client if :meth:`from_url` made it (one you passed stays)."""
        self._renewer.close()
        if self._owns_client:
            self.client.close()

    # --- used by _Lock and _Session -----------------------------------------------------

    def _acquire(self, conversation_id: str, token: str) -> bytes | str | None:
        """Wait for the lock (within lock_timeout) and return the record's JSON."""
        keys = self._keys(conversation_id)
        backoff = Backoff(self.lock_timeout)
        while True:
            try:
                with self._failures("lock"):
                    taken, detail = self._lock_and_load(keys=keys, args=[token, self._lease_ms])
            except StoreUnavailableError:
                self._release(conversation_id, token)  # in case the script ran after all
                raise
            if taken:
                self._renewer.hold(conversation_id, token)
                return detail  # type: ignore[no-any-return]
            pause = backoff.next_pause(_held_for(int(detail)))
            if pause is None:
                raise self._timed_out(conversation_id)
            time.sleep(pause)

    def _release(self, conversation_id: str, token: str) -> None:
        self._renewer.drop(token)
        try:
            with self._failures("unlock"):
                self._unlock(keys=self._keys(conversation_id), args=[token, self._ttl_ms])
        except StoreUnavailableError as exc:
            self._lock_log(conversation_id, exc)

    def _save_and_release(self, record: ConversationRecord, expected: int, token: str) -> None:
        self._renewer.drop(token)
        try:
            with self._failures("save"):
                reply = self._save_and_unlock(
                    keys=self._keys(record.conversation_id),
                    args=self._save_args(token, expected, record),
                )
        except StoreUnavailableError:
            self._release(record.conversation_id, token)
            raise
        self._check_saved(record, expected, reply)

    def _renew_leases(self, leases: Leases) -> list[str]:
        lost = []
        with self._failures("renew locks"):
            for conversation_id, token in leases:
                keys = self._keys(conversation_id)[:1]
                if not self._renew(keys=keys, args=[token, self._lease_ms]):
                    lost.append(token)
        return lost


class _Lock:
    """A conversation's Redis lock for a ``with`` block."""

    __slots__ = ("_store", "_token", "conversation_id")

    def __init__(self, store: RedisStore, conversation_id: str) -> None:
        self._store = store
        self.conversation_id = conversation_id
        self._token = secrets.token_hex(16)

    def __enter__(self) -> None:
        self._store._acquire(self.conversation_id, self._token)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._store._release(self.conversation_id, self._token)


class _Session(StoreSession):
    """RedisStore's flow step: lock-and-load on entry, save-and-unlock (or unlock) on exit."""

    __slots__ = ("_token",)
    _store: RedisStore

    def __init__(self, store: RedisStore, conversation_id: str) -> None:
        super().__init__(store, conversation_id)
        self._token = secrets.token_hex(16)

    def __enter__(self) -> _Session:
        store, conversation_id = self._store, self.conversation_id
        raw = store._acquire(conversation_id, self._token)
        try:
            self.record = store._decode(conversation_id, raw)
        except BaseException:
            store._release(conversation_id, self._token)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        pending = self._pending
        if exc_type is not None or pending is None:
            self._store._release(self.conversation_id, self._token)
        else:
            self._store._save_and_release(pending, self.expected_version, self._token)


class AsyncRedisStore(_RedisStoreBase, AsyncStore):
    """The asyncio twin of :class:`RedisStore` (``redis.asyncio``), with the same keys.

    Sync and async workers may share one Redis: the keys, scripts and locks are the same.
    Cancelling a task while it takes a lock gives the lock back.
    """

    sync_twin = "RedisStore"

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        lock_timeout: float = 10.0,
        ttl: float | None = None,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        super().__init__("AsyncRedisStore", client, lock_timeout, ttl, prefix)
        self.client = client
        self._renewer = AsyncRenewer(lock_timeout, self._renew_leases)
        # Releases fired on cancellation: kept referenced until they finish.
        self._background: set[asyncio.Task[None]] = set()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        lock_timeout: float = 10.0,
        ttl: float | None = None,
        prefix: str = DEFAULT_PREFIX,
        **client_options: Any,  # noqa: ANN401 - passed on to redis-py as they are
    ) -> Self:
        """A store on a new ``redis.asyncio`` client; see :meth:`RedisStore.from_url`."""
        client = redis.asyncio.Redis.from_url(url, **client_options)
        store = cls(client, lock_timeout=lock_timeout, ttl=ttl, prefix=prefix)
        store._owns_client = True
        return store

    async def aload(self, conversation_id: str) -> ConversationRecord | None:
        """The stored record, or ``None`` (also once it expired)."""
        with self._failures("load"):
            raw = await self.client.get(self._keys(conversation_id)[1])
        return self._decode(conversation_id, raw)

    async def asave(self, record: ConversationRecord, *, expected_version: int) -> None:
        """Store ``record`` if the stored version is still ``expected_version`` (one script)."""
        with self._failures("save"):
            reply = await self._save_and_unlock(
                keys=self._keys(record.conversation_id),
                args=self._save_args("", expected_version, record),
            )
        self._check_saved(record, expected_version, reply)

    async def adelete(self, conversation_id: str) -> None:
        """Forget the conversation."""
        with self._failures("delete"):
            await self.client.delete(self._keys(conversation_id)[1])

    def alock(self, conversation_id: str) -> _AsyncLock:
        """Hold the conversation's lock for the ``async with`` block."""
        return _AsyncLock(self, conversation_id)

    def asession(self, conversation_id: str) -> _AsyncSession:
        """One flow step in two round trips: lock-and-load, then save-and-unlock."""
        return _AsyncSession(self, conversation_id)

    async def aclose(self) -> None:
        """Stop renewing; close the client if :meth:`from_url` made it."""
        await self._renewer.aclose()
        if self._background:
            await asyncio.wait(self._background)
        if self._owns_client:
            await self.client.aclose()

    async def _acquire(self, conversation_id: str, token: str) -> bytes | str | None:
        keys = self._keys(conversation_id)
        backoff = Backoff(self.lock_timeout)
        current = asyncio.current_task()
        cancels = 0 if current is None else current.cancelling()
        while True:
            try:
                with self._failures("lock"):
                    taken, detail = await self._lock_and_load(
                        keys=keys, args=[token, self._lease_ms]
                    )
            except asyncio.CancelledError:
                # The script may still run after the client gave up on it.
                await self._give_back(conversation_id, token)
                raise
            except StoreUnavailableError:
                await self._release(conversation_id, token)
                raise
            if current is not None and current.cancelling() > cancels:
                # redis-py (8.1 at least) may finish the command and swallow the task's
                # cancellation: honour it here, without keeping the lock.
                await self._give_back(conversation_id, token)
                raise asyncio.CancelledError
            if taken:
                self._renewer.hold(conversation_id, token)
                return detail  # type: ignore[no-any-return]
            pause = backoff.next_pause(_held_for(int(detail)))
            if pause is None:
                raise self._timed_out(conversation_id)
            await asyncio.sleep(pause)

    async def _give_back(self, conversation_id: str, token: str) -> None:
        """Release the lock for a cancelled caller, from a task its cancellation spares.

        Waits for the release unless cancelled again; the task then finishes on its own.
        """
        task = asyncio.get_running_loop().create_task(self._release(conversation_id, token))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)

    async def _release(self, conversation_id: str, token: str) -> None:
        self._renewer.drop(token)
        try:
            with self._failures("unlock"):
                await self._unlock(keys=self._keys(conversation_id), args=[token, self._ttl_ms])
        except StoreUnavailableError as exc:
            self._lock_log(conversation_id, exc)

    async def _save_and_release(
        self, record: ConversationRecord, expected: int, token: str
    ) -> None:
        self._renewer.drop(token)
        try:
            with self._failures("save"):
                reply = await self._save_and_unlock(
                    keys=self._keys(record.conversation_id),
                    args=self._save_args(token, expected, record),
                )
        except StoreUnavailableError:
            await self._release(record.conversation_id, token)
            raise
        self._check_saved(record, expected, reply)

    async def _renew_leases(self, leases: Leases) -> list[str]:
        lost = []
        with self._failures("renew locks"):
            for conversation_id, token in leases:
                keys = self._keys(conversation_id)[:1]
                if not await self._renew(keys=keys, args=[token, self._lease_ms]):
                    lost.append(token)
        return lost


class _AsyncLock:
    """A conversation's Redis lock for an ``async with`` block."""

    __slots__ = ("_store", "_token", "conversation_id")

    def __init__(self, store: AsyncRedisStore, conversation_id: str) -> None:
        self._store = store
        self.conversation_id = conversation_id
        self._token = secrets.token_hex(16)

    async def __aenter__(self) -> None:
        await self._store._acquire(self.conversation_id, self._token)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._store._release(self.conversation_id, self._token)


class _AsyncSession(AsyncStoreSession):
    """AsyncRedisStore's flow step: lock-and-load, then save-and-unlock (or unlock)."""

    __slots__ = ("_token",)
    _store: AsyncRedisStore

    def __init__(self, store: AsyncRedisStore, conversation_id: str) -> None:
        super().__init__(store, conversation_id)
        self._token = secrets.token_hex(16)

    async def __aenter__(self) -> _AsyncSession:
        store, conversation_id = self._store, self.conversation_id
        raw = await store._acquire(conversation_id, self._token)
        try:
            self.record = store._decode(conversation_id, raw)
        except BaseException:
            await store._release(conversation_id, self._token)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        pending = self._pending
        if exc_type is not None or pending is None:
            await self._store._release(self.conversation_id, self._token)
        else:
            await self._store._save_and_release(pending, self.expected_version, self._token)
