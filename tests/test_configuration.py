"""Wiring mistakes fail at construction, with a message that says what to use instead."""

from __future__ import annotations

import pytest

from assistant_flow import (
    AsyncFlow,
    AsyncStore,
    AsyncTransport,
    ConfigurationError,
    ConversationRecord,
    Flow,
    MemoryStore,
    MemoryTransport,
    SendMessageOptions,
    SentMessage,
    Transport,
)


class SyncOnlyTransport(Transport):
    async_twin = "AsyncOnlyTransport"

    def send(self, message: SendMessageOptions) -> SentMessage:
        raise NotImplementedError


class AsyncOnlyTransport(AsyncTransport):
    sync_twin = "SyncOnlyTransport"

    async def asend(self, message: SendMessageOptions) -> SentMessage:
        raise NotImplementedError


class UnnamedSyncTransport(Transport):
    def send(self, message: SendMessageOptions) -> SentMessage:
        raise NotImplementedError


class AsyncOnlyStore(AsyncStore):
    async def aload(self, conversation_id: str) -> ConversationRecord | None:
        return None

    async def asave(self, record: ConversationRecord, *, expected_version: int) -> None:
        return None

    async def adelete(self, conversation_id: str) -> None:
        return None

    def alock(self, conversation_id: str) -> MemoryStore:  # type: ignore[override]
        raise NotImplementedError


def test_a_sync_transport_handed_to_async_flow_names_the_async_class() -> None:
    with pytest.raises(TypeError) as caught:
        AsyncFlow(SyncOnlyTransport())  # type: ignore[arg-type]
    assert isinstance(caught.value, ConfigurationError)
    message = str(caught.value)
    assert "AsyncFlow needs an AsyncTransport" in message
    assert "use AsyncOnlyTransport with AsyncFlow" in message


def test_a_sync_transport_without_a_twin_is_pointed_at_the_base_class() -> None:
    with pytest.raises(ConfigurationError, match="an AsyncTransport such as MemoryTransport"):
        AsyncFlow(UnnamedSyncTransport())  # type: ignore[arg-type]


def test_an_async_transport_handed_to_flow_names_the_sync_class() -> None:
    with pytest.raises(ConfigurationError, match="use SyncOnlyTransport with Flow"):
        Flow(AsyncOnlyTransport())  # type: ignore[arg-type]


def test_an_async_store_handed_to_flow_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="Flow needs a Store as `store`"):
        Flow(MemoryTransport(), AsyncOnlyStore())  # type: ignore[arg-type]


def test_something_else_entirely_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="got dict"):
        Flow({"send": print})  # type: ignore[arg-type]


def test_memory_transport_and_store_serve_both_flows() -> None:
    transport, store = MemoryTransport(), MemoryStore()
    sync_flow, async_flow = Flow(transport, store), AsyncFlow(transport, store)
    assert (sync_flow.transport, sync_flow.store) == (transport, store)
    assert (async_flow.transport, async_flow.store) == (transport, store)


def test_lock_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="lock_timeout"):
        MemoryStore(lock_timeout=0)
