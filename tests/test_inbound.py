"""Inbound events are applied once and in order; the server may start the assistant itself.

Kustomer delivers events at least once and not always in order (webhooks are retried for
about an hour; pollers overlap). Every test runs against Flow and AsyncFlow.
"""

from __future__ import annotations

import pytest
from conftest import Harness
from payloads import ARTICLES, assistant_message, mll, quick_replies

from assistant_flow import InvalidInputError, State, UnknownChoiceError
from assistant_flow._conversation import SEEN_WINDOW

# --- repeats ------------------------------------------------------------------------------------


async def test_a_repeated_deflection_keeps_the_customers_visits(harness: Harness) -> None:
    conv = await harness.started()
    deflection = assistant_message("conv_1", None, ARTICLES)
    await conv.receive(deflection)
    await conv.visit_article("art_1")
    await conv.visit_article("art_1")
    await conv.receive(dict(deflection))  # the same messageId, delivered again
    await conv.send_message("No luck")
    visited = [a["visited"] for a in harness.transport.sent[-1]["lastDeflection"]["articles"]]
    assert visited == [2, 0]


async def test_a_repeated_question_does_not_re_offer_an_answered_one(harness: Harness) -> None:
    conv = await harness.started()
    question = assistant_message("conv_1", quick_replies("Pick", ("Yes", "y")))
    await conv.receive(question)
    await conv.choose("Yes")
    await harness.dispatch("onMessageReceived", question)
    with pytest.raises(UnknownChoiceError):
        await conv.choose("Yes")


async def test_a_repeat_changes_nothing_stored(harness: Harness) -> None:
    conv = await harness.started()
    question = assistant_message("conv_1", quick_replies("Pick", ("Yes", "y")))
    await conv.receive(question)
    before = await conv.snapshot()
    await conv.receive(question)
    assert await conv.snapshot() == before


async def test_the_window_of_remembered_ids_is_bounded(harness: Harness) -> None:
    conv = await harness.started()
    for _ in range(SEEN_WINDOW + 5):
        await conv.receive(assistant_message("conv_1", {"templateType": "text", "body": "."}))
    record = await conv.snapshot()
    assert len(record.seen) == SEEN_WINDOW
    # Oldest first: the newest id is the last one.
    numbers = [int(message_id.rsplit("_", 1)[1]) for message_id in record.seen]
    assert numbers == sorted(numbers)


# --- order --------------------------------------------------------------------------------------


async def test_a_late_older_question_does_not_replace_the_newer_buttons(harness: Harness) -> None:
    conv = await harness.started()
    older = assistant_message("conv_1", quick_replies("Old", ("Blue", "blue")))
    newer = assistant_message("conv_1", quick_replies("New", ("Red", "red")))
    await conv.receive(newer)
    await conv.receive(older)  # arrives late
    with pytest.raises(UnknownChoiceError):
        await conv.choose("Blue")
    await conv.choose("Red")
    assert harness.transport.sent[-1]["payload"] == "red"


async def test_a_late_older_deflection_does_not_reset_the_newer_one(harness: Harness) -> None:
    conv = await harness.started()
    older = assistant_message("conv_1", None, ARTICLES[:1])
    newer = assistant_message("conv_1", None, ARTICLES)
    await conv.receive(newer)
    await conv.visit_article("art_2")
    await conv.receive(older)
    await conv.send_message("thanks")
    articles = harness.transport.sent[-1]["lastDeflection"]["articles"]
    assert [(a["id"], a["visited"]) for a in articles] == [("art_1", 0), ("art_2", 1)]


async def test_messages_without_ids_or_times_are_applied_as_they_come(harness: Harness) -> None:
    conv = await harness.started()
    first = assistant_message("conv_1", quick_replies("Pick", ("Yes", "y")))
    second = assistant_message("conv_1", quick_replies("Pick", ("No", "n")))
    for message in (first, second):
        del message["messageId"], message["createdAt"]
    await conv.receive(second)
    await conv.receive(first)
    await conv.choose("Yes")
    assert harness.transport.sent[-1]["payload"] == "y"


async def test_a_created_at_that_is_not_a_time_is_refused(harness: Harness) -> None:
    conv = await harness.started()
    message = assistant_message("conv_1", quick_replies("Pick", ("Yes", "y")))
    message["createdAt"] = "yesterday"
    before = await conv.snapshot()
    with pytest.raises(InvalidInputError) as caught:
        await conv.receive(message)
    assert caught.value.field == "createdAt"
    assert await conv.snapshot() == before


# --- a newer message withdraws the old question, whatever its template --------------------------


