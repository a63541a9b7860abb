"""The pure step: same input, same output, no I/O, and nothing changes on refusal."""

from __future__ import annotations

import pytest
from payloads import ARTICLES, init_response

from assistant_flow import ConversationRecord, TransitionError, UnknownChoiceError
from assistant_flow._events import Choose, EndAssistant, Receive, reply, start_assistant
from assistant_flow._messages import DeflectionArticle
from assistant_flow._step import step
from assistant_flow._templates import Choice


def awaiting() -> ConversationRecord:
    return step(ConversationRecord("c1"), start_assistant(init_response())).record


def test_the_first_reply_attaches_the_payload_and_moves_on() -> None:
    record = awaiting()
    outcome = step(record, reply("Hi", None, None, None))
    assert outcome.message is not None
    assert outcome.message.init_assistant_payload == record.init_payload
    assert outcome.message.is_in_assistant_mode is True
    assert outcome.changed
    assert outcome.record.machine_state == "in_assistant.conversing"
    assert outcome.record.version == record.version + 1
    assert outcome.record.init_payload is None


def test_a_step_is_deterministic_and_leaves_its_input_alone() -> None:
    record = awaiting()
    event = reply("Hi", None, None, None)
    assert step(record, event) == step(record, event)
    assert record.machine_state == "in_assistant.awaiting_first_reply"


def test_a_step_that_changes_nothing_says_so() -> None:
    record = ConversationRecord("c1", machine_state="in_assistant.conversing", version=4)
    outcome = step(record, Receive(choices=(), articles=None))
    assert not outcome.changed
    assert outcome.record is record
    assert step(ConversationRecord("c1", "ended", 2), EndAssistant()).changed is False


def test_every_reply_moves_the_record_on_so_each_delivery_has_its_own_key() -> None:
    record = ConversationRecord("c1", machine_state="in_assistant.conversing", version=4)
    first = step(record, reply("Hi", None, None, None))
    assert first.changed
    assert first.record.version == 5
    second = step(first.record, reply("Hi", None, None, None))
    assert first.message is not None
    assert second.message is not None
    assert first.message.to_wire() == second.message.to_wire()
    assert first.message.idempotency_key() != second.message.idempotency_key()


def test_a_refused_step_raises_before_deciding_anything() -> None:
    record = ConversationRecord("c1", machine_state="in_assistant.conversing", version=4)
    with pytest.raises(TransitionError):
        step(record, start_assistant(init_response()))
    with pytest.raises(UnknownChoiceError):
        step(record, Choose("Yes", None))


def test_ending_the_assistant_drops_what_it_offered() -> None:
    record = ConversationRecord(
        "c1",
        machine_state="in_assistant.conversing",
        version=1,
        choices=(Choice("Yes", "y"),),
        articles=(DeflectionArticle.model_validate(ARTICLES[0]),),
    )
    ended = step(record, EndAssistant()).record
    assert (ended.machine_state, ended.choices, ended.articles) == ("ended", (), ())


def test_a_message_offering_nothing_withdraws_what_is_on_offer_but_keeps_a_deflection() -> None:
    article = DeflectionArticle.model_validate(ARTICLES[0])
    record = ConversationRecord(
        "c1", "in_assistant.conversing", 1, choices=(Choice("A", "a"),), articles=(article,)
    )
    after = step(record, Receive(choices=(), articles=None)).record
    assert after.choices == ()
    assert after.articles == (article,)


def test_every_message_names_its_delivery_by_the_record_it_was_built_from() -> None:
    # The HTTP transport keys a resend by this scope; it is the record the message left.
    started = awaiting()
    first = step(started, reply("Hi", None, None, None))
    assert first.changed
    assert first.message is not None
    assert first.message.delivery_scope == f"c1@{started.run}@1"
    assert step(started, reply("Hi", None, None, None)).message == first.message

    offered = ConversationRecord(
        "c1", machine_state="in_assistant.conversing", version=5, choices=(Choice("Yes", "y"),)
    )
    chosen = step(offered, Choose("Yes", None))
    assert chosen.message is not None
    assert chosen.message.delivery_scope == "c1@5"

    deflected = ConversationRecord(
        "c1",
        machine_state="in_assistant.conversing",
        version=7,
        articles=(DeflectionArticle.model_validate(ARTICLES[0]),),
    )
    answered = step(deflected, reply("Thanks", None, None, None))
    assert answered.message is not None
    assert answered.message.delivery_scope == "c1@7"

    plain = step(chosen.record, reply("Hi", None, None, None))
    assert plain.changed
    assert plain.message is not None
    assert plain.message.delivery_scope == "c1@6"
    assert "deliveryScope" not in plain.message.to_wire()


def test_a_conversation_started_again_after_its_record_went_gets_new_delivery_scopes() -> None:
    # Deleted or expired, the record's version restarts; the same first reply of the new
    # run is another delivery, which a deduplicating server must not answer from the old one.
    earlier = step(awaiting(), reply("Hi", None, None, None)).message
    again = step(awaiting(), reply("Hi", None, None, None)).message
    assert earlier is not None
    assert again is not None
    assert earlier.delivery_scope != again.delivery_scope
    assert earlier.model_copy(update={"delivery_scope": None}) == again.model_copy(
        update={"delivery_scope": None}
    )  # the same message otherwise


def test_the_run_lasts_the_whole_conversation_and_is_stored() -> None:
    started = awaiting()
    assert started.run
    replied = step(started, reply("Hi", None, None, None)).record
    ended = step(replied, EndAssistant()).record
    assert started.run == replied.run == ended.run
    assert ConversationRecord.from_json(ended.to_json()) == ended
