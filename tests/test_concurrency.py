"""A burst of messages for one conversation advances it once per message, never twice at once."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from payloads import init_response

from assistant_flow import (
    AsyncFlow,
    Flow,
    LockTimeoutError,
    MemoryStore,
    MemoryTransport,
    SendMessageOptions,
    SentMessage,
    Transport,
)


class SlowTransport(Transport):
    """Sleeps inside send, so racing callers overlap while the lock is held."""

    def __init__(self) -> None:
        self.inner = MemoryTransport()

    def send(self, message: SendMessageOptions) -> SentMessage:
        time.sleep(0.002)
        return self.inner.send(message)


def test_racing_threads_send_the_init_payload_exactly_once() -> None:
    transport = SlowTransport()
    flow = Flow(transport)
    conversations = [f"conv_{n}" for n in range(10)]
    for conversation_id in conversations:
        flow.conversation(conversation_id).start_assistant(init_response())

    def reply(job: int) -> None:
        flow.conversation(conversations[job % 10]).send_message(f"message {job}")

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(reply, range(80)))

    sent = transport.inner.sent
    assert len(sent) == 80
    for conversation_id in conversations:
        mine = [m for m in sent if m["conversationId"] == conversation_id]
        assert len(mine) == 8
        assert sum("initAssistantPayload" in m for m in mine) == 1
        assert "initAssistantPayload" in mine[0]
        # One version for start_assistant, then one per message: each has its own key.
        assert flow.conversation(conversation_id).snapshot().version == 1 + 8


async def test_racing_tasks_send_the_init_payload_exactly_once() -> None:
    class YieldingTransport(MemoryTransport):
        async def asend(self, message: SendMessageOptions) -> SentMessage:
            await asyncio.sleep(0)  # let the other tasks run into the lock
            return self.send(message)

    transport = YieldingTransport()
    flow = AsyncFlow(transport)
    conv = flow.conversation("conv_1")
    await conv.start_assistant(init_response())
    await asyncio.gather(*(conv.send_message(f"m{n}") for n in range(50)))
    assert len(transport.sent) == 50
    assert sum("initAssistantPayload" in m for m in transport.sent) == 1
    assert "initAssistantPayload" in transport.sent[0]


def test_a_held_lock_times_out_with_a_store_error() -> None:
    store = MemoryStore(lock_timeout=0.05)
    flow = Flow(MemoryTransport(), store)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.lock("conv_1"):
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    try:
        flow.conversation("conv_2").send_message("Hi")  # other conversations do not wait
        with pytest.raises(LockTimeoutError, match="conv_1"):
            flow.conversation("conv_1").send_message("Hi")
    finally:
        release.set()
        holder.join()
    flow.conversation("conv_1").send_message("Hi")  # free again afterwards
    assert store._thread_locks == {}


async def test_a_held_async_lock_times_out_with_a_store_error() -> None:
    store = MemoryStore(lock_timeout=0.05)
    flow = AsyncFlow(MemoryTransport(), store)
    async with store.alock("conv_1"):
        await flow.conversation("conv_2").send_message("Hi")
        with pytest.raises(LockTimeoutError):
            await flow.conversation("conv_1").send_message("Hi")
    await flow.conversation("conv_1").send_message("Hi")
    assert store._task_locks == {}


def test_idle_conversations_hold_no_locks() -> None:
    store = MemoryStore()
    flow = Flow(MemoryTransport(), store)
    for n in range(100):
        flow.conversation(f"conv_{n}").send_message("Hi")
        flow.conversation(f"conv_{n}").start_assistant(init_response())
    assert len(store) == 100
    assert store._thread_locks == {}
