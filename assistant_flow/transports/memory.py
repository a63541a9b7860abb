"""An in-memory transport: records every wire payload, answers like Kustomer, fails on cue."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .._exceptions import InvalidInputError, KustomerConnectionError, TransportError
from .._messages import SendMessageOptions, SentMessage
from .base import AsyncTransport, Transport

__all__ = ["MemoryTransport"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _kustomer_timestamp(moment: datetime) -> str:
    """ISO 8601 with milliseconds and a ``Z``, as Kustomer writes ``createdAt``."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")[: -len("+00:00")] + "Z"


class _SystemTimestamps:
    """Kustomer's ``createdAt`` for now, from the system clock, cheaply.

    Formatting a datetime on every send was an eighth of an in-memory send; the date and
    time to the second change once a second, so they are formatted once a second.
    """

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._prefix}.{int((now - second) * 1000):03d}Z"


class MemoryTransport(Transport, AsyncTransport):
    """A transport for tests and local runs: nothing leaves the process.

    ``sent`` holds the camelCase wire payload of every delivered message, in order. Message
    ids count up (``msg_1``, ``msg_2``, ...) and ``createdAt`` comes from ``clock``, so tests
    can assert on exact responses. :meth:`fail_next` makes the coming sends fail (not
    delivered), :meth:`lose_next` makes them lose their answer (delivered). It serves
    ``Flow`` and ``AsyncFlow`` alike and may be shared between threads.
    """

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self._timestamp: Callable[[], str] = (
            _SystemTimestamps() if clock is None else lambda: _kustomer_timestamp(clock())
        )
        self._ids = itertools.count(1)
        self._failures: list[Exception] = []
        self._losses = 0
        # Answers lost on cue, by idempotency key: a resend gets the stored answer again.
        self._stored: dict[str, SentMessage] = {}
        self._lock = threading.Lock()

    def fail_next(self, count: int = 1, error: Exception | None = None) -> None:
        """Make the next ``count`` sends raise ``error`` (a :class:`TransportError` by default)."""
        if count < 1:
            raise InvalidInputError(
                "fail_next: `count`: it must be at least 1; pass how many sends should fail",
                field="count",
            )
        failure = error or TransportError("MemoryTransport was told to fail this send")
        with self._lock:
            self._failures.extend([failure] * count)

    def lose_next(self, count: int = 1) -> None:
        """Make the next ``count`` sends lose their answer: delivered, but no reply came.

        That is a connection dropped after Kustomer stored the message. Each such message is
        recorded in :attr:`sent` (Kustomer has it) and the send raises
        :class:`KustomerConnectionError` (whose outcome is unknown). A later send with the
        same idempotency key gets the stored answer and is not recorded again, as Kustomer
        answers a repeated ``Idempotency-Key``.
        """
        if count < 1:
            raise InvalidInputError(
                "lose_next: `count`: it must be at least 1; pass how many answers to lose",
                field="count",
            )
        with self._lock:
            self._losses += count

    def send(self, message: SendMessageOptions) -> SentMessage:
        """Record ``message`` and answer with a ``callbackResponse``-shaped :class:`SentMessage`."""
        if self._failures:
            with self._lock:
                failure = self._failures.pop(0) if self._failures else None
            if failure is not None:
                raise failure
        if self._stored or self._losses:
            return self._send_keyed(message)
        return self._record(message)

    def _record(self, message: SendMessageOptions) -> SentMessage:
        wire = message.to_wire()
        self.sent.append(wire)
        files = wire.get("attachments")
        return SentMessage.checked(
            message_id=f"msg_{next(self._ids)}",
            body=message.body,
            created_at=self._timestamp(),
            direction="in",
            conversation_id=message.conversation_id,
            attachments=[attachment["file"] for attachment in files] if files else None,
        )

    def _send_keyed(self, message: SendMessageOptions) -> SentMessage:
        # Only once an answer has been lost does a send need its key: the fast path above
        # never hashes a message.
        key = message.idempotency_key()
        with self._lock:
            stored = None if key is None else self._stored.get(key)
            lose = stored is None and self._losses > 0
            if lose:
                self._losses -= 1
        if stored is not None:
            return stored
        sent = self._record(message)
        if lose:
            if key is not None:
                self._stored[key] = sent
            raise KustomerConnectionError(
                "MemoryTransport lost this answer (lose_next): the message was stored"
            )
        return sent

    async def asend(self, message: SendMessageOptions) -> SentMessage:
        """The same as :meth:`send`; nothing here waits."""
        return self.send(message)

    def clear(self) -> None:
        """Forget what was sent, stored answers, and any failures or losses still queued."""
        with self._lock:
            self.sent.clear()
            self._failures.clear()
            self._stored.clear()
            self._losses = 0

    def __repr__(self) -> str:
        return f"MemoryTransport(sent={len(self.sent)} messages)"
