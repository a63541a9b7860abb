"""Checks on the options every store shares: the lock timeout and the time to live."""

from __future__ import annotations

import math

from .._exceptions import InvalidInputError

__all__ = ["check_timeouts"]


def check_timeouts(store: str, lock_timeout: float, ttl: float | None) -> None:
    """Refuse a lock timeout or time to live that no store can honour, naming the fix.

    Both are positive, finite numbers of seconds, and a time to live is at least the lock
    timeout: a shorter one could forget a conversation while a step still holds its lock.
    """
    if not (lock_timeout > 0 and math.isfinite(lock_timeout)):
        raise InvalidInputError(
            f"{store}: `lock_timeout` must be a positive, finite number of seconds, "
            f"got {lock_timeout!r}",
            field="lock_timeout",
        )
    if ttl is None:
        return
    if not (ttl > 0 and math.isfinite(ttl)):
        raise InvalidInputError(
            f"{store}: `ttl` must be a positive, finite number of seconds, or None to keep "
            f"conversations until they are deleted; got {ttl!r}",
            field="ttl",
        )
    if ttl < lock_timeout:
        raise InvalidInputError(
            f"{store}: `ttl` ({ttl} s) must be at least `lock_timeout` ({lock_timeout} s), "
            "or a conversation could expire while a step holds its lock; raise `ttl` or "
            "lower `lock_timeout`",
            field="ttl",
        )
