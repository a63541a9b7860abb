"""Shared fixtures: Kustomer-shaped payloads, and one harness over both drivers.

Every behaviour test takes ``harness`` and runs twice, as ``[sync]`` (``Flow``) and ``[async]``
(``AsyncFlow``), so the two drivers are held to the same tests under the same names.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from payloads import init_response
from redis_server import own_redis_server, redis_server  # noqa: F401 - fixtures for the store tests

from assistant_flow import (
    AsyncFlow,
    ConversationHandle,
    ConversationRecord,
    Flow,
    MemoryStore,
    MemoryTransport,
    State,
)

# --- one harness over Flow and AsyncFlow ------------------------------------------------------


class SyncHandleView:
    """A sync ConversationHandle seen through the async handle's interface."""

    def __init__(self, handle: ConversationHandle) -> None:
        self._handle = handle

    @property
    async def state(self) -> State:
        return self._handle.state

    async def snapshot(self) -> ConversationRecord:
        return self._handle.snapshot()

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self._handle, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **kwargs)

        return call


@dataclass
class Harness:
    """A flow on MemoryTransport and MemoryStore, driven with ``await`` in both modes."""

    mode: str
    transport: MemoryTransport
    store: MemoryStore
    flow: Flow | AsyncFlow

    def conversation(self, conversation_id: str) -> Any:
        if isinstance(self.flow, Flow):
            return SyncHandleView(self.flow.conversation(conversation_id))
        return self.flow.conversation(conversation_id)

    async def dispatch(self, event: str, payload: dict[str, Any] | None = None) -> None:
        if isinstance(self.flow, Flow):
            self.flow.dispatch(event, payload)
        else:
            await self.flow.dispatch(event, payload)

    async def started(self, conversation_id: str = "conv_1", response: Any = None) -> Any:
        """A conversation with an assistant started on it."""
        conv = self.conversation(conversation_id)
        await conv.start_assistant(response or init_response())
        return conv


def fixed_clock() -> Callable[[], datetime]:
    ticks = itertools.count()
    return lambda: datetime(2026, 11, 25, 10, 0, next(ticks), tzinfo=UTC)


@pytest.fixture(params=["sync", "async"])
def harness(request: pytest.FixtureRequest) -> Harness:
    transport = MemoryTransport(clock=fixed_clock())
    store = MemoryStore()
    flow: Flow | AsyncFlow
    flow = Flow(transport, store) if request.param == "sync" else AsyncFlow(transport, store)
    return Harness(request.param, transport, store, flow)
