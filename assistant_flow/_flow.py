"""Flow and AsyncFlow: the drivers that run the pure step between a store and a transport.

Handling anything is one step::

    lock(conversation) -> load record -> step(record, event) -> send message -> save record

through the store's session (``store.session(id)``), so a networked store can lock-and-load
in one round trip and save-and-unlock in another.

The record is saved only after the transport confirms the send, so a failed send leaves the
conversation exactly as it was. If the save after a confirmed send fails, the StoreError
raised carries the delivered message as ``error.sent``. The lock is taken before loading, so
concurrent messages for one conversation queue up instead of both acting on the same old
record.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar

from ._conversation import ConversationRecord
from ._delivery import Delivery
from ._events import (
    EndAssistant,
    Event,
    check_conversation_id,
    choose,
    conversation_snapshot,
    kustomer_event,
    receive,
    reply,
    start_assistant,
    visit_article,
)
from ._exceptions import ConfigurationError, StoreError
from ._hooks import Hooks
from ._logging import Logger, get_logger
from ._machine import State
from ._messages import Attachment, InitAssistantResponse, ReceivedMessage, SentMessage
from .stores.base import AsyncStore, Store
from .stores.memory import MemoryStore
from .transports.base import AsyncTransport, Transport

__all__ = ["AsyncConversationHandle", "AsyncFlow", "ConversationHandle", "Flow"]


_Handle = TypeVar("_Handle", "ConversationHandle", "AsyncConversationHandle")


class _FlowCore(Generic[_Handle]):
    """What Flow and AsyncFlow share: everything that is not I/O.

    Their repr, the handles they make, how Kustomer's events route to handle calls, and the
    hooks. Each twin checks what it is given (a sync or an async kind) and does the I/O.
    """

    _handle: ClassVar[type[Any]]

    def __init__(self, transport: object, store: object, logger: Logger | None) -> None:
        self.transport = transport
        self.store = store
        self._log = get_logger() if logger is None else logger
        self._hooks = Hooks(is_async=isinstance(self, AsyncFlow))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(transport={type(self.transport).__name__}, "
            f"store={type(self.store).__name__})"
        )

    def conversation(self, conversation_id: str) -> _Handle:
        """A handle on one conversation. Creating it does no I/O; its state is in the store."""
        handle: _Handle = self._handle(self, check_conversation_id(conversation_id))
        return handle

    def on(self, name: str, callback: Callable[[Any], object]) -> None:
        """Call ``callback`` with each ``name`` event, after the step it reports is saved.

        The names are ``transition``, ``assistant_started``, ``assistant_ended``,
        ``choices_offered``, ``message_sent`` and ``send_failed``; each event is a frozen
        value with ``conversation_id`` and ``record`` (see :mod:`assistant_flow` hooks in
        the README). Hooks run in the order they were registered; one that raises is logged
        and stops neither the step nor the others. ``AsyncFlow`` awaits async callbacks.
        """
        self._hooks.add(name, callback)

    def _routed(self, event: str, payload: Mapping[str, Any] | None) -> Any:  # noqa: ANN401
        """The handle call a Kustomer Core SDK event stands for, unmade, or ``None``."""
        routed = kustomer_event(event, payload)
        if routed is None:
            self._log.debug("event_ignored", kustomer_event=event)
            return None
        method, conversation_id = routed
        handle = self.conversation(conversation_id)
        if method == "end_assistant":
            return handle.end_assistant
        return functools.partial(getattr(handle, method), payload or {})


class Flow(_FlowCore["ConversationHandle"]):
    """Drives Kustomer conversations through the assistant lifecycle (blocking I/O).

    ``transport`` delivers messages (a :class:`Transport`); ``store`` keeps each
    conversation's record between calls (a :class:`Store`, in memory by default). ``logger``
    replaces the library's own (see Logging in the README). A flow is cheap to share: all
    state lives in the store, and calls for different conversations do not wait on each other.

    A flow owns what it is given: :meth:`close` (or leaving ``with Flow(...) as flow:``)
    closes the transport and the store, as an ``httpx.Client`` closes its transport.
    """

    transport: Transport
    store: Store

    def __init__(
        self, transport: Transport, store: Store | None = None, *, logger: Logger | None = None
    ) -> None:
        _check_kind(transport, Transport, AsyncTransport, flow="Flow", role="transport")
        store = MemoryStore() if store is None else store
        _check_kind(store, Store, AsyncStore, flow="Flow", role="store")
        super().__init__(transport, store, logger)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the transport, then the store (each may be closed again harmlessly)."""
        try:
            self.transport.close()
        finally:
            self.store.close()

    def dispatch(self, event: str, payload: Mapping[str, Any] | None = None) -> None:
        """Forward an event the Core SDK emitted, by its Kustomer name and payload.

        ``onMessageReceived`` acts as :meth:`ConversationHandle.receive`, ``onAssistantEnded``
        as :meth:`ConversationHandle.end_assistant`, ``onConversationCreate`` as
        :meth:`ConversationHandle.sync` (a conversation the server created with an assistant
        reports ``isInAssistantMode: true``); the other Kustomer events are accepted and
        change nothing. A name Kustomer does not use raises :class:`UnknownEventError`.
        """
        call = self._routed(event, payload)
        if call is not None:
            call()

    def _apply(self, conversation_id: str, event: Event | None) -> Delivery:
        call = None
        try:
            with self.store.session(conversation_id) as held:
                call = Delivery(
                    held.record, conversation_id, event, self._log, collect=self._hooks.registered
                )
                while (message := call.next_message()) is not None:
                    try:
                        call.confirmed(self.transport.send(message))
                    except Exception as exc:  # the call decides, then raises it
                        call.failed(exc)
                    except BaseException as exc:  # interrupted mid-send: it may have gone
                        call.interrupted(exc)
                if (changed := call.to_save) is not None:
                    held.save(changed)  # written, then unlocked, as the block ends
        except StoreError as exc:
            _attach_sent(exc, None if call is None else call.sent)
            raise
        if call.happened:
            self._hooks.run(call.happened, self._log)  # the step is saved: hooks see it
        return call


