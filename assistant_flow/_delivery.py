"""One flow call without I/O: which messages to send, in what order, and what to save.

``Flow`` and ``AsyncFlow`` carry a :class:`Delivery` out, each in a dozen lines::

    with store.session(conversation_id) as held:
        call = Delivery(held.record, conversation_id, event, log)
        while (message := call.next_message()) is not None:
            try:
                call.confirmed(transport.send(message))
            except Exception as exc:
                call.failed(exc)
        if call.to_save is not None:
            held.save(call.to_save)
    return call.result()

so the rules below are written once for both (the transactional outbox of ARCHITECTURE.md):

* A kept message (its earlier send's outcome was unknown) goes first, with its own scope
  and so its own ``Idempotency-Key``; once confirmed its effect is applied
  (:func:`~assistant_flow._step.delivered`), then the call's own event is stepped.
* A call that would send exactly the kept message (the caller sending it again) is that
  message: it is delivered once and its answer returned.
* A send whose outcome is unknown keeps its message (:func:`~assistant_flow._step.keep`),
  state unmoved; a definite refusal keeps nothing. Either way the error is raised after the
  record is saved, so what was confirmed before it stays confirmed.
"""

from __future__ import annotations

from ._conversation import ConversationRecord, KeptMessage
from ._events import Choose, Event, Reply
from ._exceptions import AssistantFlowError, TransportError
from ._hooks import HookEvent, MessageSentEvent, SendFailedEvent, step_events
from ._logging import Logger, info_enabled
from ._messages import SendMessageOptions, SentMessage
from ._step import Outcome, delivered, keep, step

__all__ = ["Delivery"]


class Delivery:
    """The decisions of one flow call on one conversation; see the module docstring.

    ``event`` is ``None`` for :meth:`ConversationHandle.flush`: deliver what is kept, nothing
    else. ``redelivered`` lists the answers to kept messages confirmed by this call.
    """

    __slots__ = (
        "_error",
        "_event",
        "_info",
        "_interrupt",
        "_kept",
        "_loaded",
        "_log",
        "_outcome",
        "_resend",
        "_sent",
        "happened",
        "record",
        "redelivered",
    )

    def __init__(
        self,
        loaded: ConversationRecord | None,
        conversation_id: str,
        event: Event | None,
        log: Logger,
        *,
        collect: bool = False,
    ) -> None:
        self.record = ConversationRecord(conversation_id) if loaded is None else loaded
        self._loaded = self.record
        self._event = event
        self._log = log
        self._info = info_enabled(log)
        self._kept: KeptMessage | None = None
        self._outcome: Outcome | None = None
        self._resend = False
        self._sent: SentMessage | None = None
        self._error: AssistantFlowError | None = None
        self._interrupt: BaseException | None = None
        self.redelivered: list[SentMessage] = []
        # What the hooks are told once the call is saved; None when the flow has no hooks.
        self.happened: list[HookEvent] | None = [] if collect else None

    # --- what the driver asks -----------------------------------------------------------

    def next_message(self) -> SendMessageOptions | None:
        """The message to send now, or ``None`` when the call has nothing more to send."""
        if self._error is not None or self._sent is not None or self._interrupt is not None:
            return None
        record = self.record
        if record.outbox:
            self._kept = record.outbox[0]
            if self._event is not None and not self.redelivered:
                self._resend = self._would_send_again(self._kept)
            return self._kept.message
        self._kept = None
        if self._event is None or self._outcome is not None:
            return None
        try:
            outcome = step(record, self._event)
        except AssistantFlowError as exc:
            self._error = exc
            return None
        self._outcome = outcome
        if outcome.message is None:
            self.record = outcome.record
            if self._info:
                _log_transition(self._log, record, outcome.record, outcome.trigger)
            if self.happened is not None:
                self.happened.extend(step_events(record, outcome.record, outcome.trigger))
        return outcome.message

    def confirmed(self, sent: SentMessage) -> None:
        """The transport delivered the message :meth:`next_message` gave."""
        before = self.record
        if self._kept is not None:
            message, trigger = self._kept.message, "reply"
            self.record = delivered(before)
            self.redelivered.append(sent)
            if self._resend:
                self._sent, self._event = sent, None
        else:
            outcome = self._outcome
            assert outcome is not None
            assert outcome.message is not None
            message, trigger = outcome.message, outcome.trigger
            self.record, self._sent = outcome.record, sent
        redelivered = self._kept is not None
        if self._info:
            _log_sent(self._log, before, self.record, message, sent, redelivered=redelivered)
        if self.happened is not None:
            self.happened.extend(step_events(before, self.record, trigger))
            self.happened.append(
                MessageSentEvent(
                    self.record.conversation_id, self.record, message, sent, redelivered
                )
            )

    def failed(self, exc: Exception) -> None:
        """The transport raised ``exc`` for the message :meth:`next_message` gave."""
        error = exc if isinstance(exc, AssistantFlowError) else _transport_error(exc)
        unknown = isinstance(error, TransportError) and error.outcome_unknown
        record = self.record
        kept = self._kept
        if kept is not None:
            message = kept.message
            if unknown:
                error.add_note(
                    "this was the conversation's kept message (an earlier send whose outcome "
                    "is unknown) being delivered again; it stays kept, and this call did "
                    "nothing else"
                )
            else:
                # Refused for good, so it was never stored: nothing of it may stay pending.
                self.record = _without_first_kept(record)
                error.add_note(
                    "this was the conversation's kept message (an earlier send whose outcome "
                    "was unknown); Kustomer refused it, so it was dropped and this call did "
                    "nothing else: make the call again"
                )
        else:
            outcome = self._outcome
            assert outcome is not None
            assert outcome.message is not None
            message = outcome.message
            if unknown:
                self.record = keep(record, message, answers_choices=outcome.answers_choices)
                error.add_note(
                    "the outcome is unknown, so the message is kept: it is delivered, with "
                    "the same Idempotency-Key, before this conversation's next step (or by "
                    "flush()), exactly once. Carry on; sending it again is safe."
                )
        if isinstance(error, TransportError):
            error.kept = unknown
        self._error = error
        if self.happened is not None:
            self.happened.append(
                SendFailedEvent(self.record.conversation_id, self.record, message, error, unknown)
            )
        self._log.warning(
            "send_failed",
            conversation_id=record.conversation_id,
            first_reply=message.init_assistant_payload is not None,
            redelivery=kept is not None,
            kept=unknown,
            # The type of what the transport raised says most; its text may quote a request.
            error=type(exc).__name__,
        )

    def interrupted(self, exc: BaseException) -> None:
        """The send was cancelled or interrupted (``CancelledError``, ``KeyboardInterrupt``).

        The request may have gone out, so the message is kept as for any unknown outcome;
        the driver saves that, then :meth:`result` raises ``exc`` again.
        """
        self._interrupt = exc
        if self._kept is None:
            outcome = self._outcome
            assert outcome is not None
            assert outcome.message is not None
            self.record = keep(
                self.record, outcome.message, answers_choices=outcome.answers_choices
            )
        self._log.warning(
            "send_interrupted",
            conversation_id=self.record.conversation_id,
            redelivery=self._kept is not None,
            error=type(exc).__name__,
        )

    @property
    def to_save(self) -> ConversationRecord | None:
        """The record to save as the call ends, or ``None`` if nothing changed."""
        return None if self.record is self._loaded else self.record

    @property
    def sent(self) -> SentMessage | None:
        """The last answer the transport gave in this call (for an error raised by a save)."""
        if self._sent is not None:
            return self._sent
        return self.redelivered[-1] if self.redelivered else None

    def result(self) -> SentMessage | None:
        """The answer to the call's own message; raises the call's error, if any."""
        if self._interrupt is not None:
            raise self._interrupt
        if self._error is not None:
            raise self._error
        return self._sent

    # --- helpers --------------------------------------------------------------------------

    def _would_send_again(self, kept: KeptMessage) -> bool:
        """Whether the call's event would send exactly the kept message (a resend)."""
        if not isinstance(self._event, Reply | Choose):
            return False
        try:
            again = step(self.record, self._event).message
        except AssistantFlowError:
            return False
        return again is not None and again.same_delivery(kept.message)


