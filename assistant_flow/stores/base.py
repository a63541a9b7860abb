"""The store seam: load, save with an expected version, delete, and a per-conversation lock.

A flow always takes the conversation's lock *before* loading its record and releases it after
saving, so two messages for one conversation are handled one after the other, each on the
record the other left. The expected version in :meth:`Store.save` is a second line of defence:
a save that would overwrite a record someone else saved meanwhile raises
:class:`ConflictError` instead.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import ClassVar

from .._conversation import ConversationRecord

__all__ = ["AsyncStore", "Store"]


class Store(ABC):
    """Blocking storage for conversation records. Used by ``Flow``.

    Failures raise :class:`StoreError` subclasses; a missing record is not a failure.
    """

    async_twin: ClassVar[str | None] = None
    """The name of this store's async counterpart, quoted in configuration errors."""

    @abstractmethod
    def load(self, conversation_id: str) -> ConversationRecord | None:
        """The stored record, or ``None`` if the conversation has none yet."""

    @abstractmethod
    def save(self, record: ConversationRecord, *, expected_version: int) -> None:
        """Store ``record`` if the stored version is ``expected_version`` (0: none stored).

        Raises :class:`ConflictError` otherwise, leaving the stored record untouched.
        """

    @abstractmethod
    def delete(self, conversation_id: str) -> None:
        """Forget the conversation; deleting an unknown one is not an error."""

    @abstractmethod
    def lock(self, conversation_id: str) -> AbstractContextManager[None]:
        """Hold the conversation's lock for the ``with`` block.

        Raises :class:`LockTimeoutError` if it cannot be taken in the store's lock timeout.
        """

    def close(self) -> None:  # noqa: B027 - deliberately empty: nothing to release by default
        """Release connections or files the store opened. The default holds none."""


class AsyncStore(ABC):
    """Non-blocking storage for conversation records. Used by ``AsyncFlow``."""

    sync_twin: ClassVar[str | None] = None
    """The name of this store's sync counterpart, quoted in configuration errors."""

    @abstractmethod
    async def aload(self, conversation_id: str) -> ConversationRecord | None:
        """The stored record, or ``None`` if the conversation has none yet."""

    @abstractmethod
    async def asave(self, record: ConversationRecord, *, expected_version: int) -> None:
        """Store ``record`` if the stored version is ``expected_version`` (0: none stored)."""

    @abstractmethod
    async def adelete(self, conversation_id: str) -> None:
        """Forget the conversation; deleting an unknown one is not an error."""

    @abstractmethod
    def alock(self, conversation_id: str) -> AbstractAsyncContextManager[None]:
        """Hold the conversation's lock for the ``async with`` block."""

    async def aclose(self) -> None:  # noqa: B027 - deliberately empty, as Store.close
        """Release connections or files the store opened. The default holds none."""