class AsyncFlow(_FlowCore["AsyncConversationHandle"]):
    """The asyncio twin of :class:`Flow`: the same lifecycle, with ``await`` on every call.

    Needs an :class:`AsyncTransport` and an :class:`AsyncStore` (in memory by default).
    :meth:`aclose` (or ``async with``) closes them.
    """

    transport: AsyncTransport
    store: AsyncStore

    def __init__(
        self,
        transport: AsyncTransport,
        store: AsyncStore | None = None,
        *,
        logger: Logger | None = None,
    ) -> None:
        _check_kind(transport, AsyncTransport, Transport, flow="AsyncFlow", role="transport")
        store = MemoryStore() if store is None else store
        _check_kind(store, AsyncStore, Store, flow="AsyncFlow", role="store")
        super().__init__(transport, store, logger)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the transport, then the store (each may be closed again harmlessly)."""
        try:
            await self.transport.aclose()
        finally:
            await self.store.aclose()

    async def dispatch(self, event: str, payload: Mapping[str, Any] | None = None) -> None:
        """Forward a Kustomer Core SDK event; see :meth:`Flow.dispatch`."""
        call = self._routed(event, payload)
        if call is not None:
            await call()

    async def _apply(self, conversation_id: str, event: Event | None) -> Delivery:
        call = None
        try:
            async with self.store.asession(conversation_id) as held:
                call = Delivery(
                    held.record, conversation_id, event, self._log, collect=self._hooks.registered
                )
                while (message := call.next_message()) is not None:
                    try:
                        call.confirmed(await self.transport.asend(message))
                    except Exception as exc:  # the call decides, then raises it
                        call.failed(exc)
                    except BaseException as exc:  # cancelled mid-send: it may have gone
                        call.interrupted(exc)
                if (changed := call.to_save) is not None:
                    held.save(changed)
        except StoreError as exc:
            _attach_sent(exc, None if call is None else call.sent)
            raise
        if call.happened:
            await self._hooks.arun(call.happened, self._log)
        return call


class ConversationHandle:
    """One conversation of a :class:`Flow`. Every call locks, loads, steps, sends and saves.

    The methods mirror the Core SDK: :meth:`start_assistant` takes what ``initAssistant``
    returned, :meth:`receive` what ``onMessageReceived`` delivered, :meth:`end_assistant`
    stands for ``onAssistantEnded``; :meth:`send_message` and :meth:`choose` send.
    """

    __slots__ = ("_flow", "conversation_id")

    def __init__(self, flow: Flow, conversation_id: str) -> None:
        self._flow = flow
        self.conversation_id = conversation_id

    def __repr__(self) -> str:
        return f"ConversationHandle({self.conversation_id!r})"

    @property
    def state(self) -> State:
        """The conversation's lifecycle state, as stored now."""
        return self.snapshot().state

    def snapshot(self) -> ConversationRecord:
        """The stored record (a fresh one in ``init`` if nothing is stored yet)."""
        stored = self._flow.store.load(self.conversation_id)
        return stored or ConversationRecord(self.conversation_id)

    def start_assistant(self, init_response: InitAssistantResponse | Mapping[str, Any]) -> None:
        """Begin an assistant run with what ``KustomerCore.initAssistant`` returned.

        The next reply will carry ``initAssistantPayload``; quick replies or an mll in the
        greetings go on offer. Allowed from ``init`` and ``ended`` (re-engaging starts a fresh
        run), and before the first reply (new greetings replace the unanswered ones).
        """
        self._flow._apply(self.conversation_id, start_assistant(init_response)).result()

    def sync(self, snapshot: Mapping[str, Any]) -> None:
        """Align with the server's view of the conversation, for an assistant it started.

        ``snapshot`` is the conversation as Kustomer reports it (``createConversation`` or
        ``describeConversation``'s answer, a ``getConversations`` row, an
        ``onConversationCreate`` payload, or the REST resource). ``isInAssistantMode: true``
        brings a conversation in ``init`` or ``ended`` into assistant mode with no
        ``initAssistantPayload`` owed (none of our ``initAssistant`` calls began it);
        ``false`` ends the assistant; absent changes nothing.
        """
        event = conversation_snapshot(snapshot, self.conversation_id)
        if event is not None:
            self._flow._apply(self.conversation_id, event).result()

    def flush(self) -> list[SentMessage]:
        """Deliver the kept message, if any, and nothing else; returns what was confirmed.

        A message is kept when its send's outcome was unknown (the error said ``kept``);
        every step delivers it first anyway, so this is for a conversation with nothing
        else to send. An empty list means nothing was kept.
        """
        call = self._flow._apply(self.conversation_id, None)
        call.result()  # a delivery still in doubt, or refused, is raised, not hidden
        return call.redelivered

    def receive(self, message: ReceivedMessage | Mapping[str, Any]) -> None:
        """Take in an assistant or agent message as ``onMessageReceived`` delivers it.

        Its quick replies or mll go on offer (replacing earlier ones); its ``meta.articles``
        become the pending deflection. A message offering neither leaves both as they are.
        """
        event = receive(message, self.conversation_id)
        if event is not None:
            self._flow._apply(self.conversation_id, event).result()

    def send_message(
        self,
        body: str | None = None,
        *,
        payload: str | None = None,
        attachments: Sequence[Attachment] | None = None,
        lang: str | None = None,
    ) -> SentMessage:
        """Send a customer message; the lifecycle fields are added for you.

        ``isInAssistantMode``, ``initAssistantPayload`` (first reply only) and
        ``lastDeflection`` (first message after a deflection) come from the conversation's
        state. Raises :class:`TransportError` if the send fails, leaving the state as it was.
        """
        event = reply(body, payload, attachments, lang)
        return _sent(self._flow._apply(self.conversation_id, event).result())

    def choose(self, choice: str, *, lang: str | None = None) -> SentMessage:
        """Answer with an offered quick reply or mll node.

        A quick reply is named by its ``displayText`` or ``value``, an mll node by its
        ``displayName`` or ``id``. The message's ``body`` is the text shown and its
        ``payload`` the value.
        A choice that is not on offer raises :class:`UnknownChoiceError` listing those that
        are; nothing is sent.
        """
        return _sent(self._flow._apply(self.conversation_id, choose(choice, lang)).result())

    def visit_article(self, article_id: str) -> None:
        """Count a visit to one of the pending deflection's articles."""
        self._flow._apply(self.conversation_id, visit_article(article_id)).result()

    def end_assistant(self) -> None:
        """``onAssistantEnded``: from now on messages carry ``isInAssistantMode: false``."""
        self._flow._apply(self.conversation_id, EndAssistant()).result()


