"""RedisStore: conversations in Redis, shared by worker processes on any number of machines.

Needs ``redis-py`` (``pip install 'assistant_flow[redis]'``); ``import assistant_flow`` works
without it, and only using these classes imports it.

Keys, for a conversation ``c`` and the default prefix: ``assistant_flow:{c}`` holds the JSON
record (never pickle) and ``assistant_flow:{c}:lock`` the lock's owner token. The braces keep
both keys in one Redis Cluster slot, so the scripts below may touch both.

A flow step costs two round trips, each one Lua script run atomically by Redis:

* lock and load: ``SET lock token NX PX lease``, and if that took the lock, ``GET record``;
  otherwise the lock's remaining time, so the caller knows how long to wait;
* save and unlock: compare the stored record's version with the expected one, write the new
  record (``PX`` ttl when a time to live is set) if they match, then delete the lock only if
  it still holds this caller's token. A step that changed nothing just unlocks (and restarts
  the record's time to live).

The lock lapses ``lock_timeout`` after it was taken, so a worker that died holding it blocks
its conversation no longer than that; the version check stops a holder whose lock lapsed from
overwriting the next holder's record.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self

import redis
import redis.asyncio
from redis.exceptions import RedisError

from .._conversation import ConversationRecord
from .._exceptions import (
    ConflictError,
    CorruptRecordError,
    LockTimeoutError,
    StoreUnavailableError,
)
from .._logging import get_logger
from ._options import check_timeouts
from .base import AsyncStore, AsyncStoreSession, Store, StoreSession

__all__ = ["AsyncRedisStore", "RedisStore"]

DEFAULT_PREFIX = "assistant_flow:"

# KEYS: lock, record. ARGV: owner token, lease ms.
# Returns {1, record or false} when the lock was taken, {0, lock's remaining ms} otherwise.
_LOCK_AND_LOAD = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('GET', KEYS[2])}
end
return {0, redis.call('PTTL', KEYS[1])}
"""

