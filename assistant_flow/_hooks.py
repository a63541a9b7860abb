"""Lifecycle hooks: callbacks an application registers with ``flow.on(name, callback)``.

A hook runs after the step it reports is saved, so it sees committed state and never half a
step; hooks run in the order they were registered, each on its own: one that raises is
logged (``hook_failed``) and neither undoes the step nor stops the others. The events are
small frozen values:

==========================  =====================================================================
name                        event, and when
==========================  =====================================================================
``transition``              :class:`TransitionEvent`: the lifecycle state changed
``assistant_started``       :class:`AssistantStartedEvent`: ``start_assistant`` began a run, or
                            the server's assistant was joined (``server_started``)
``assistant_ended``         :class:`AssistantEndedEvent`: the assistant ended (``end_assistant``,
                            ``onAssistantEnded``, a snapshot out of assistant mode)
``choices_offered``         :class:`ChoicesOfferedEvent`: new choices went on offer
``message_sent``            :class:`MessageSentEvent`: the transport confirmed a message
``send_failed``             :class:`SendFailedEvent`: a send failed; ``kept`` says whether the
                            message is kept for delivery (its outcome unknown)
==========================  =====================================================================

Every event has ``conversation_id`` and ``record``: the conversation right after what the
event reports, saved by the time the hook runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from ._conversation import ConversationRecord
from ._exceptions import AssistantFlowError, ConfigurationError, InvalidInputError
from ._logging import Logger
from ._machine import State, top_state
from ._messages import SendMessageOptions, SentMessage
from ._templates import Choice

__all__ = [
    "HOOK_NAMES",
    "AssistantEndedEvent",
    "AssistantStartedEvent",
    "ChoicesOfferedEvent",
    "HookEvent",
    "Hooks",
    "MessageSentEvent",
    "SendFailedEvent",
    "TransitionEvent",
    "step_events",
]


@dataclass(frozen=True, slots=True)
class TransitionEvent:
    """The conversation's lifecycle state changed: ``source`` to ``dest`` by ``trigger``."""

    name: ClassVar[str] = "transition"
    conversation_id: str
    record: ConversationRecord
    trigger: str
    source: str
    dest: str


@dataclass(frozen=True, slots=True)
class AssistantStartedEvent:
    """An assistant run began: ours (``start_assistant``) or the server's (joined)."""

    name: ClassVar[str] = "assistant_started"
    conversation_id: str
    record: ConversationRecord
    server_started: bool


@dataclass(frozen=True, slots=True)
class AssistantEndedEvent:
    """The assistant ended: from now on messages carry ``isInAssistantMode: false``."""

    name: ClassVar[str] = "assistant_ended"
    conversation_id: str
    record: ConversationRecord


@dataclass(frozen=True, slots=True)
class ChoicesOfferedEvent:
    """New choices went on offer (a question's buttons, list items, mll nodes)."""

    name: ClassVar[str] = "choices_offered"
    conversation_id: str
    record: ConversationRecord
    choices: tuple[Choice, ...]


@dataclass(frozen=True, slots=True)
class MessageSentEvent:
    """The transport confirmed ``message``; ``redelivered`` if it was a kept one sent again."""

    name: ClassVar[str] = "message_sent"
    conversation_id: str
    record: ConversationRecord
    message: SendMessageOptions
    sent: SentMessage
    redelivered: bool


@dataclass(frozen=True, slots=True)
class SendFailedEvent:
    """A send failed with ``error``; ``kept`` if the message is kept (its outcome unknown)."""

    name: ClassVar[str] = "send_failed"
    conversation_id: str
    record: ConversationRecord
    message: SendMessageOptions
    error: AssistantFlowError
    kept: bool


HookEvent = (
    TransitionEvent
    | AssistantStartedEvent
    | AssistantEndedEvent
    | ChoicesOfferedEvent
    | MessageSentEvent
    | SendFailedEvent
)

HOOK_NAMES: tuple[str, ...] = (
    "transition",
    "assistant_started",
    "assistant_ended",
    "choices_offered",
    "message_sent",
    "send_failed",
)
"""The names ``flow.on`` takes."""


def step_events(
    before: ConversationRecord, after: ConversationRecord, trigger: str
) -> list[HookEvent]:
    """What a step from ``before`` to ``after`` by ``trigger`` reports to the hooks."""
    events: list[HookEvent] = []
    cid = after.conversation_id
    if after.machine_state != before.machine_state:
        events.append(
            TransitionEvent(cid, after, trigger, before.machine_state, after.machine_state)
        )
    if trigger == "start_assistant":
        events.append(AssistantStartedEvent(cid, after, server_started=False))
    elif trigger == "join_assistant" and after.machine_state != before.machine_state:
        events.append(AssistantStartedEvent(cid, after, server_started=True))
    if after.state is State.ENDED and top_state(before.machine_state) is not State.ENDED:
        events.append(AssistantEndedEvent(cid, after))
    if after.choices and after.choices != before.choices:
        events.append(ChoicesOfferedEvent(cid, after, after.choices))
    return events


Callback = Callable[[Any], object]


class Hooks:
    """The callbacks registered on one flow, by name, in registration order."""

    __slots__ = ("_by_name", "_is_async", "registered")

    def __init__(self, *, is_async: bool) -> None:
        self._is_async = is_async
        self._by_name: dict[str, list[Callback]] = {}
        self.registered = False
        """Whether any callback is registered: a flow without hooks collects no events."""

    def add(self, name: str, callback: Callback) -> None:
        """Register ``callback`` for ``name``; refuses unknown names and the wrong kind."""
        if name not in HOOK_NAMES:
            raise InvalidInputError(
                f"flow.on: unknown hook {name!r}; the hooks are: {', '.join(HOOK_NAMES)}",
                field="name",
            )
        if not callable(callback):
            raise ConfigurationError(
                f"flow.on({name!r}, ...) needs a callable, got {type(callback).__name__}"
            )
        if not self._is_async and inspect.iscoroutinefunction(callback):
            raise ConfigurationError(
                f"flow.on({name!r}, ...): a Flow runs hooks without an event loop, so an "
                "async callback would never run; use AsyncFlow, or pass a plain function"
            )
        self._by_name.setdefault(name, []).append(callback)
        self.registered = True

    def run(self, events: list[HookEvent], log: Logger) -> None:
        """Call each event's hooks in order; one that raises is logged and the rest run."""
        for event in events:
            for callback in self._by_name.get(event.name, ()):
                try:
                    callback(event)
                except Exception as exc:  # isolated: the step is saved already
                    _log_failure(log, event, callback, exc)

    async def arun(self, events: list[HookEvent], log: Logger) -> None:
        """The asyncio twin of :meth:`run`: async callbacks are awaited, plain ones called."""
        for event in events:
            for callback in self._by_name.get(event.name, ()):
                try:
                    result = callback(event)
                    if inspect.isawaitable(result):
                        await _awaited(result)
                except Exception as exc:  # isolated, as in run()
                    _log_failure(log, event, callback, exc)


async def _awaited(result: Awaitable[object]) -> None:
    await result


def _log_failure(log: Logger, event: HookEvent, callback: Callback, exc: Exception) -> None:
    log.warning(
        "hook_failed",
        conversation_id=event.conversation_id,
        hook=event.name,
        callback=getattr(callback, "__qualname__", type(callback).__name__),
        error=type(exc).__name__,
    )
