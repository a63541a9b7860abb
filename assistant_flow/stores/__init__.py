"""Stores: where conversation records live between messages.

``MemoryStore`` (the default) and ``SQLiteStore`` need nothing beyond the standard library.
``RedisStore`` needs ``redis-py`` (``pip install 'assistant-flow[redis]'``) and is imported on
first use, so this package imports without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import AsyncStore, AsyncStoreSession, Store, StoreSession
from .memory import MemoryStore
from .sqlite import AsyncSQLiteStore, SQLiteStore

if TYPE_CHECKING:
    from .redis import AsyncRedisStore, RedisStore

__all__ = [
    "AsyncRedisStore",
    "AsyncSQLiteStore",
    "AsyncStore",
    "AsyncStoreSession",
    "MemoryStore",
    "RedisStore",
    "SQLiteStore",
    "Store",
    "StoreSession",
]

_NEEDS_REDIS = frozenset({"RedisStore", "AsyncRedisStore"})


def __getattr__(name: str) -> type:
    """Import the Redis stores on first use, with a clear message when redis-py is missing."""
    if name not in _NEEDS_REDIS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from . import redis as redis_stores  # noqa: PLC0415 - redis-py is an optional extra
    except ModuleNotFoundError as exc:
        if exc.name != "redis":
            raise
        raise ImportError(
            f"{name} needs redis-py: pip install 'assistant-flow[redis]'", name=exc.name
        ) from exc
    found: type = getattr(redis_stores, name)
    return found
