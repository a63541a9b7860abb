"""The transport seam: one method that sends one message, in a sync and an async twin."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import ClassVar, Self

from .._messages import SendMessageOptions, SentMessage

__all__ = ["AsyncTransport", "Transport"]


class Transport(ABC):
    """Delivers customer messages, blocking until Kustomer answers. Used by ``Flow``.

    Implement :meth:`send`. Raise :class:`TransportError` (or let any exception escape: the
    flow wraps it in one) when the message was not delivered; the conversation then stays as
    it was, so sending again repeats the same message.
    """

    async_twin: ClassVar[str | None] = None
    """The name of this transport's async counterpart, quoted in configuration errors."""

    @abstractmethod
    def send(self, message: SendMessageOptions) -> SentMessage:
        """Deliver ``message``; return Kustomer's ``callbackResponse``."""

    def close(self) -> None:  # noqa: B027 - deliberately empty: most transports hold nothing
        """Release what the transport opened itself. The default holds nothing."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncTransport(ABC):
    """Delivers customer messages without blocking the event loop. Used by ``AsyncFlow``."""

    sync_twin: ClassVar[str | None] = None
    """The name of this transport's sync counterpart, quoted in configuration errors."""

    @abstractmethod
    async def asend(self, message: SendMessageOptions) -> SentMessage:
        """Deliver ``message``; return Kustomer's ``callbackResponse``."""

    async def aclose(self) -> None:  # noqa: B027 - deliberately empty, as Transport.close
        """Release what the transport opened itself. The default holds nothing."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
