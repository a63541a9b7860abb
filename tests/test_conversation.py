"""The conversation record: one JSON document that reads back exactly, and refuses garbage."""

from __future__ import annotations

import json

import pytest
from payloads import ARTICLES, greeting, init_response, quick_replies

from assistant_flow import (
    Attachment,
    ConversationRecord,
    CorruptRecordError,
    DeflectionArticle,
    InitAssistantResponse,
    KeptMessage,
    SendMessageOptions,
    State,
)
from assistant_flow._templates import Choice


def full_record() -> ConversationRecord:
    payload = InitAssistantResponse.model_validate(
        init_response(greeting(quick_replies("Pick", ("Ja", "ja"))))
    ).to_init_payload()
    return ConversationRecord(
        conversation_id="conv_ü",
        machine_state="in_assistant.awaiting_first_reply",
        version=7,
        init_payload=payload,
        choices=(Choice("Ja", "ja"), Choice("Nein", "nein")),
        articles=tuple(DeflectionArticle.model_validate(a) for a in ARTICLES),
        run="0123456789abcdef",
        outbox=(
            KeptMessage(
                SendMessageOptions(
                    conversation_id="conv_ü",
                    body="Ja",
                    payload="ja",
                    is_in_assistant_mode=True,
                    init_assistant_payload=payload,
                    attachments=[Attachment.from_bytes(b"\x00\xffpdf", "a.pdf")],
                    delivery_scope="conv_ü@0123456789abcdef@6",
                ),
                answers_choices=True,
            ),
        ),
        seen=("m_1", "m_2"),
        latest_at="2026-11-25T10:00:02.000Z",
    )


def test_a_record_round_trips_through_json() -> None:
    record = full_record()
    text = record.to_json()
    back = ConversationRecord.from_json(text)
    assert back == record
    # The kept message reads back byte for byte, so its key is the one it went out with.
    [kept] = back.outbox
    assert kept.message.attachments is not None
    assert kept.message.attachments[0].content == b"\x00\xffpdf"
    assert kept.idempotency_key == record.outbox[0].idempotency_key is not None
    assert json.loads(text)["format"] == 2


def test_a_record_written_by_0_2_0_still_reads() -> None:
    text = '{"format":1,"conversationId":"c","state":"in_assistant.conversing","version":3}'
    record = ConversationRecord.from_json(text)
    assert (record.version, record.outbox, record.seen, record.latest_at) == (3, (), (), None)


def test_an_idle_record_is_a_small_document() -> None:
    record = ConversationRecord("conv_1", machine_state="in_assistant.conversing", version=3)
    assert record.to_json() == (
        '{"format":2,"conversationId":"conv_1","state":"in_assistant.conversing","version":3}'
    )
    assert record.state == State.IN_ASSISTANT
    assert record.in_assistant_mode is True


def test_records_read_back_share_their_state_strings() -> None:
    first = ConversationRecord.from_json(ConversationRecord("a", "ended", 1).to_json())
    second = ConversationRecord.from_json(ConversationRecord("b", "ended", 1).to_json())
    assert first.machine_state is second.machine_state


def test_the_pending_payload_exists_exactly_while_awaiting_the_first_reply() -> None:
    payload = full_record().init_payload
    with pytest.raises(CorruptRecordError, match="pending"):
        ConversationRecord("c", machine_state="in_assistant.awaiting_first_reply")
    with pytest.raises(CorruptRecordError, match="pending"):
        ConversationRecord("c", machine_state="in_assistant.conversing", init_payload=payload)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"format": 3, "conversationId": "c", "state": "init", "version": 0}',
        '{"format": 1, "state": "init", "version": 0}',
        '{"format": 1, "conversationId": "c", "state": "lost", "version": 0}',
        '{"format": 1, "conversationId": "c", "state": "init", "version": -1}',
        '{"format": 1, "conversationId": "c", "state": "init", "version": "1"}',
        '{"format": 1, "conversationId": "c", "state": "init", "version": 0, "choices": [[1, 2]]}',
        '{"format": 1, "conversationId": "c", "state": "init", "version": 0, "articles": [{}]}',
        '{"format": 1, "conversationId": "c", "state": "init", "version": 0, "run": 7}',
    ],
)
def test_garbage_is_a_corrupt_record_error(text: str) -> None:
    with pytest.raises(CorruptRecordError):
        ConversationRecord.from_json(text)
