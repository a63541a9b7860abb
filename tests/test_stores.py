"""MemoryStore keeps the store contract, through its sync and its async methods alike.

The same tests will run over the SQLite and Redis stores when they exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from assistant_flow import ConflictError, ConversationRecord, MemoryStore


@dataclass
class StoreView:
    """A store's primitives, awaited the same way for its sync and its async methods."""

    store: MemoryStore
    load: Callable[[str], Awaitable[ConversationRecord | None]]
    save: Callable[[ConversationRecord, int], Awaitable[None]]
    delete: Callable[[str], Awaitable[None]]


@pytest.fixture(params=["sync", "async"])
def view(request: pytest.FixtureRequest) -> StoreView:
    store = MemoryStore()
    if request.param == "async":
        return StoreView(
            store,
            store.aload,
            lambda record, expected: store.asave(record, expected_version=expected),
            store.adelete,
        )

    async def load(conversation_id: str) -> ConversationRecord | None:
        return store.load(conversation_id)

    async def save(record: ConversationRecord, expected: int) -> None:
        store.save(record, expected_version=expected)

    async def delete(conversation_id: str) -> None:
        store.delete(conversation_id)

    return StoreView(store, load, save, delete)


def record(version: int, state: str = "init") -> ConversationRecord:
    return ConversationRecord("conv_1", machine_state=state, version=version)


async def test_an_unknown_conversation_loads_as_none(view: StoreView) -> None:
    assert await view.load("conv_1") is None


async def test_a_saved_record_loads_back(view: StoreView) -> None:
    await view.save(record(1), 0)
    await view.save(record(2, "ended"), 1)
    assert await view.load("conv_1") == record(2, "ended")


@pytest.mark.parametrize("expected", [0, 2])
async def test_a_save_expecting_another_version_is_refused(view: StoreView, expected: int) -> None:
    await view.save(record(1), 0)
    with pytest.raises(ConflictError) as caught:
        await view.save(record(9, "ended"), expected)
    assert (caught.value.expected, caught.value.found) == (expected, 1)
    assert await view.load("conv_1") == record(1)


async def test_a_first_save_must_expect_no_record(view: StoreView) -> None:
    with pytest.raises(ConflictError):
        await view.save(record(1), 1)
    assert await view.load("conv_1") is None


async def test_delete_forgets_and_tolerates_unknown_ids(view: StoreView) -> None:
    await view.save(record(1), 0)
    await view.delete("conv_1")
    await view.delete("conv_1")
    assert await view.load("conv_1") is None
    await view.save(record(1), 0)  # a deleted conversation starts again from version 0
    assert len(view.store) == 1