# KEYS: lock, record. ARGV: owner token ('' when no lock is held), expected version,
# record JSON, ttl ms (0: none). Returns {1 saved or 0 refused, version found (-1: unreadable)}.
# The lock is released either way.
_SAVE_AND_UNLOCK = """
local found = 0
local current = redis.call('GET', KEYS[2])
if current then
  local ok, doc = pcall(cjson.decode, current)
  if ok and type(doc) == 'table' and type(doc['version']) == 'number' then
    found = doc['version']
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
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
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

# Waiting for a held lock: never sleep past its expiry, never longer than this at once.
_MAX_POLL = 0.05


class _RedisKeys:
    """What the sync and async stores share: options, key names, error messages."""

    def __init__(
        self, name: str, client: object, lock_timeout: float, ttl: float | None, prefix: str
    ) -> None:
        check_timeouts(name, lock_timeout, ttl)
        self.lock_timeout = lock_timeout
        self.ttl = ttl
        self.prefix = prefix
        self._lease_ms = max(1, round(lock_timeout * 1000))
        self._ttl_ms = 0 if ttl is None else max(1, round(ttl * 1000))
        self._where = _describe(client)

    def _keys(self, conversation_id: str) -> list[str]:
        record = f"{self.prefix}{{{conversation_id}}}"
        return [f"{record}:lock", record]

    def _timed_out(self, conversation_id: str) -> LockTimeoutError:
        return LockTimeoutError(
            f"conversation {conversation_id!r} stayed locked for more than "
            f"{self.lock_timeout} s (Redis at {self._where})"
        )

    def _unavailable(self, action: str, exc: RedisError) -> StoreUnavailableError:
        if isinstance(exc, redis.AuthenticationError):
            why = f"Redis at {self._where} refused the credentials in the URL or client"
        elif isinstance(exc, redis.ConnectionError | redis.TimeoutError):
            why = f"Redis at {self._where} is unreachable or dropped the connection"
        else:
            why = f"Redis at {self._where} refused the command"
        return StoreUnavailableError(
            f"could not {action} the conversation: {why} ({type(exc).__name__}). "
            "Nothing was half-written; try again once Redis is back."
        )

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
        saved, found = int(reply[0]), int(reply[1])
        if saved:
            return
        if found < 0:
            raise CorruptRecordError(
                f"conversation {record.conversation_id!r}: the stored record is not a "
                "conversation record; it was left as it was"
            )
        raise ConflictError(record.conversation_id, expected_version, found)


def _describe(client: object) -> str:
    """Where the client connects, for reprs and errors: host, port and db, never a password."""
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if not isinstance(kwargs, dict):
        return type(client).__name__
    if "path" in kwargs:
        return f"unix:{kwargs['path']} db {kwargs.get('db', 0)}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)} db {kwargs.get('db', 0)}"


class RedisStore(_RedisKeys, Store):
    """Keeps conversations in Redis; any number of worker processes and machines share them.

    Pass a ``redis.Redis`` client, or use :meth:`from_url`. The client must return bytes or
    strings as it likes (``decode_responses`` either way). ``lock_timeout`` bounds both how
    long a step waits for a conversation's lock and how long a lock lasts. ``ttl`` (seconds,
    optional) forgets a conversation that long after its last save or step. ``prefix`` starts
    every key.

    Redis failures raise :class:`StoreUnavailableError`; redis-py's own retries (see its
    ``retry`` option) happen first.
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
        self._owns_client = False
        self._lock_and_load = client.register_script(_LOCK_AND_LOAD)
        self._save_and_unlock = client.register_script(_SAVE_AND_UNLOCK)
        self._unlock = client.register_script(_UNLOCK)

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
        store = cls(
            redis.Redis.from_url(url, **client_options),
            lock_timeout=lock_timeout,
            ttl=ttl,
            prefix=prefix,
        )
        store._owns_client = True
        return store

    def __repr__(self) -> str:
        return f"RedisStore({self._where}, prefix={self.prefix!r})"

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
                args=["", expected_version, record.to_json(), self._ttl_ms],
            )
        self._check_saved(record, expected_version, reply)

    def delete(self, conversation_id: str) -> None:
        """Forget the conversation."""
        with self._failures("delete"):
            self.client.delete(self._keys(conversation_id)[1])

    def lock(self, conversation_id: str) -> _Lock:
        """Hold the conversation's lock for the ``with`` block (``SET NX PX`` with a token)."""
        return _Lock(self, conversation_id)

    def session(self, conversation_id: str) -> _Session:
        """One flow step in two round trips: lock-and-load, then save-and-unlock."""
        return _Session(self, conversation_id)

    def close(self) -> None:
        """Close the client if :meth:`from_url` made it; a client you passed stays yours."""
        if self._owns_client:
            self.client.close()

    # --- used by _Lock and _Session -----------------------------------------------------

    def _acquire(self, conversation_id: str, token: str, *, load: bool) -> bytes | str | None:
        """Wait for the lock (within lock_timeout); returns the record's JSON if ``load``."""
        keys = self._keys(conversation_id)
        deadline = time.monotonic() + self.lock_timeout
        while True:
            with self._failures("lock"):
                if load:
                    taken, detail = self._lock_and_load(keys=keys, args=[token, self._lease_ms])
                    if taken:
                        return detail  # type: ignore[no-any-return]
                    held_ms = int(detail)
                elif self.client.set(keys[0], token, nx=True, px=self._lease_ms):
                    return None
                else:
                    held_ms = int(self.client.pttl(keys[0]))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._timed_out(conversation_id)
            time.sleep(_pause(held_ms, remaining))

    def _release(self, conversation_id: str, token: str) -> None:
        try:
            with self._failures("unlock"):
                self._unlock(keys=self._keys(conversation_id), args=[token, self._ttl_ms])
        except StoreUnavailableError as exc:
            # The step already happened; the lock lapses by itself after lock_timeout.
            get_logger().warning("unlock_failed", conversation_id=conversation_id, error=str(exc))

    @contextmanager
    def _failures(self, action: str) -> Iterator[None]:
        try:
            yield
        except RedisError as exc:
            raise self._unavailable(action, exc) from exc


def _pause(held_ms: int, remaining: float) -> float:
    """How long to sleep before trying a held lock again."""
    # PTTL is -1 for a lock without expiry (not ours) and -2 when it just vanished.
    until_free = held_ms / 1000 if held_ms > 0 else 0.001
    return max(0.001, min(until_free, _MAX_POLL, remaining))