def _without_first_kept(record: ConversationRecord) -> ConversationRecord:
    return ConversationRecord(
        record.conversation_id,
        record.machine_state,
        record.version + 1,
        record.init_payload,
        record.choices,
        record.articles,
        record.run,
        record.outbox[1:],
        record.seen,
        record.latest_at,
    )


def _transport_error(exc: Exception) -> TransportError:
    """The library error for a transport that raised something of its own."""
    error = TransportError(
        f"the transport raised {type(exc).__name__}: taken as not delivered (raise a "
        "TransportError with outcome_unknown set when the message may have gone)"
    )
    error.__cause__ = exc
    return error


def _log_transition(
    log: Logger, before: ConversationRecord, after: ConversationRecord, trigger: str
) -> None:
    # conversation_id goes on each event rather than through log.bind(): binding builds a
    # new logger per message, which costs more than the rest of the logging.
    if after.machine_state != before.machine_state:
        log.info(
            "transition",
            conversation_id=after.conversation_id,
            trigger=trigger,
            source=before.machine_state,
            dest=after.machine_state,
        )


def _log_sent(
    log: Logger,
    before: ConversationRecord,
    after: ConversationRecord,
    message: SendMessageOptions,
    sent: SentMessage,
    *,
    redelivered: bool,
) -> None:
    _log_transition(log, before, after, "reply")
    log.info(
        "message_sent",
        conversation_id=after.conversation_id,
        message_id=sent.message_id,
        in_assistant_mode=message.is_in_assistant_mode,
        first_reply=message.init_assistant_payload is not None,
        has_payload=message.payload is not None,
        deflection_articles=len(message.last_deflection.articles) if message.last_deflection else 0,
        attachments=len(message.attachments) if message.attachments else 0,
        redelivered=redelivered,
    )