class AsyncConversationHandle:
    """One conversation of an :class:`AsyncFlow`; see :class:`ConversationHandle`."""

    __slots__ = ("_flow", "conversation_id")

    def __init__(self, flow: AsyncFlow, conversation_id: str) -> None:
        self._flow = flow
        self.conversation_id = conversation_id

    def __repr__(self) -> str:
        return f"AsyncConversationHandle({self.conversation_id!r})"

    @property
    async def state(self) -> State:
        """The conversation's lifecycle state, as stored now: ``await conv.state``."""
        return (await self.snapshot()).state

    async def snapshot(self) -> ConversationRecord:
        """The stored record (a fresh one in ``init`` if nothing is stored yet)."""
        stored = await self._flow.store.aload(self.conversation_id)
        return stored or ConversationRecord(self.conversation_id)

    async def start_assistant(
        self, init_response: InitAssistantResponse | Mapping[str, Any]
    ) -> None:
        """See :meth:`ConversationHandle.start_assistant`."""
        (await self._flow._apply(self.conversation_id, start_assistant(init_response))).result()

    async def sync(self, snapshot: Mapping[str, Any]) -> None:
        """See :meth:`ConversationHandle.sync`."""
        event = conversation_snapshot(snapshot, self.conversation_id)
        if event is not None:
            (await self._flow._apply(self.conversation_id, event)).result()

    async def flush(self) -> list[SentMessage]:
        """See :meth:`ConversationHandle.flush`."""
        call = await self._flow._apply(self.conversation_id, None)
        call.result()
        return call.redelivered

    async def receive(self, message: ReceivedMessage | Mapping[str, Any]) -> None:
        """See :meth:`ConversationHandle.receive`."""
        event = receive(message, self.conversation_id)
        if event is not None:
            (await self._flow._apply(self.conversation_id, event)).result()

    async def send_message(
        self,
        body: str | None = None,
        *,
        payload: str | None = None,
        attachments: Sequence[Attachment] | None = None,
        lang: str | None = None,
    ) -> SentMessage:
        """See :meth:`ConversationHandle.send_message`."""
        event = reply(body, payload, attachments, lang)
        return _sent((await self._flow._apply(self.conversation_id, event)).result())

    async def choose(self, choice: str, *, lang: str | None = None) -> SentMessage:
        """See :meth:`ConversationHandle.choose`."""
        return _sent((await self._flow._apply(self.conversation_id, choose(choice, lang))).result())

    async def visit_article(self, article_id: str) -> None:
        """See :meth:`ConversationHandle.visit_article`."""
        (await self._flow._apply(self.conversation_id, visit_article(article_id))).result()

    async def end_assistant(self) -> None:
        """See :meth:`ConversationHandle.end_assistant`."""
        (await self._flow._apply(self.conversation_id, EndAssistant())).result()