@pytest.mark.parametrize(
    "template",
    [
        {"templateType": "text", "body": "Thanks"},
        {"templateType": "answer_button_feedback", "body": "Was this helpful?"},
        {"templateType": "some_future_type", "body": "?"},
        None,
    ],
)
async def test_a_newer_message_withdraws_the_choices_on_offer(
    harness: Harness, template: dict[str, object] | None
) -> None:
    conv = await harness.started()
    await conv.receive(assistant_message("conv_1", quick_replies("Pick", ("marketing", "mkt"))))
    await conv.receive(assistant_message("conv_1", template, body="Something new"))
    with pytest.raises(UnknownChoiceError):
        await conv.choose("marketing")


async def test_a_question_after_a_deflection_keeps_the_deflection_pending(
    harness: Harness,
) -> None:
    conv = await harness.started()
    await conv.receive(assistant_message("conv_1", None, ARTICLES))
    await conv.receive(assistant_message("conv_1", quick_replies("Helpful?", ("No", "no"))))
    await conv.choose("No")
    assert harness.transport.sent[-1]["payload"] == "no"
    assert "lastDeflection" in harness.transport.sent[-1]


async def test_an_mll_after_a_question_replaces_its_buttons(harness: Harness) -> None:
    conv = await harness.started()
    await conv.receive(assistant_message("conv_1", quick_replies("Pick", ("Yes", "y"))))
    tree = [{"id": "tvs", "displayName": "TVs", "children": []}]
    await conv.receive(assistant_message("conv_1", mll("Which?", tree)))
    await conv.choose("TVs")
    assert harness.transport.sent[-1]["payload"] == "tvs"


# --- server-started assistants ------------------------------------------------------------------


async def test_a_conversation_created_with_an_assistant_is_in_assistant_mode(
    harness: Harness,
) -> None:
    await harness.dispatch(
        "onConversationCreate",
        {
            "conversationId": "conv_1",
            "createdAt": "2026-11-25T10:00:00.000Z",
            "ended": False,
            "isInAssistantMode": True,
        },
    )
    conv = harness.conversation("conv_1")
    assert await conv.state == State.IN_ASSISTANT
    await conv.send_message("Hi")
    assert harness.transport.sent == [
        {"conversationId": "conv_1", "body": "Hi", "isInAssistantMode": True}
    ]


async def test_a_conversation_created_without_an_assistant_changes_nothing(
    harness: Harness,
) -> None:
    await harness.dispatch(
        "onConversationCreate", {"conversationId": "conv_1", "isInAssistantMode": False}
    )
    conv = harness.conversation("conv_1")
    assert await conv.state == State.INIT
    await conv.send_message("Hi")
    assert harness.transport.sent == [{"conversationId": "conv_1", "body": "Hi"}]


async def test_our_own_start_is_not_cut_short_by_the_create_event(harness: Harness) -> None:
    # initAssistant, then createConversation: its event reports assistant mode, and the
    # first reply still owes initAssistantPayload.
    conv = await harness.started()
    await harness.dispatch(
        "onConversationCreate", {"conversationId": "conv_1", "isInAssistantMode": True}
    )
    await conv.send_message("Hi")
    assert "initAssistantPayload" in harness.transport.sent[0]


@pytest.mark.parametrize(
    "snapshot",
    [
        {"conversationId": "conv_1", "isInAssistantMode": True, "ended": False},
        {
            "data": {
                "type": "conversation",
                "id": "conv_1",
                "attributes": {"isInAssistantMode": True},
            }
        },
    ],
)
async def test_a_snapshot_in_assistant_mode_joins_the_assistant(
    harness: Harness, snapshot: dict[str, object]
) -> None:
    conv = harness.conversation("conv_1")
    await conv.sync(snapshot)
    await conv.send_message("Hi")
    assert harness.transport.sent[0]["isInAssistantMode"] is True
    assert "initAssistantPayload" not in harness.transport.sent[0]


async def test_a_snapshot_out_of_assistant_mode_ends_the_assistant(harness: Harness) -> None:
    conv = await harness.started()
    await conv.send_message("Hi")
    await conv.sync({"conversationId": "conv_1", "isInAssistantMode": False})
    assert await conv.state == State.ENDED
    await conv.send_message("To the agent")
    assert harness.transport.sent[-1]["isInAssistantMode"] is False


async def test_a_snapshot_of_another_conversation_is_refused(harness: Harness) -> None:
    conv = harness.conversation("conv_1")
    with pytest.raises(InvalidInputError) as caught:
        await conv.sync({"conversationId": "conv_2", "isInAssistantMode": True})
    assert caught.value.field == "conversationId"
    assert await conv.state == State.INIT


async def test_a_snapshot_without_the_flag_changes_nothing(harness: Harness) -> None:
    conv = harness.conversation("conv_1")
    await conv.sync({"conversationId": "conv_1", "ended": False})
    assert await conv.state == State.INIT
