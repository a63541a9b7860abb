"""Keeping held leases alive while a step sends: one renewer per store, not one per step.

A durable store's lock is a lease that lapses ``lock_timeout`` after it was last extended, so
a worker that died (SIGKILL included) blocks its conversation no longer than that. A live
worker whose send outlasts the lease must not lose it, or the next worker would load the same
record and send the same message again. So every store keeps the set of leases it holds, and
one background renewer (a daemon thread, or an asyncio task for the async Redis store) extends
all of them every third of ``lock_timeout``. Holding and dropping a lease is a dictionary
update, with no lock taken on a step's path (a single dict operation is atomic in CPython; the
renewer copies the dict before reading it); the renewer starts on first use and sleeps while
nothing is held.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable

from .._logging import get_logger

__all__ = ["AsyncRenewer", "Renewer"]

# (conversation id, owner token) of every lease a store holds.
Leases = list[tuple[str, str]]


class _Held:
    """The leases a store holds, keyed by owner token."""

    def __init__(self, lock_timeout: float) -> None:
        self.period = lock_timeout / 3
        self.leases: dict[str, str] = {}
        self.closed = False

    def snapshot(self) -> Leases:
        # dict.copy() is one C call, atomic against a step's hold or drop on another thread;
        # iterating the live dict would not be.
        return [(conversation_id, token) for token, conversation_id in self.leases.copy().items()]

    def forget_lost(self, lost: list[str]) -> None:
        for token in lost:
            conversation_id = self.leases.pop(token, None)
            if conversation_id is not None:
                # Another worker took it after a lapse (this process stalled for a whole
                # lease); the save fenced on the token will be refused.
                get_logger().warning("lock_lost", conversation_id=conversation_id)


# Every live sync renewer, so a forked child can reset them (see _after_fork_in_child).
_renewers: weakref.WeakSet[Renewer] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for renewer in list(_renewers):
        renewer._forget_parent()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Renewer:
    """Extends a sync store's held leases from one daemon thread.

    ``renew(leases)`` extends each lease if its owner still holds it and returns the tokens
    that were no longer held. A renewal that fails (store unreachable) is logged and retried
    at the next period; the lease may then lapse, as it would for a dead worker.
    """

    def __init__(self, lock_timeout: float, renew: Callable[[Leases], list[str]]) -> None:
        self._held = _Held(lock_timeout)
        self._renew = renew
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._idle = False  # waiting for a first lease, with no period running
        _renewers.add(self)

    def _forget_parent(self) -> None:
        """In a forked child: the parent's thread does not exist here, nor do its steps.

        Only the forking thread survives a fork, so the renewer thread (and any lock it held
        at that moment) is gone: start afresh, with a new condition and no leases.
        """
        self._wake = threading.Condition()
        self._thread = None
        self._idle = False
        self._held.leases.clear()

    def hold(self, conversation_id: str, token: str) -> None:
        """Start renewing the lease ``token`` on ``conversation_id``.

        On a step's path: one dict store, then the condition only when the thread must be
        started or woken from its idle wait. Why skipping the condition is safe: the thread
        sets ``_idle`` before it checks for leases (under the condition), and this stores the
        lease before it reads ``_idle``; so either the thread sees the lease and does not
        wait, or this sees ``_idle`` and notifies under the condition, which the thread only
        releases by waiting.
        """
        self._held.leases[token] = conversation_id
        if self._idle or self._thread is None:
            self._start_or_wake()

    def _start_or_wake(self) -> None:
        with self._wake:
            if self._held.closed:
                return
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="assistant_flow-lease-renewer", daemon=True
                )
                self._thread.start()
            elif self._idle:
                self._wake.notify()  # wake it only from its idle wait, never mid-period

    def drop(self, token: str) -> None:
        """Stop renewing the lease ``token`` (before releasing it): one dict operation."""
        self._held.leases.pop(token, None)

    def close(self) -> None:
        """Stop the thread; leases still held lapse by themselves."""
        with self._wake:
            self._held.closed = True
            self._wake.notify()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        try:
            self._renew_until_closed()
        finally:
            # However the thread ends, the next hold starts a new one.
            with self._wake:
                if self._thread is threading.current_thread():
                    self._thread = None
                    self._idle = False

    def _renew_until_closed(self) -> None:
        held = self._held
        while True:
            with self._wake:
                # Idle is announced before the leases are looked at: see hold(). Woken by a
                # hold, run a period even if that lease is already dropped (a step is far
                # shorter than a period): going back to the idle wait would have every step
                # wake the thread again.
                self._idle = True
                if not held.leases and not held.closed:
                    self._wake.wait()  # a Condition wakes only when notified
                self._idle = False
                # A full period, whatever is held or dropped meanwhile: renewing costs a
                # write, so it never happens more often than this.
                deadline = time.monotonic() + held.period
                while not held.closed and (left := deadline - time.monotonic()) > 0:
                    self._wake.wait(left)
                if held.closed:
                    return
                leases = held.snapshot()
            if not leases:
                continue
            try:
                lost = self._renew(leases)
            except Exception as exc:  # a failed renewal must not end the thread
                get_logger().warning("lock_renewal_failed", error=type(exc).__name__)
                continue
            with self._wake:
                held.forget_lost(lost)


class AsyncRenewer:
    """Extends an async store's held leases from one asyncio task on the running loop."""

    def __init__(
        self, lock_timeout: float, renew: Callable[[Leases], Awaitable[list[str]]]
    ) -> None:
        self._held = _Held(lock_timeout)
        self._renew = renew
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    def hold(self, conversation_id: str, token: str) -> None:
        """Start renewing the lease ``token``; call from a coroutine on the store's loop."""
        self._held.leases[token] = conversation_id
        task = self._task
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(self._wake))
        elif len(self._held.leases) == 1 and self._wake is not None:
            self._wake.set()

    def drop(self, token: str) -> None:
        """Stop renewing the lease ``token``."""
        self._held.leases.pop(token, None)

    async def aclose(self) -> None:
        """Stop the task; leases still held lapse by themselves."""
        self._held.closed = True
        task, self._task = self._task, None
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            await asyncio.wait([task])  # an outer cancellation still propagates

    async def _run(self, wake: asyncio.Event) -> None:
        held = self._held
        while not held.closed:
            if not held.leases:
                wake.clear()
                await wake.wait()
                continue
            await asyncio.sleep(held.period)
            leases = held.snapshot()
            if not leases:
                continue
            try:
                lost = await self._renew(leases)
            except Exception as exc:  # a failed renewal must not end the task
                get_logger().warning("lock_renewal_failed", error=type(exc).__name__)
                continue
            held.forget_lost(lost)
