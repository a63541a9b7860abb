"""What RedisStore and AsyncRedisStore share: options, keys, script arguments, replies, errors.

Everything here is computation on the store's side of the wire; the two stores only send what
it builds and wait for the reply, one blocking and one awaiting. A step's keys and arguments
are built as bytes, encoded once as the client would (its ``encoding``), so redis-py has
nothing left to encode, and :func:`pack_evalsha` can write the command itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Generic, Self, TypeVar

import redis
from redis.exceptions import RedisError

from .._conversation import MAX_VERSION, ConversationRecord
from .._exceptions import (
    ConflictError,
    CorruptRecordError,
    LockLostError,
    StoreUnavailableError,
)
from ._leased import RecordCache
from ._options import check_timeouts
from ._redis_scripts import LOCK_AND_LOAD, LOCK_LOST, RENEW, SAVE_AND_UNLOCK, SAVED, UNLOCK
from ._waiting import Backoff, timed_out

__all__ = ["DEFAULT_PREFIX", "RedisStoreBase", "pack_evalsha"]

DEFAULT_PREFIX = "assistant_flow:"

# redis.Redis or redis.asyncio.Redis; their methods are typed loosely enough to call as Any.
_Client = TypeVar("_Client", bound=Any)


class RedisStoreBase(Generic[_Client]):
    """The options, key names, scripts and reply handling of both Redis stores."""

    _name: ClassVar[str]
    """The store's class name, quoted in errors about its options."""
    _client_type: ClassVar[Any]
    """``redis.Redis`` or ``redis.asyncio.Redis``: what :meth:`from_url` builds."""

    def __init__(
        self,
        client: _Client,
        *,
        lock_timeout: float = 10.0,
        ttl: float | None = None,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        check_timeouts(self._name, lock_timeout, ttl)
        self.client = client
        self.lock_timeout = lock_timeout
        self.ttl = ttl
        self.prefix = prefix
        self._owns_client = False
        self._lease_ms = max(1, round(lock_timeout * 1000))
        self._ttl_ms = 0 if ttl is None else max(1, round(ttl * 1000))
        self._where = _describe(client)
        encoder = client.get_encoder() if hasattr(client, "get_encoder") else None
        self._encoding: str = getattr(encoder, "encoding", "utf-8")
        self._encoding_errors: str = getattr(encoder, "encoding_errors", "strict")
        # What GET and the scripts return: str when the client decodes replies, else bytes.
        self._decodes = bool(getattr(encoder, "decode_responses", False))
        self._prefix_bytes = self._encode(prefix)
        self._lease_arg = b"%d" % self._lease_ms
        self._ttl_arg = b"%d" % self._ttl_ms
        self._max_version_arg = b"%d" % MAX_VERSION
        self._records: RecordCache[Any] = RecordCache()
        self._lock_and_load = client.register_script(LOCK_AND_LOAD)
        self._save_and_unlock = client.register_script(SAVE_AND_UNLOCK)
        self._unlock = client.register_script(UNLOCK)
        self._renew = client.register_script(RENEW)
        self._closed = False
        self._start_helpers()

    def _start_helpers(self) -> None:
        """Make the store's background helpers (its lease renewer); each store has its own."""
        raise NotImplementedError

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

        ``client_options`` go to redis-py's ``from_url`` (``redis.Redis`` for
        :class:`RedisStore`, ``redis.asyncio.Redis`` for :class:`AsyncRedisStore`). The store
        closes this client when it is closed. The password is never shown in the store's repr
        or errors.
        """
        client = cls._client_type.from_url(url, **client_options)
        store = cls(client, lock_timeout=lock_timeout, ttl=ttl, prefix=prefix)
        store._owns_client = True
        return store

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._where}, prefix={self.prefix!r})"

    # --- what to send ---------------------------------------------------------------------

    def _encode(self, text: str) -> bytes:
        return text.encode(self._encoding, self._encoding_errors)

    def _keys(self, conversation_id: str) -> list[bytes]:
        """The lock key and the record key, in that order (the scripts' KEYS), as bytes."""
        record = self._record_key(conversation_id)
        return [record + b":lock", record]

    def _record_key(self, conversation_id: str) -> bytes:
        return b"%b{%b}" % (self._prefix_bytes, self._encode(conversation_id))

    def _lock_args(self, token: str) -> list[bytes]:
        """ARGV for LOCK_AND_LOAD and RENEW: the owner and the lease."""
        return [token.encode("ascii"), self._lease_arg]

    def _unlock_args(self, token: str) -> list[bytes]:
        return [token.encode("ascii"), self._ttl_arg]

    def _save_args(self, token: str, expected: int, record: ConversationRecord) -> list[bytes]:
        return self._save_text_args(token, expected, self._encode(record.to_json()))

    def _save_text_args(self, token: str, expected: int, text: bytes) -> list[bytes]:
        """ARGV for SAVE_AND_UNLOCK, with the record's JSON already encoded."""
        owner = token.encode("ascii")
        return [owner, b"%d" % expected, text, self._ttl_arg, self._max_version_arg]

    def _saved(self, record: ConversationRecord, text: bytes) -> None:
        """Remember a record just saved, as the text a later load will read back."""
        raw = text.decode(self._encoding, self._encoding_errors) if self._decodes else text
        self._records.put(record.conversation_id, raw, record)

    # --- what came back -------------------------------------------------------------------

    def _decode(self, conversation_id: str, raw: bytes | str | None) -> ConversationRecord | None:
        if raw is None:
            return None
        record = self._records.get(conversation_id, raw)
        if record is not None:
            return record  # exactly what this store last saved or read: see RecordCache
        record = ConversationRecord.from_json(raw)
        if record.conversation_id != conversation_id:
            raise CorruptRecordError(
                f"the record under conversation {conversation_id!r} belongs to "
                f"{record.conversation_id!r}"
            )
        self._records.put(conversation_id, raw, record)
        return record

    def _next_pause(self, conversation_id: str, backoff: Backoff, held_ms: Any) -> float:  # noqa: ANN401
        """How long to wait before trying a held lock again, given its remaining lease."""
        pause = backoff.next_pause(int(held_ms) / 1000)
        if pause is None:
            raise timed_out(conversation_id, self.lock_timeout, f"Redis at {self._where}")
        return pause

    def _check_saved(
        self, record: ConversationRecord, expected_version: int, reply: Sequence[int]
    ) -> None:
        status, found = int(reply[0]), int(reply[1])
        if status == SAVED:
            return
        if status == LOCK_LOST:
            raise LockLostError(record.conversation_id, self.lock_timeout)
        if found < 0:
            raise CorruptRecordError(
                f"conversation {record.conversation_id!r}: the stored record is not a "
                "conversation record this version can compare; it was left as it was"
            )
        raise ConflictError(record.conversation_id, expected_version, found)

    # --- what went wrong ------------------------------------------------------------------

    @contextmanager
    def _failures(self, action: str) -> Iterator[None]:
        """Turn redis-py's errors into StoreUnavailableError with a message that says why."""
        if self._closed:
            raise self._closed_error(action)
        try:
            yield
        except RedisError as exc:
            raise self._unavailable(action, exc) from exc

    def _closed_error(self, action: str) -> StoreUnavailableError:
        # Even on a client the caller still has open: a closed store renews no lease, so a
        # step on it would lose its lock silently.
        return StoreUnavailableError(
            f"{type(self).__name__} at {self._where} was closed; cannot {action} (make a new store)"
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


def pack_evalsha(sha: str, keys: Sequence[bytes], args: Sequence[bytes]) -> bytes:
    """``EVALSHA sha numkeys *keys *args`` in Redis's wire protocol (RESP), from bytes.

    What redis-py's packer writes for the same command, without its per-argument type checks
    and encoding (everything here is bytes already).
    """
    parts = [sha.encode("ascii"), b"%d" % len(keys), *keys, *args]
    out = [b"*%d\r\n$7\r\nEVALSHA\r\n" % (len(parts) + 1)]
    for part in parts:
        out.append(b"$%d\r\n%b\r\n" % (len(part), part))
    return b"".join(out)


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
