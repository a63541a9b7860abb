"""Checks on the options every store shares: the lock timeout and the time to live."""

from __future__ import annotations

from .._exceptions import InvalidInputError

__all__ = ["check_timeouts"]


def check_timeouts(store: str, lock_timeout: float, ttl: float | None) -> None:
    """Refuse a lock timeout or time to live that is not a positive number of seconds."""
    if not lock_timeout > 0:
        raise InvalidInputError(
            f"{store}: `lock_timeout` must be a positive number of seconds", field="lock_timeout"
        )
    if ttl is not None and not ttl > 0:
        raise InvalidInputError(
            f"{store}: `ttl` must be a positive number of seconds, or None to keep "
            "conversations until they are deleted",
            field="ttl",
        )
