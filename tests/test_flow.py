"""The lifecycle behaviour a user relies on, run against Flow and AsyncFlow alike."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from conftest import Harness
from payloads import ARTICLES, assistant_message, greeting, init_response, mll, quick_replies

from assistant_flow import (
    Attachment,
    InvalidInputError,
    State,
    TransitionError,
    TransportError,
    UnknownArticleError,
    UnknownChoiceError,
    UnknownEventError,
)

SIX_FIELDS = {"meta", "direction", "directionType", "importedAt", "trackingId", "lang"}


# --- isInAssistantMode ------------------------------------------------------------------------


async def test_in_assistant_mode_is_absent_before_an_assistant_starts(harness: Harness) -> None:
    conv = harness.conversation("conv_1")
    await conv.send_message("Hello?")
    assert harness.transport.sent == [{"conversationId": "conv_1", "body": "Hello?"}]
    assert await conv.state == State.INIT


async def test_in_assistant_mode_is_true_on_every_send_while_the_assistant_runs(
    harness: Harness,
) -> None:
    conv = await harness.started()
    for text in ("first", "second", "third"):
        await conv.send_message(text)
    assert [sent["isInAssistantMode"] for sent in harness.transport.sent] == [True, True, True]
    assert await conv.state == State.IN_ASSISTANT


async def test_in_assistant_mode_is_false_after_the_assistant_ends(harness: Harness) -> None:
    conv = await harness.started()
    await conv.send_message("to the bot")
    await conv.end_assistant()
    await conv.send_message("to the agent")
    assert harness.transport.sent[-1] == {
        "conversationId": "conv_1",
        "body": "to the agent",
        "isInAssistantMode": False,
    }
    assert await conv.state == State.ENDED


# --- initAssistantPayload ---------------------------------------------------------------------


async def test_first_reply_carries_init_payload_cut_to_the_documented_fields(
    harness: Harness,
) -> None:
    response = init_response(greeting(quick_replies("Pick one", ("Billing", "billing"))))
    conv = await harness.started(response=response)
    await conv.send_message("Hi")
    payload = harness.transport.sent[0]["initAssistantPayload"]
    assert set(payload) == {"assistant", "dialog", "node", "initialMessages"}
    assert (payload["assistant"], payload["dialog"], payload["node"]) == (
        "asst_1",
        "dlg_1",
        "node_1",
    )
    [initial] = payload["initialMessages"]
    assert set(initial) == SIX_FIELDS
    # meta keeps only the template, and the template travels verbatim.
    assert initial["meta"] == {"template": response["initialMessages"][0]["meta"]["template"]}
    assert initial["directionType"] == "initial-out"


async def test_init_payload_is_sent_on_the_first_reply_only(harness: Harness) -> None:
    conv = await harness.started()
    await conv.send_message("one")
    await conv.send_message("two")
    await conv.end_assistant()
    await conv.send_message("three")
    carries = ["initAssistantPayload" in sent for sent in harness.transport.sent]
    assert carries == [True, False, False]


async def test_a_failed_first_send_keeps_the_payload_for_the_retry(harness: Harness) -> None:
    conv = await harness.started()
    before = await conv.snapshot()
    harness.transport.fail_next()
    with pytest.raises(TransportError):
        await conv.send_message("Hi")
    assert harness.transport.sent == []
    assert await conv.snapshot() == before

    await conv.send_message("Hi")
    retry = harness.transport.sent[0]
    assert before.init_payload is not None
    assert retry["initAssistantPayload"] == before.init_payload.to_wire()
    assert (await conv.snapshot()).awaiting_first_reply is False


async def test_an_error_raised_by_a_custom_transport_becomes_a_transport_error(
    harness: Harness,
) -> None:
    conv = await harness.started()
    harness.transport.fail_next(error=ConnectionResetError("peer went away"))
    with pytest.raises(TransportError) as caught:
        await conv.send_message("Hi")
    assert isinstance(caught.value.__cause__, ConnectionResetError)
    assert (await conv.snapshot()).awaiting_first_reply


async def test_re_engaging_after_the_end_sends_a_fresh_payload(harness: Harness) -> None:
    conv = await harness.started()
    await conv.send_message("first run")
    await conv.end_assistant()
    await conv.start_assistant(init_response(assistant="asst_2"))
    assert await conv.state == State.IN_ASSISTANT
    await conv.send_message("second run")
    await conv.send_message("still second run")
    second, third = harness.transport.sent[1:]
    assert second["initAssistantPayload"]["assistant"] == "asst_2"
    assert second["isInAssistantMode"] is True
    assert "initAssistantPayload" not in third


async def test_new_greetings_before_any_reply_replace_the_pending_ones(harness: Harness) -> None:
    conv = await harness.started()
    await conv.start_assistant(init_response(assistant="asst_again"))
    await conv.send_message("Hi")
    assert harness.transport.sent[0]["initAssistantPayload"]["assistant"] == "asst_again"


async def test_starting_again_mid_run_is_refused_and_changes_nothing(harness: Harness) -> None:
    conv = await harness.started()
    await conv.send_message("Hi")
    before = await conv.snapshot()
    with pytest.raises(TransitionError) as caught:
        await conv.start_assistant(init_response(assistant="asst_2"))
    assert "end_assistant" in caught.value.allowed
    assert await conv.snapshot() == before


# --- quick replies and mll --------------------------------------------------------------------


async def test_choosing_a_greeting_quick_reply_by_text_sends_text_and_value(
    harness: Harness,
) -> None:
    buttons = quick_replies("What do you need?", ("Billing", "billing"), ("Tech", "tech"))
    conv = await harness.started(response=init_response(greeting(buttons)))
    sent = await conv.choose("Billing")
    wire = harness.transport.sent[0]
    assert (wire["body"], wire["payload"]) == ("Billing", "billing")
    assert "initAssistantPayload" in wire
    assert sent.body == "Billing"


async def test_choosing_a_quick_reply_by_value(harness: Harness) -> None:
    conv = await harness.started()
    await conv.receive(
        assistant_message("conv_1", quick_replies("Pick", ("Talk to a human", "handoff")))
    )
    await conv.choose("handoff")
    assert harness.transport.sent[0]["body"] == "Talk to a human"
    assert harness.transport.sent[0]["payload"] == "handoff"


async def test_a_choice_not_offered_lists_the_offered_ones_and_sends_nothing(
    harness: Harness,
) -> None:
    conv = await harness.started()
    await conv.receive(
        assistant_message("conv_1", quick_replies("Pick", ("Yes", "y"), ("No", "n")))
    )
    before = await conv.snapshot()
    with pytest.raises(UnknownChoiceError) as caught:
        await conv.choose("Maybe")
    assert caught.value.offered == ("Yes", "No")
    assert "'Yes', 'No'" in str(caught.value)
    assert harness.transport.sent == []
    assert await conv.snapshot() == before


async def test_a_choice_is_on_offer_once(harness: Harness) -> None:
    conv = await harness.started()
    await conv.receive(assistant_message("conv_1", quick_replies("Pick", ("Yes", "y"))))
    await conv.choose("Yes")
    with pytest.raises(UnknownChoiceError):
        await conv.choose("Yes")


async def test_free_text_keeps_the_buttons_and_a_newer_message_withdraws_them(
    harness: Harness,
) -> None:
    conv = await harness.started()
    await conv.receive(assistant_message("conv_1", quick_replies("Pick", ("Yes", "y"))))
    await conv.send_message("what do you mean?")
    assert [c.display_text for c in (await conv.snapshot()).choices] == ["Yes"]
    # A newer assistant message that offers nothing withdraws the question's buttons.
    await conv.receive(assistant_message("conv_1", {"templateType": "text", "body": "Hm"}))
    assert (await conv.snapshot()).choices == ()
    with pytest.raises(UnknownChoiceError):
        await conv.choose("Yes")
    await conv.receive(assistant_message("conv_1", quick_replies("Again", ("Yes", "y"))))
    await conv.receive(assistant_message("conv_1", quick_replies("Now", ("Red", "r"))))
    with pytest.raises(UnknownChoiceError):
        await conv.choose("Yes")
    await conv.choose("Red")
    assert harness.transport.sent[-1]["payload"] == "r"


TREE: list[dict[str, Any]] = [
    {
        "id": "tvs",
        "displayName": "TVs",
        "children": [{"id": "tv_size", "displayName": "Size"}],
    },
    {
        "id": "phones",
        "displayName": "Phones",
        "children": [
            {"id": "phone_size", "displayName": "Size"},
            {"id": "old", "displayName": "Retired", "deleted": True},
        ],
    },
]


@pytest.mark.parametrize(
    ("choice", "body", "payload"),
    [("TVs", "TVs", "tvs"), ("phone_size", "Size", "phone_size"), ("Phones", "Phones", "phones")],
)
async def test_choosing_an_mll_node_sends_display_name_and_id(
    harness: Harness, choice: str, body: str, payload: str
) -> None:
    conv = await harness.started()
    await conv.receive(assistant_message("conv_1", mll("Which product?", TREE)))
    await conv.choose(choice)
    wire = harness.transport.sent[0]
    assert (wire["body"], wire["payload"]) == (body, payload)


async def test_an_mll_name_shared_by_two_nodes_asks_for_the_id(harness: Harness) -> None:
    conv = await harness.started()
    await conv.receive(assistant_message("conv_1", mll("Which product?", TREE)))
    with pytest.raises(InvalidInputError, match="'tv_size', 'phone_size'"):
        await conv.choose("Size")
    with pytest.raises(UnknownChoiceError):
        await conv.choose("Retired")
    assert harness.transport.sent == []


# --- deflection -------------------------------------------------------------------------------


async def test_the_reply_after_a_deflection_carries_articles_and_visit_counts(
    harness: Harness,
) -> None:
    conv = await harness.started()
    await conv.send_message("my password")
    await conv.receive(assistant_message("conv_1", {"templateType": "deflection"}, ARTICLES))
    await conv.visit_article("art_1")
    await conv.visit_article("art_1")
    await conv.send_message("that did not help")
    assert harness.transport.sent[1]["lastDeflection"] == {
        "articles": [
            {
                "id": "art_1",
                "version": "3",
                "visited": 2,
                "lang": "en_us",
                "title": "Reset your password",
                "url": "https://help.example.test/en_us/reset",
            },
            {"id": "art_2", "version": "1", "visited": 0, "lang": "en_us", "title": "Billing FAQ"},
        ]
    }
    await conv.send_message("hello?")
    assert "lastDeflection" not in harness.transport.sent[2]


async def test_a_choice_answering_a_deflection_carries_it_too(harness: Harness) -> None:
    conv = await harness.started()
    await conv.send_message("hi")
    helpful = quick_replies("Did that help?", ("Yes", "yes"), ("No", "no"))
    await conv.receive(assistant_message("conv_1", helpful, ARTICLES[:1]))
    await conv.visit_article("art_1")
    await conv.choose("No")
    wire = harness.transport.sent[1]
    assert wire["payload"] == "no"
    assert wire["lastDeflection"]["articles"][0]["visited"] == 1


async def test_visiting_an_article_not_offered_is_refused(harness: Harness) -> None:
    conv = await harness.started()
    with pytest.raises(UnknownArticleError, match="no deflection is pending"):
        await conv.visit_article("art_1")
    await conv.receive(assistant_message("conv_1", None, ARTICLES))
    with pytest.raises(UnknownArticleError) as caught:
        await conv.visit_article("art_9")
    assert caught.value.known == ("art_1", "art_2")


async def test_a_failed_send_keeps_the_deflection_pending(harness: Harness) -> None:
    conv = await harness.started()
    await conv.receive(assistant_message("conv_1", None, ARTICLES))
    await conv.visit_article("art_2")
    harness.transport.fail_next()
    with pytest.raises(TransportError):
        await conv.send_message("no luck")
    await conv.send_message("no luck")
    assert harness.transport.sent[0]["lastDeflection"]["articles"][1]["visited"] == 1


# --- receive ----------------------------------------------------------------------------------


async def test_the_customers_own_echoed_messages_change_nothing(harness: Harness) -> None:
    conv = await harness.started()
    before = await conv.snapshot()
    echo = assistant_message("conv_1", quick_replies("x", ("A", "a")))
    echo["direction"] = "in"
    await conv.receive(echo)
    assert await conv.snapshot() == before


async def test_a_message_for_another_conversation_is_refused(harness: Harness) -> None:
    conv = await harness.started()
    with pytest.raises(InvalidInputError) as caught:
        await conv.receive(assistant_message("conv_other", quick_replies("x", ("A", "a"))))
    assert caught.value.field == "conversationId"


async def test_a_malformed_quick_reply_template_names_the_field(harness: Harness) -> None:
    conv = await harness.started()
    broken = {"templateType": "quick_replies", "actions": [{"displayText": "A"}]}
    with pytest.raises(InvalidInputError) as caught:
        await conv.receive(assistant_message("conv_1", broken))
    assert caught.value.field == "actions.0.value"
    assert "meta.template" in str(caught.value)


async def test_unknown_template_types_are_accepted_and_offer_nothing(harness: Harness) -> None:
    conv = await harness.started()
    await conv.receive(assistant_message("conv_1", {"templateType": "feedback", "rating": 5}))
    assert (await conv.snapshot()).choices == ()


# --- bad input: a typed error naming the field, and nothing touched ----------------------------


@pytest.mark.parametrize("missing", ["assistant", "dialog", "node"])
async def test_an_init_response_without_its_ids_names_the_missing_one(
    harness: Harness, missing: str
) -> None:
    response = init_response()
    del response[missing]
    conv = harness.conversation("conv_1")
    with pytest.raises(InvalidInputError) as caught:
        await conv.start_assistant(response)
    assert caught.value.field == missing
    assert f"`{missing}`" in str(caught.value)
    assert await conv.state == State.INIT
    assert len(harness.store) == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"body": ""}, "body"),
        ({"body": "   "}, "body"),
        ({}, "body"),
        ({"body": 42}, "body"),
        ({"body": "hi", "payload": 7}, "payload"),
        ({"body": "hi", "payload": ""}, "payload"),
        ({"body": "hi", "lang": ""}, "lang"),
        ({"body": "hi", "attachments": "file.png"}, "attachments"),
        ({"body": "hi", "attachments": [{"file": "x"}]}, "attachments.0"),
    ],
)
async def test_a_bad_message_names_the_field_and_sends_nothing(
    harness: Harness, kwargs: dict[str, Any], field: str
) -> None:
    conv = await harness.started()
    before = await conv.snapshot()
    with pytest.raises(InvalidInputError) as caught:
        await conv.send_message(**kwargs)
    assert caught.value.field == field
    assert f"`{field}`" in str(caught.value)
    assert harness.transport.sent == []
    assert await conv.snapshot() == before


async def test_an_error_never_quotes_the_rejected_value(harness: Harness) -> None:
    conv = await harness.started()
    with pytest.raises(InvalidInputError) as caught:
        await conv.send_message(body="hi", payload=["sk_live_secret_value"])
    assert "sk_live_secret_value" not in str(caught.value)
    assert "got list" in str(caught.value)


@pytest.mark.parametrize("conversation_id", ["", "   ", None, 12])
async def test_a_bad_conversation_id_is_refused(harness: Harness, conversation_id: Any) -> None:
    with pytest.raises(InvalidInputError) as caught:
        harness.flow.conversation(conversation_id)
    assert caught.value.field == "conversation_id"


async def test_an_init_response_of_the_wrong_type_is_refused(harness: Harness) -> None:
    conv = harness.conversation("conv_1")
    with pytest.raises(InvalidInputError, match="expected a dict"):
        await conv.start_assistant(["asst_1"])


async def test_the_callers_init_response_is_not_modified(harness: Harness) -> None:
    response = init_response(greeting(quick_replies("Pick", ("A", "a"))))
    original = copy.deepcopy(response)
    conv = await harness.started(response=response)
    await conv.choose("A")
    assert response == original


# --- attachments and lang ---------------------------------------------------------------------


async def test_attachments_and_lang_reach_the_wire(harness: Harness) -> None:
    conv = await harness.started()
    photo = Attachment(name="receipt.png", content_type="image/png", content=b"\x89PNG....")
    sent = await conv.send_message(attachments=[photo], lang="fr")
    wire = harness.transport.sent[0]
    assert wire["attachments"] == [
        {"file": {"name": "receipt.png", "type": "image/png", "size": 8}}
    ]
    assert wire["lang"] == "fr"
    assert "body" not in wire
    assert sent.attachments == [{"name": "receipt.png", "type": "image/png", "size": 8}]


async def test_the_sent_message_is_the_callback_response(harness: Harness) -> None:
    conv = await harness.started()
    sent = await conv.send_message("Hi")
    assert sent.message_id == "msg_1"
    assert sent.conversation_id == "conv_1"
    assert sent.direction == "in"
    assert sent.created_at == "2026-11-25T10:00:00.000Z"


# --- dispatch: Kustomer's events by name ------------------------------------------------------


async def test_dispatch_forwards_assistant_messages_and_the_end(harness: Harness) -> None:
    await harness.started()
    await harness.dispatch(
        "onMessageReceived", assistant_message("conv_1", quick_replies("Pick", ("A", "a")))
    )
    conv = harness.conversation("conv_1")
    await conv.choose("A")
    await harness.dispatch(
        "onAssistantEnded", {"conversationId": "conv_1", "isInAssistantMode": False}
    )
    assert await conv.state == State.ENDED
    await harness.dispatch("onAssistantEnded", {"conversationId": "conv_1"})  # repeated: no-op
    assert await conv.state == State.ENDED


async def test_dispatch_accepts_events_that_change_nothing(harness: Harness) -> None:
    conv = await harness.started()
    before = await conv.snapshot()
    await harness.dispatch("onConversationEnded", {"conversationId": "conv_1", "ended": True})
    await harness.dispatch("onUnread", None)
    assert await conv.snapshot() == before


async def test_dispatch_refuses_a_misspelt_event(harness: Harness) -> None:
    with pytest.raises(UnknownEventError, match="onAssistantEnded"):
        await harness.dispatch("onAssistantEnd", {"conversationId": "conv_1"})


async def test_dispatch_needs_the_conversation_id(harness: Harness) -> None:
    with pytest.raises(InvalidInputError) as caught:
        await harness.dispatch("onAssistantEnded", {"isInAssistantMode": False})
    assert caught.value.field == "conversationId"


async def test_conversations_do_not_share_state(harness: Harness) -> None:
    first = await harness.started("conv_a")
    second = harness.conversation("conv_b")
    await first.send_message("bot")
    await second.send_message("plain")
    assert harness.transport.sent[1] == {"conversationId": "conv_b", "body": "plain"}


async def test_a_library_error_from_the_transport_is_raised_as_it_is(harness: Harness) -> None:
    conv = await harness.started()
    refusal = TransportError("rate limited")
    harness.transport.fail_next(error=refusal)
    with pytest.raises(TransportError) as caught:
        await conv.send_message("Hi")
    assert caught.value is refusal
    assert caught.value.__cause__ is None
