"""RedisStore: conversations in Redis, shared by worker processes on any number of machines.

Needs ``redis-py`` (``pip install 'assistant-flow[redis]'``); ``import assistant_flow`` works
without it, and only using these classes imports it.

Keys, for a conversation ``c`` and the default prefix: ``assistant_flow:{c}`` holds the JSON
record (never pickle) and ``assistant_flow:{c}:lock`` the lock's owner token. The braces keep
both keys in one Redis Cluster slot, so one script (see ``_redis_scripts``) may touch both.

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

:class:`RedisStore` runs its scripts on one connection of the client's pool that it keeps for
itself (see :class:`_HeldConnection`): a command through the pool costs a checkout, a
readiness probe of the socket (three system calls) and a check-in, as much again as the round
trip on loopback. A thread that finds the held connection busy uses the pool as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import redis
import redis.asyncio
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from .._conversation import ConversationRecord
from .._exceptions import StoreUnavailableError
from ._leased import AsyncLeasedSession, AsyncLeaseLock, LeasedSession, LeaseLock, log_unlock_failed
from ._redis_base import (  # noqa: F401 - DEFAULT_PREFIX importable from here too
    DEFAULT_PREFIX,
    RedisStoreBase,
    pack_evalsha,
)
from ._renewal import AsyncRenewer, Leases, Renewer
from ._waiting import Backoff
from .base import AsyncStore, Store

__all__ = ["AsyncRedisStore", "RedisStore"]

# Counts forks, in the child: a held connection taken before a fork is the parent's socket.
_forks = 0


def _count_fork() -> None:
    global _forks  # noqa: PLW0603 - one process-wide counter, read on every command
    _forks += 1


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_count_fork)


class _HeldConnection:
    """One connection checked out of a ``redis.Redis`` client's pool for good, for the scripts.

    Sending on it skips what the pool does around every command (checkout under a lock, a
    non-blocking read to see the socket is clean, check-in), and the command is written as
    bytes the store packed itself. What redis-py does for a command is kept: the connection's
    own ``retry`` (reconnecting after a dropped connection, then sending again: the scripts are
    idempotent), its health checks, and disconnecting on any error mid-command. One thread at
    a time: :meth:`RedisStore._run` takes ``busy`` without waiting, or uses the pool. After a
    fork the child takes a connection of its own (the pool resets itself there).
    """

    __slots__ = ("_connection", "_fork", "_pool", "busy", "fail")

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._connection: Any = None
        self._fork = _forks
        self.busy = threading.Lock()
        # redis-py 5 re-raised errors outside retry_on_error after disconnecting; 6 and
        # later disconnect and let the connection's retry decide. Follow the client's way.
        disconnect_raise = getattr(client, "_disconnect_raise", None)
        self.fail: Callable[[Any, Exception], None] = (
            disconnect_raise if disconnect_raise is not None else _disconnect
        )

    def evalsha(self, script: Script, keys: Sequence[bytes], args: Sequence[bytes]) -> Any:  # noqa: ANN401
        """Run ``script``; reload it once if Redis lost it (restarted, or SCRIPT FLUSH)."""
        connection = self._connection
        if connection is None or self._fork != _forks:
            connection = self._check_out()
        try:
            return self._send(connection, pack_evalsha(script.sha, keys, args))
        except NoScriptError:
            script.sha = script.registered_client.script_load(script.script)
            return self._send(connection, pack_evalsha(script.sha, keys, args))

    def _send(self, connection: Any, packed: bytes) -> Any:  # noqa: ANN401
        def attempt() -> Any:  # noqa: ANN401
            connection.send_packed_command([packed])
            return connection.read_response()

        return connection.retry.call_with_retry(attempt, lambda error: self.fail(connection, error))

    def _check_out(self) -> Any:  # noqa: ANN401
        try:
            connection = self._pool.get_connection()
        except TypeError:  # redis-py 5 names the command
            connection = self._pool.get_connection("EVALSHA")
        self._connection, self._fork = connection, _forks
        return connection

    def give_back(self) -> None:
        """Return the connection to the pool (the store is closing)."""
        with self.busy:
            connection, self._connection = self._connection, None
            if connection is not None and self._fork == _forks:
                self._pool.release(connection)


def _disconnect(connection: Any, error: Exception) -> None:  # noqa: ANN401
    connection.disconnect()


# A pool that allows fewer connections than this was sized on purpose: keeping one of them
# for good could leave the application waiting for (or refused) the rest.
_POOL_ROOM = 8


def _holds_a_connection(client: object) -> bool:
    """Whether the store keeps one connection of this client's pool for its scripts.

    For a plain redis.Redis (not single-connection, not a cluster) whose pool has room:
    redis-py's default pool allows 2**31 connections.
    """
    pool = getattr(client, "connection_pool", None)
    return (
        isinstance(client, redis.Redis)
        and getattr(client, "connection", None) is None  # not single_connection_client
        and isinstance(pool, redis.ConnectionPool)
        and getattr(pool, "max_connections", 0) >= _POOL_ROOM
    )


class RedisStore(RedisStoreBase["redis.Redis"], Store):
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
    _name: ClassVar[str] = "RedisStore"
    _client_type: ClassVar[type[redis.Redis]] = redis.Redis

    def _start_helpers(self) -> None:
        self._renewer = Renewer(self.lock_timeout, self._renew_leases)
        self._held = _HeldConnection(self.client) if _holds_a_connection(self.client) else None

    def _run(self, script: Script, keys: Sequence[bytes], args: Sequence[bytes]) -> Any:  # noqa: ANN401
        """Run a script on the held connection, else (another thread has it) via the pool."""
        held = self._held
        if held is not None and held.busy.acquire(blocking=False):
            try:
                return held.evalsha(script, keys, args)
            finally:
                held.busy.release()
        return script(keys=keys, args=args)

    # --- Store --------------------------------------------------------------------------

    def load(self, conversation_id: str) -> ConversationRecord | None:
        """The stored record, or ``None`` (also once it expired)."""
        with self._failures("load"):
            raw = self.client.get(self._record_key(conversation_id))
        return self._decode(conversation_id, raw)

    def save(self, record: ConversationRecord, *, expected_version: int) -> None:
        """Store ``record`` if the stored version is still ``expected_version`` (one script)."""
        text = self._encode(record.to_json())
        with self._failures("save"):
            reply = self._run(
                self._save_and_unlock,
                self._keys(record.conversation_id),
                self._save_text_args("", expected_version, text),
            )
        self._check_saved(record, expected_version, reply)
        self._saved(record, text)

    def delete(self, conversation_id: str) -> None:
        """Forget the conversation."""
        with self._failures("delete"):
            self.client.delete(self._record_key(conversation_id))
        self._records.forget(conversation_id)

    def lock(self, conversation_id: str) -> LeaseLock:
        """Hold the conversation's lock for the ``with`` block (a token with a lease)."""
        return LeaseLock(self, conversation_id)

    def session(self, conversation_id: str) -> LeasedSession:
        """One flow step in two round trips: lock-and-load, then save-and-unlock."""
        return LeasedSession(self, self, conversation_id)

    def close(self) -> None:
        """Stop renewing; close the client if :meth:`from_url` made it (one you passed stays).

        The store is then done: any further call raises :class:`StoreUnavailableError`.
        """
        self._closed = True
        self._renewer.close()
        if self._held is not None:
            self._held.give_back()
        self._records.clear()
        if self._owns_client:
            self.client.close()

    # --- the lease, for LeaseLock and LeasedSession ---------------------------------------

    def _take(self, conversation_id: str, token: str) -> bytes | str | None:
        """Wait for the lock (within lock_timeout); returns the record's JSON, read with it."""
        keys, args = self._keys(conversation_id), self._lock_args(token)
        backoff = None
        while True:
            if self._closed:
                raise self._closed_error("lock")
            try:
                taken, detail = self._run(self._lock_and_load, keys, args)
            except redis.RedisError as exc:
                self._release(conversation_id, token)  # in case the script ran after all
                raise self._unavailable("lock", exc) from exc
            if taken:
                self._renewer.hold(conversation_id, token)
                return detail  # type: ignore[no-any-return]
            if backoff is None:
                backoff = Backoff(self.lock_timeout)
            time.sleep(self._next_pause(conversation_id, backoff, detail))

    def _load_taken(
        self, conversation_id: str, taken: bytes | str | None
    ) -> ConversationRecord | None:
        return self._decode(conversation_id, taken)

    def _release(self, conversation_id: str, token: str) -> None:
        self._renewer.drop(token)
        try:
            with self._failures("unlock"):
                self._run(self._unlock, self._keys(conversation_id), self._unlock_args(token))
        except StoreUnavailableError as exc:
            log_unlock_failed(conversation_id, exc)

    def _save_and_release(self, record: ConversationRecord, expected: int, token: str) -> None:
        self._renewer.drop(token)
        text = self._encode(record.to_json())
        if self._closed:
            raise self._closed_error("save")
        try:
            reply = self._run(
                self._save_and_unlock,
                self._keys(record.conversation_id),
                self._save_text_args(token, expected, text),
            )
        except redis.RedisError as exc:
            raise self._unavailable("save", exc) from exc
        self._check_saved(record, expected, reply)
        self._saved(record, text)

    def _renew_leases(self, leases: Leases) -> list[str]:
        lost = []
        with self._failures("renew locks"):
            for conversation_id, token in leases:
                keys = self._keys(conversation_id)[:1]
                if not self._run(self._renew, keys, self._lock_args(token)):
                    lost.append(token)
        return lost