# The handle each flow makes, set once both kinds exist.
Flow._handle = ConversationHandle
AsyncFlow._handle = AsyncConversationHandle


# --- shared by both drivers -----------------------------------------------------------------


def _check_kind(collaborator: object, wanted: type, twin: type, *, flow: str, role: str) -> None:
    """Refuse a transport or store of the wrong kind with a message that says what to use."""
    if isinstance(collaborator, wanted):
        return
    name = type(collaborator).__name__
    needed = f"{_article(wanted.__name__)} {wanted.__name__}"
    if isinstance(collaborator, twin):
        is_async_flow = flow == "AsyncFlow"
        suggested = getattr(collaborator, "async_twin" if is_async_flow else "sync_twin", None)
        instead = suggested or f"{needed} such as Memory{role.capitalize()}"
        raise ConfigurationError(
            f"{flow} needs {needed} as `{role}`, but {name} is "
            f"{'sync' if is_async_flow else 'async'}: use {instead} with {flow}, "
            f"or keep {name} and use {'Flow' if is_async_flow else 'AsyncFlow'}"
        )
    raise ConfigurationError(
        f"{flow} needs {needed} as `{role}` (a subclass of assistant_flow.{wanted.__name__}), "
        f"got {name}"
    )


def _article(noun: str) -> str:
    return "an" if noun[0] in "AEIOU" else "a"


def _sent(sent: SentMessage | None) -> SentMessage:
    # A reply always produces a message, so a send always has a response.
    assert sent is not None, "a reply step produced no message"
    return sent


def _attach_sent(error: StoreError, sent: SentMessage | None) -> None:
    """Tell the caller of a failed save that the message was delivered all the same."""
    if sent is not None:
        error.sent = sent
        error.add_note(
            f"the message was sent (id {sent.message_id}) before the save failed: the "
            "conversation's stored state is the one before this step"
        )
