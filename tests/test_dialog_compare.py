"""assert_payload / assert_payloads: field-by-field comparison with a readable report."""

from __future__ import annotations

import pytest

from assistant_flow import InvalidInputError
from assistant_flow.dialogs import (
    ABSENT,
    PayloadMismatchError,
    assert_payload,
    assert_payloads,
    payload_differences,
)

FIRST_REPLY = {
    "conversationId": "conv_1",
    "body": "Billing",
    "payload": "billing",
    "isInAssistantMode": True,
    "initAssistantPayload": {
        "assistant": "asst_1",
        "dialog": "dlg_1",
        "node": "node_1",
        "initialMessages": [{"meta": {"template": {"body": "Hi"}}, "direction": "out"}],
    },
}


def test_only_the_named_fields_are_compared_nested_or_dotted() -> None:
    assert_payload(FIRST_REPLY, {"payload": "billing", "initAssistantPayload": {"node": "node_1"}})
    assert_payload(FIRST_REPLY, {"initAssistantPayload.initialMessages.0.meta.template.body": "Hi"})


def test_a_mismatch_lists_missing_unexpected_and_different_fields() -> None:
    expected = {
        "isInAssistantMode": False,
        "lastDeflection.articles.0.visited": 1,
        "payload": ABSENT,
        "initAssistantPayload.initialMessages.0.meta": {"template": {"body": "Hello"}},
    }
    with pytest.raises(PayloadMismatchError) as caught:
        assert_payload(FIRST_REPLY, expected)
    message = str(caught.value)
    assert message.splitlines() == [
        "payload differs in 4 fields:",
        "  different   isInAssistantMode: expected false, got true",
        "  missing     lastDeflection.articles.0.visited: expected 1",
        '  unexpected  payload: "billing"',
        "  different   initAssistantPayload.initialMessages.0.meta.template.body: "
        'expected "Hello", got "Hi"',
    ]
    assert [d.kind for d in caught.value.differences] == [
        "different",
        "missing",
        "unexpected",
        "different",
    ]
    assert isinstance(caught.value, AssertionError)


def test_absent_passes_when_the_field_is_left_out() -> None:
    assert_payload(FIRST_REPLY, {"lastDeflection": ABSENT, "attachments": ABSENT})


def test_exact_reports_every_field_not_expected() -> None:
    with pytest.raises(PayloadMismatchError) as caught:
        assert_payload(
            FIRST_REPLY,
            {"conversationId": "conv_1", "body": "Billing", "initAssistantPayload": {}},
            exact=True,
        )
    lines = str(caught.value).splitlines()[1:]
    assert lines[0].startswith("  unexpected  initAssistantPayload.assistant: ")
    assert [line.split(":")[0].split()[-1] for line in lines] == [
        "initAssistantPayload.assistant",
        "initAssistantPayload.dialog",
        "initAssistantPayload.node",
        "initAssistantPayload.initialMessages",
        "payload",
        "isInAssistantMode",
    ]


def test_true_is_not_one_and_lists_must_have_the_same_length() -> None:
    assert [d.path for d in payload_differences({"flag": True}, {"flag": 1})] == ["flag"]
    found = payload_differences({"items": [1, 2]}, {"items": [1]})
    assert [(d.path, d.expected, d.actual) for d in found] == [("items (length)", 1, 2)]


def test_assert_payloads_names_the_index_and_the_count() -> None:
    assert_payloads([FIRST_REPLY, {"body": "x"}], [{"payload": "billing"}, {"body": "x"}])
    with pytest.raises(PayloadMismatchError) as caught:
        assert_payloads([FIRST_REPLY, {"body": "x"}], [{"payload": "billing"}, {"body": "y"}, {}])
    assert str(caught.value).splitlines() == [
        "payloads differ in 2 fields:",
        "  different   (number of payloads): expected 3, got 2",
        '  different   [1].body: expected "y", got "x"',
    ]


def test_exact_applies_below_a_dotted_path() -> None:
    # `exact` with a dotted key used to check only the top level: nested extras slipped by.
    found = payload_differences(
        FIRST_REPLY,
        {
            "conversationId": "conv_1",
            "body": "Billing",
            "payload": "billing",
            "isInAssistantMode": True,
            "initAssistantPayload.node": "node_1",
        },
        exact=True,
    )
    assert [(d.kind, d.path) for d in found] == [
        ("unexpected", "initAssistantPayload.assistant"),
        ("unexpected", "initAssistantPayload.dialog"),
        ("unexpected", "initAssistantPayload.initialMessages"),
    ]


def test_absent_below_a_missing_parent_passes_and_a_clash_is_refused() -> None:
    assert_payload({"body": "x"}, {"lastDeflection.articles.0.visited": ABSENT})
    with pytest.raises(InvalidInputError, match="`payload` is named twice") as caught:
        assert_payload(FIRST_REPLY, {"payload": "billing", "payload.x": 1})
    assert caught.value.field == "payload"