class AsyncRedisStore(RedisStoreBase["redis.asyncio.Redis"], AsyncStore):
    """The asyncio twin of :class:`RedisStore` (``redis.asyncio``), with the same keys.

    Sync and async workers may share one Redis: the keys, scripts and locks are the same.
    Cancelling a task while it takes a lock gives the lock back.
    """

    sync_twin = "RedisStore"
    _name: ClassVar[str] = "AsyncRedisStore"
    _client_type: ClassVar[type[redis.asyncio.Redis]] = redis.asyncio.Redis

    def _start_helpers(self) -> None:
        self._renewer = AsyncRenewer(self.lock_timeout, self._renew_leases)
        # Releases fired on cancellation: kept referenced until they finish.
        self._background: set[asyncio.Task[None]] = set()

    async def aload(self, conversation_id: str) -> ConversationRecord | None:
        """The stored record, or ``None`` (also once it expired)."""
        with self._failures("load"):
            raw = await self.client.get(self._record_key(conversation_id))
        return self._decode(conversation_id, raw)

    async def asave(self, record: ConversationRecord, *, expected_version: int) -> None:
        """Store ``record`` if the stored version is still ``expected_version`` (one script)."""
        text = self._encode(record.to_json())
        with self._failures("save"):
            reply = await self._save_and_unlock(
                keys=self._keys(record.conversation_id),
                args=self._save_text_args("", expected_version, text),
            )
        self._check_saved(record, expected_version, reply)
        self._saved(record, text)

    async def adelete(self, conversation_id: str) -> None:
        """Forget the conversation."""
        with self._failures("delete"):
            await self.client.delete(self._record_key(conversation_id))
        self._records.forget(conversation_id)

    def alock(self, conversation_id: str) -> AsyncLeaseLock:
        """Hold the conversation's lock for the ``async with`` block."""
        return AsyncLeaseLock(self, conversation_id)

    def asession(self, conversation_id: str) -> AsyncLeasedSession:
        """One flow step in two round trips: lock-and-load, then save-and-unlock."""
        return AsyncLeasedSession(self, self, conversation_id)

    async def aclose(self) -> None:
        """Stop renewing; close the client if :meth:`from_url` made it.

        The store is then done: any further call raises :class:`StoreUnavailableError`.
        """
        self._closed = True
        await self._renewer.aclose()
        if self._background:
            await asyncio.wait(self._background)
        self._records.clear()
        if self._owns_client:
            await self.client.aclose()

    # --- the lease, for AsyncLeaseLock and AsyncLeasedSession -----------------------------

    async def _take(self, conversation_id: str, token: str) -> bytes | str | None:
        """Wait for the lock; a cancelled caller's lock is given back, not kept."""
        keys, args = self._keys(conversation_id), self._lock_args(token)
        backoff = Backoff(self.lock_timeout)
        current = asyncio.current_task()
        cancels = 0 if current is None else current.cancelling()
        while True:
            try:
                with self._failures("lock"):
                    taken, detail = await self._lock_and_load(keys=keys, args=args)
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
            await asyncio.sleep(self._next_pause(conversation_id, backoff, detail))

    async def _load_taken(
        self, conversation_id: str, taken: bytes | str | None
    ) -> ConversationRecord | None:
        return self._decode(conversation_id, taken)

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
                await self._unlock(keys=self._keys(conversation_id), args=self._unlock_args(token))
        except StoreUnavailableError as exc:
            log_unlock_failed(conversation_id, exc)

    async def _save_and_release(
        self, record: ConversationRecord, expected: int, token: str
    ) -> None:
        self._renewer.drop(token)
        text = self._encode(record.to_json())
        with self._failures("save"):
            reply = await self._save_and_unlock(
                keys=self._keys(record.conversation_id),
                args=self._save_text_args(token, expected, text),
            )
        self._check_saved(record, expected, reply)
        self._saved(record, text)

    async def _renew_leases(self, leases: Leases) -> list[str]:
        lost = []
        with self._failures("renew locks"):
            for conversation_id, token in leases:
                keys = self._keys(conversation_id)[:1]
                if not await self._renew(keys=keys, args=self._lock_args(token)):
                    lost.append(token)
        return lost