class _Lock:
    """A conversation's Redis lock for a ``with`` block."""

    __slots__ = ("_store", "_token", "conversation_id")

    def __init__(self, store: RedisStore, conversation_id: str) -> None:
        self._store = store
        self.conversation_id = conversation_id
        self._token = secrets.token_hex(16)

    def __enter__(self) -> None:
        self._store._acquire(self.conversation_id, self._token, load=False)

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
        raw = store._acquire(conversation_id, self._token, load=True)
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
        store, pending = self._store, self._pending
        if exc_type is not None or pending is None:
            store._release(self.conversation_id, self._token)
            return
        expected = self.expected_version
        with store._failures("save"):
            reply = store._save_and_unlock(
                keys=store._keys(self.conversation_id),
                args=[self._token, expected, pending.to_json(), store._ttl_ms],
            )
        store._check_saved(pending, expected, reply)


class AsyncRedisStore(_RedisKeys, AsyncStore):
    """The asyncio twin of :class:`RedisStore` (``redis.asyncio``), with the same keys.

    Sync and async workers may share one Redis: the keys, scripts and locks are the same.
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
        self._owns_client = False
        self._lock_and_load = client.register_script(_LOCK_AND_LOAD)
        self._save_and_unlock = client.register_script(_SAVE_AND_UNLOCK)
        self._unlock = client.register_script(_UNLOCK)

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
        store = cls(
            redis.asyncio.Redis.from_url(url, **client_options),
            lock_timeout=lock_timeout,
            ttl=ttl,
            prefix=prefix,
        )
        store._owns_client = True
        return store

    def __repr__(self) -> str:
        return f"AsyncRedisStore({self._where}, prefix={self.prefix!r})"

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
                args=["", expected_version, record.to_json(), self._ttl_ms],
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
        """Close the client if :meth:`from_url` made it; a client you passed stays yours."""
        if self._owns_client:
            await self.client.aclose()

    async def _acquire(self, conversation_id: str, token: str, *, load: bool) -> bytes | str | None:
        keys = self._keys(conversation_id)
        deadline = time.monotonic() + self.lock_timeout
        while True:
            with self._failures("lock"):
                if load:
                    taken, detail = await self._lock_and_load(
                        keys=keys, args=[token, self._lease_ms]
                    )
                    if taken:
                        return detail  # type: ignore[no-any-return]
                    held_ms = int(detail)
                elif await self.client.set(keys[0], token, nx=True, px=self._lease_ms):
                    return None
                else:
                    held_ms = int(await self.client.pttl(keys[0]))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._timed_out(conversation_id)
            await asyncio.sleep(_pause(held_ms, remaining))

    async def _release(self, conversation_id: str, token: str) -> None:
        try:
            with self._failures("unlock"):
                await self._unlock(keys=self._keys(conversation_id), args=[token, self._ttl_ms])
        except StoreUnavailableError as exc:
            get_logger().warning("unlock_failed", conversation_id=conversation_id, error=str(exc))

    @contextmanager
    def _failures(self, action: str) -> Iterator[None]:
        try:
            yield
        except RedisError as exc:
            raise self._unavailable(action, exc) from exc


class _AsyncLock:
    """A conversation's Redis lock for an ``async with`` block."""

    __slots__ = ("_store", "_token", "conversation_id")

    def __init__(self, store: AsyncRedisStore, conversation_id: str) -> None:
        self._store = store
        self.conversation_id = conversation_id
        self._token = secrets.token_hex(16)

    async def __aenter__(self) -> None:
        await self._store._acquire(self.conversation_id, self._token, load=False)

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
        raw = await store._acquire(conversation_id, self._token, load=True)
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
        store, pending = self._store, self._pending
        if exc_type is not None or pending is None:
            await store._release(self.conversation_id, self._token)
            return
        expected = self.expected_version
        with store._failures("save"):
            reply = await store._save_and_unlock(
                keys=store._keys(self.conversation_id),
                args=[self._token, expected, pending.to_json(), store._ttl_ms],
            )
        store._check_saved(pending, expected, reply)
