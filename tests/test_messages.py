"""Wire models serialise to exactly Kustomer's documented camelCase shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from payloads import greeting, init_response, mll, quick_replies

from assistant_flow import (
    Attachment,
    DeflectionArticle,
    InitAssistantResponse,
    LastDeflection,
    ReceivedMessage,
    SendMessageOptions,
    SentMessage,
)
from assistant_flow._templates import Choice, MllTemplate, offered_choices

SEND_OPTIONS = {
    "conversationId",
    "body",
    "payload",
    "attachments",
    "lastDeflection",
    "isInAssistantMode",
    "initAssistantPayload",
    "lang",
}


def test_send_options_use_exactly_the_documented_wire_names() -> None:
    aliases = {
        field.alias for field in SendMessageOptions.model_fields.values() if not field.exclude
    }
    assert aliases == SEND_OPTIONS


def test_the_delivery_scope_never_goes_on_the_wire() -> None:
    message = SendMessageOptions(conversation_id="c1", body="Hi", delivery_scope="c1@3")
    assert message.delivery_scope == "c1@3"
    assert message.to_wire() == {"conversationId": "c1", "body": "Hi"}
    assert "c1@3" not in message.model_dump_json(by_alias=True)


def test_unset_options_are_left_out_and_false_is_kept() -> None:
    message = SendMessageOptions(conversation_id="c1", body="Hi", is_in_assistant_mode=False)
    assert message.to_wire() == {"conversationId": "c1", "body": "Hi", "isInAssistantMode": False}


def test_outbound_models_refuse_undocumented_fields() -> None:
    with pytest.raises(ValueError, match="extra"):
        SendMessageOptions.model_validate({"conversationId": "c1", "bodyText": "Hi"})


def test_init_response_keeps_extra_fields_but_the_payload_holds_only_documented_ones() -> None:
    raw = init_response(greeting(quick_replies("Pick", ("A", "a")), channel="chat"))
    raw["experiment"] = "b"
    response = InitAssistantResponse.model_validate(raw)
    assert response.model_extra == {"experiment": "b"}
    assert response.attributes["publicName"] == "Helper"
    payload = response.to_init_payload().to_wire()
    assert set(payload) == {"assistant", "dialog", "node", "initialMessages"}
    assert set(payload["initialMessages"][0]) == {
        "meta",
        "direction",
        "directionType",
        "importedAt",
        "trackingId",
        "lang",
    }
    assert set(payload["initialMessages"][0]["meta"]) == {"template"}


def test_a_greeting_missing_optional_fields_sends_what_it_has() -> None:
    raw = init_response({"direction": "out", "meta": {"template": {"templateType": "text"}}})
    payload = InitAssistantResponse.model_validate(raw).to_init_payload().to_wire()
    assert payload["initialMessages"] == [
        {"direction": "out", "meta": {"template": {"templateType": "text"}}}
    ]


def test_templates_travel_verbatim_including_nulls_and_unknown_keys() -> None:
    template = {"templateType": "text", "body": None, "future": {"nested": [1, None]}}
    raw = init_response(greeting(template))
    payload = InitAssistantResponse.model_validate(raw).to_init_payload().to_wire()
    assert payload["initialMessages"][0]["meta"]["template"] == template


def test_sent_message_reads_a_callback_response_with_extra_fields() -> None:
    sent = SentMessage.model_validate(
        {
            "messageId": "m1",
            "body": "Hi",
            "createdAt": "2026-11-25T10:00:00.000Z",
            "direction": "in",
            "conversationId": "c1",
            "attachments": [],
            "sentBy": {"type": "customer"},
        }
    )
    assert (sent.message_id, sent.conversation_id, sent.direction) == ("m1", "c1", "in")
    assert sent.model_extra == {"sentBy": {"type": "customer"}}


def test_sent_message_requires_the_documented_required_fields() -> None:
    with pytest.raises(ValueError, match="messageId"):
        SentMessage.model_validate({"createdAt": "x", "direction": "in", "conversationId": "c"})


def test_last_deflection_has_the_documented_shape() -> None:
    article = DeflectionArticle(id="a1", version="2", visited=3, lang="en", title="T", url="u")
    assert LastDeflection(articles=[article]).to_wire() == {
        "articles": [
            {"id": "a1", "version": "2", "visited": 3, "lang": "en", "title": "T", "url": "u"}
        ]
    }


def test_received_message_reads_meta_articles_and_template() -> None:
    message = ReceivedMessage.model_validate(
        {"meta": {"template": {"templateType": "deflection"}, "articles": [{"id": "a1"}]}}
    )
    assert message.meta is not None
    assert message.meta.articles == [DeflectionArticle(id="a1")]


def test_an_attachment_read_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "invoice.pdf"
    path.write_bytes(b"%PDF-1.7 ...")
    attachment = Attachment.from_path(path)
    assert attachment.to_wire() == {
        "file": {"name": "invoice.pdf", "type": "application/pdf", "size": 12}
    }
    assert "PDF-1.7" not in repr(attachment)


def test_quick_replies_offer_their_buttons() -> None:
    template = quick_replies("Pick", ("Billing", "billing"), ("😀", "smile"))
    assert offered_choices(template, "t") == (Choice("Billing", "billing"), Choice("😀", "smile"))


def test_mll_offers_every_live_node_depth_first() -> None:
    template = mll(
        "Which?",
        [
            {"id": "a", "displayName": "A", "children": [{"id": "a1", "displayName": "A1"}]},
            {"id": "gone", "displayName": "Gone", "deleted": True, "children": []},
            {"id": "b", "displayName": "B"},
        ],
    )
    assert [node.id for node in MllTemplate.model_validate(template).nodes()] == ["a", "a1", "b"]
    assert offered_choices(template, "t") == (
        Choice("A", "a"),
        Choice("A1", "a1"),
        Choice("B", "b"),
    )


@pytest.mark.parametrize("template", [None, {}, {"templateType": "text", "body": "hi"}])
def test_templates_without_choices_offer_none(template: dict[str, object] | None) -> None:
    assert offered_choices(template, "t") is None


# --- the hand-written fast paths agree with pydantic -----------------------------------------


_TEXT = st.one_of(st.none(), st.text(min_size=1, max_size=8))
_ARTICLES = st.lists(
    st.builds(
        DeflectionArticle,
        id=st.text(min_size=1, max_size=4),
        visited=st.integers(0, 9),
        title=_TEXT,
        url=_TEXT,
    ),
    min_size=1,
    max_size=2,
)


@given(
    body=_TEXT,
    payload=_TEXT,
    lang=_TEXT,
    mode=st.one_of(st.none(), st.booleans()),
    articles=st.one_of(st.none(), _ARTICLES),
    first=st.booleans(),
    files=st.lists(st.binary(max_size=4), max_size=2),
)
def test_the_hand_written_wire_shape_is_pydantics(
    body: str | None,
    payload: str | None,
    lang: str | None,
    mode: bool | None,
    articles: list[DeflectionArticle] | None,
    first: bool,
    files: list[bytes],
) -> None:
    init = (
        InitAssistantResponse.model_validate(init_response()).to_init_payload() if first else None
    )
    fields: dict[str, Any] = {
        "body": body,
        "payload": payload,
        "attachments": [Attachment.from_bytes(c, f"f{i}.pdf") for i, c in enumerate(files)] or None,
        "last_deflection": None if articles is None else LastDeflection(articles=articles),
        "is_in_assistant_mode": mode,
        "init_assistant_payload": init,
        "lang": lang,
        "delivery_scope": "c@r@1",
    }
    validated = SendMessageOptions(conversation_id="conv_1", **fields)
    trusted = SendMessageOptions.checked("conv_1", **fields)
    pydantic_dump = validated.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert validated.to_wire() == pydantic_dump
    assert trusted.to_wire() == pydantic_dump
    assert trusted == validated
    assert trusted.idempotency_key() == validated.idempotency_key()


def test_an_answer_built_in_process_equals_one_read_from_json() -> None:
    fields: dict[str, Any] = {
        "message_id": "msg_1",
        "body": "Hi",
        "created_at": "2026-11-25T10:00:00.000Z",
        "direction": "in",
        "conversation_id": "conv_1",
        "attachments": None,
    }
    assert SentMessage.checked(**fields) == SentMessage.model_validate(fields)
    assert SentMessage.checked(**fields).model_dump() == SentMessage(**fields).model_dump()
