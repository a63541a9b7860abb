"""Waiting for a held lock: poll soon (steps are short), back off, never past the deadline."""

from __future__ import annotations

import time

from .._exceptions import LockTimeoutError

__all__ = ["Backoff", "timed_out"]

_FIRST_POLL = 0.001
_MAX_POLL = 0.05


class Backoff:
    """The pauses between attempts to take a lock within ``timeout`` seconds."""

    __slots__ = ("_deadline", "_pause")

    def __init__(self, timeout: float) -> None:
        self._deadline = time.monotonic() + timeout
        self._pause = _FIRST_POLL

    def next_pause(self, held_for: float | None = None) -> float | None:
        """How long to sleep before the next attempt, or ``None`` once the time is up.

        ``held_for`` is how long the holder's lease still runs, when the store knows it: no
        point sleeping past that.
        """
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            return None
        if held_for is not None:
            # Redis reports the lease's remaining time (-1 or -2 when it has none or just
            # vanished): sleep until it lapses or is likely released, within the cap.
            pause = held_for if held_for > 0 else _FIRST_POLL
        else:
            pause = self._pause
            self._pause = min(pause * 2, _MAX_POLL)
        return max(_FIRST_POLL, min(pause, _MAX_POLL, remaining))


def timed_out(conversation_id: str, lock_timeout: float, where: str = "") -> LockTimeoutError:
    """The error for a lock not taken within ``lock_timeout``; ``where`` names the store."""
    suffix = f" ({where})" if where else ""
    return LockTimeoutError(
        f"conversation {conversation_id!r} stayed locked for more than {lock_timeout} s{suffix}"
    )
