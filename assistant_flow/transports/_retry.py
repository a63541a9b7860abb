"""When to try a request again, and how long to wait first.

Kustomer's documented behaviour [D]: over the org's per-minute budget it answers
``429 Too Many Requests`` with ``x-ratelimit-limit``, ``x-ratelimit-remaining`` and
``x-ratelimit-reset`` headers. ``Retry-After`` is not mentioned in any Kustomer text, so it is
honoured when present and otherwise ``x-ratelimit-reset`` is [I]. Everything with I/O or
chance in it (sleeping, the clocks, the random source) is a field of :class:`Retry`, so tests
run instantly and the same way every time.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime

from .._exceptions import (
    InvalidInputError,
    KustomerTimeoutError,
    RateLimitedError,
    RetriesExhaustedError,
    TransportError,
)

__all__ = ["MAX_WAIT", "Retry", "RetryBudget", "rate_limit_wait", "retry_after_wait"]

# An x-ratelimit-reset above this is a Unix time (2001-09-09 onwards), below it a number of
# seconds from now: the contract's rule, as no Kustomer text says which form it sends.
_EPOCH_THRESHOLD = 1e9

MAX_WAIT = 86_400.0
"""The longest wait, in seconds (a day), that a server's header or the backoff can ask for.

Kustomer's window is a minute; a ``Retry-After: 1e308`` or a date in the year 9999 is a
broken or hostile server, so the wait it asks for is cut to this. A date that cannot be
represented (``Retry-After`` in the year 99999999999999999999) counts as no header.
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    """How hard the HTTP transport tries before giving up on one request.

    * ``attempts``: tries of each request at most, the first included (``1`` turns retries
      off). A message with files makes several requests (announce and upload each file, then
      the message); each gets this many tries.
    * ``max_elapsed``: seconds one message may take in all, every request, attempt and wait
      included. Each attempt's timeouts are cut to the time left (and an async attempt is
      cancelled when it runs out); a wait that would end past it is not started. When a 429
      asks for such a wait, its :class:`RateLimitedError` is raised (with ``retry_after``) so
      the caller can send later; other failures end in :class:`RetriesExhaustedError`.
    * ``backoff`` and ``max_backoff``: after the n-th failure (a 5xx, a connection error, a
      timeout, or a 429 that names no wait) the transport sleeps a random time between 0 and
      ``min(max_backoff, backoff * 2 ** (n - 1))`` ("full jitter").
    * ``sleep``, ``async_sleep``, ``random``, ``clock`` (monotonic seconds, for the budget)
      and ``now`` (Unix seconds, for reset times and HTTP dates) are injectable for tests.

    Other 4xx answers are never retried: the same request would fail the same way.
    """

    attempts: int = 4
    max_elapsed: float = 30.0
    backoff: float = 0.5
    max_backoff: float = 8.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    async_sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)
    random: Callable[[], float] = field(default=random.random, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    now: Callable[[], float] = field(default=time.time, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise InvalidInputError(
                "Retry: `attempts` must be an int of at least 1 (1 means no retries)",
                field="attempts",
            )
        for name in ("max_elapsed", "backoff", "max_backoff"):
            value = getattr(self, name)
            # `not value >= 0` also refuses NaN, which compares false with everything.
            if not isinstance(value, int | float) or not value >= 0:
                raise InvalidInputError(
                    f"Retry: `{name}` must be a number of seconds, 0 or more", field=name
                )

    def backoff_delay(self, failures: int) -> float:
        """The jittered wait after the ``failures``-th failure in a row (1 for the first).

        At most :data:`MAX_WAIT`, however many failures (``2.0 ** 1024`` would overflow).
        """
        growth = 2.0 ** min(max(failures - 1, 0), 1000)
        ceiling = min(self.max_backoff, self.backoff * growth, MAX_WAIT)
        return _bounded(self.random() * ceiling)


def rate_limit_wait(headers: Mapping[str, str], now: float) -> float | None:
    """The seconds a 429 asks the client to wait, or ``None`` if it names no wait.

    ``Retry-After`` wins when present: delay-seconds or an HTTP date. Otherwise
    ``x-ratelimit-reset``: a Unix time when larger than 10⁹, else seconds from now. A time
    already past means no wait; a header that cannot be read (``nan``, ``inf``, a date no
    calendar holds) counts as absent, and a wait past :data:`MAX_WAIT` is cut to it.
    """
    retry_after = headers.get("retry-after")
    if retry_after is not None:
        wait = _seconds_or_http_date(retry_after.strip(), now)
        if wait is not None:
            return wait
    reset = headers.get("x-ratelimit-reset")
    if reset is not None:
        seconds = _number(reset.strip())
        if seconds is not None:
            return _bounded(seconds - now if seconds > _EPOCH_THRESHOLD else seconds)
    return None


def retry_after_wait(headers: Mapping[str, str], now: float) -> float | None:
    """The seconds a ``Retry-After`` header asks for (say, on a 503), or ``None``.

    Read as :func:`rate_limit_wait` reads it: at most :data:`MAX_WAIT`, never an exception.
    """
    retry_after = headers.get("retry-after")
    return None if retry_after is None else _seconds_or_http_date(retry_after.strip(), now)


def _bounded(seconds: float) -> float:
    """``seconds`` within 0 and :data:`MAX_WAIT` (NaN, from arithmetic on inf, as the cap)."""
    if math.isnan(seconds):
        return MAX_WAIT
    return min(max(0.0, seconds), MAX_WAIT)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except (ValueError, OverflowError):
        return None
    # nan and inf are floats too, but no wait.
    return value if math.isfinite(value) else None


def _seconds_or_http_date(text: str, now: float) -> float | None:
    seconds = _number(text)
    if seconds is not None:
        return _bounded(seconds)
    try:
        moment = parsedate_to_datetime(text)
        if moment.tzinfo is None:
            # "-0000" gives a naive datetime, which .timestamp() would read as local time;
            # HTTP dates are always UTC (RFC 9110, 5.6.7).
            moment = moment.replace(tzinfo=UTC)
        wait = moment.timestamp() - now
    except (TypeError, ValueError, OverflowError, OSError):
        # A year past 9999 overflows datetime (OverflowError), an hour of 25 is a ValueError,
        # and a zone offset past a day is refused: each a date no calendar holds, so no header.
        return None
    return _bounded(wait)


class RetryBudget:
    """The bookkeeping of one message's requests: one deadline for all, tries per request.

    Call :meth:`request` before each request, :meth:`left` before each attempt (and
    :meth:`spent` when nothing is left), and :meth:`wait_after` with each failure: it
    returns how long to sleep before the next attempt, or raises when no attempt is left or
    the wait would end past ``max_elapsed``.
    """

    __slots__ = ("_failures", "_retry", "_started", "attempts")

    def __init__(self, retry: Retry) -> None:
        self._retry = retry
        self._started = retry.clock()
        self._failures = 0
        self.attempts = 0

    def request(self) -> None:
        """Start counting the tries of a new request (the deadline runs on)."""
        self._failures = 0
        self.attempts = 0

    def attempt(self) -> int:
        """Count one more try of the current request and return its number (1 for the first)."""
        self.attempts += 1
        return self.attempts

    def elapsed(self) -> float:
        """Seconds since the message's first request began."""
        return self._retry.clock() - self._started

    def left(self) -> float:
        """Seconds left of ``max_elapsed`` (0 or less when spent)."""
        return self._retry.max_elapsed - self.elapsed()

    def spent(self, method: str, path: str) -> RetriesExhaustedError:
        """The error for a request that cannot start because the budget is spent."""
        elapsed = self.elapsed()
        timeout = KustomerTimeoutError(
            f"{method} {path} not sent: max_elapsed={self._retry.max_elapsed:g}s was spent "
            "by the message's earlier requests"
        )
        exhausted = RetriesExhaustedError(
            f"gave up after {elapsed:.3g}s: {timeout}",
            attempts=self.attempts,
            elapsed=elapsed,
            last_error=timeout,
        )
        exhausted.__cause__ = timeout
        return exhausted

    def wait_after(self, failure: TransportError, asked: float | None = None) -> float:
        """The seconds to sleep after ``failure``; ``asked`` is the wait the server named."""
        retry = self._retry
        self._failures += 1
        # Bounded here too: `asked` may come from a caller's own RateLimitedError.
        delay = _bounded(retry.backoff_delay(self._failures) if asked is None else asked)
        elapsed = self.elapsed()
        if self.attempts >= retry.attempts:
            reason = (
                f"all {retry.attempts} attempts failed"
                if retry.attempts > 1
                else "the only attempt failed (Retry(attempts=1))"
            )
        elif elapsed + delay > retry.max_elapsed:
            if isinstance(failure, RateLimitedError) and asked is not None:
                # Kustomer's window outlasts the budget: say when to come back instead.
                raise failure
            reason = (
                f"the next attempt would start after {elapsed + delay:.3g}s, past "
                f"max_elapsed={retry.max_elapsed:g}s ({self.attempts} attempts made)"
            )
        else:
            return delay
        raise RetriesExhaustedError(
            f"gave up: {reason}; the last failure was {type(failure).__name__}: {failure}",
            attempts=self.attempts,
            elapsed=elapsed,
            last_error=failure,
        ) from failure
