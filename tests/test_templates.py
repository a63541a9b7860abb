"""Every assistant template: which choices it offers, and how a malformed one is refused."""

from __future__ import annotations

from typing import Any

import pytest
from payloads import mll, quick_replies

from assistant_flow import InvalidInputError
from assistant_flow._templates import (
    Choice,
    FeedbackTemplate,
    ListTemplate,
    MllTemplate,
    offered_choices,
)

WHERE = "receive: meta.template"

# A tree with a parent whose only child is deleted: that parent is a leaf.
TREE: list[dict[str, Any]] = [
    {
        "id": "tvs",
        "displayName": "TVs",
        "children": [
            {"id": "size", "displayName": "Size"},
            {
                "id": "brand",
                "displayName": "Brand",
                "children": [{"id": "lg", "displayName": "LG"}],
            },
        ],
    },
    {
        "id": "radios",
        "displayName": "Radios",
        "children": [{"id": "old", "displayName": "Old", "deleted": True}],
    },
    {"id": "gone", "displayName": "Gone", "deleted": True, "children": []},
]
EVERY_LIVE_NODE = (
    Choice("TVs", "tvs"),
    Choice("Size", "size"),
    Choice("Brand", "brand"),
    Choice("LG", "lg"),
    Choice("Radios", "radios"),
)
LEAVES = (Choice("Size", "size"), Choice("LG", "lg"), Choice("Radios", "radios"))


def raised_field(template: dict[str, Any]) -> str | None:
    with pytest.raises(InvalidInputError) as caught:
        offered_choices(template, WHERE)
    assert str(caught.value).startswith(WHERE)
    return caught.value.field


# --- quick_replies ---------------------------------------------------------------------------


def test_quick_replies_offer_every_button_in_order() -> None:
    template = quick_replies("Pick", ("Billing", "billing"), ("👍", "thumbs_up"))
    assert offered_choices(template, WHERE) == (
        Choice("Billing", "billing"),
        Choice("👍", "thumbs_up"),
    )


def test_quick_replies_without_buttons_offer_none_not_an_empty_tuple() -> None:
    assert offered_choices(quick_replies("Pick"), WHERE) is None


# --- mll and lastNodeRequired ----------------------------------------------------------------


@pytest.mark.parametrize("required", [None, False])
def test_mll_offers_every_live_node_unless_leaves_are_required(required: bool | None) -> None:
    template = mll("Which?", TREE)
    if required is not None:
        template["actions"]["lastNodeRequired"] = required
    assert offered_choices(template, WHERE) == EVERY_LIVE_NODE


@pytest.mark.parametrize("place", ["template", "actions", "actions.tree"])
def test_mll_last_node_required_offers_only_leaves(place: str) -> None:
    template = mll("Which?", TREE)
    holder = {
        "template": template,
        "actions": template["actions"],
        "actions.tree": template["actions"]["tree"],
    }[place]
    holder["lastNodeRequired"] = True
    assert MllTemplate.model_validate(template).leaves_only
    assert offered_choices(template, WHERE) == LEAVES


def test_mll_last_node_required_true_anywhere_wins() -> None:
    template = mll("Which?", TREE)
    template["lastNodeRequired"] = False
    template["actions"]["tree"]["lastNodeRequired"] = True
    assert offered_choices(template, WHERE) == LEAVES


def test_mll_of_deleted_nodes_only_offers_none() -> None:
    template = mll("Which?", [{"id": "gone", "displayName": "Gone", "deleted": True}])
    assert offered_choices(template, WHERE) is None


# --- list (KObject list) ---------------------------------------------------------------------


def test_list_items_are_chosen_like_quick_replies() -> None:
    template = {
        "templateType": "list",
        "body": "Which order?",
        "actions": [
            {"displayText": "Order #1001", "value": "kobj_1"},
            {"displayText": "Order #1002", "value": "kobj_2", "imageUrl": "https://x/2.png"},
        ],
    }
    assert offered_choices(template, WHERE) == (
        Choice("Order #1001", "kobj_1"),
        Choice("Order #1002", "kobj_2"),
    )


def test_list_items_in_the_ios_object_action_shape() -> None:
    # KUSObjectMessageAction { displayText (derived), value, titleText, detailsText, imageUrl }
    template = {
        "templateType": "list",
        "actions": [
            {
                "value": "kobj_1",
                "titleText": "Blue sofa",
                "detailsText": "Delivered 3 May",
                "imageUrl": "https://x/1.png",
            },
            {"value": "kobj_2", "titleText": "Lamp", "displayText": "Lamp (ordered twice)"},
            {"value": "kobj_3", "titleText": ""},
        ],
    }
    assert offered_choices(template, WHERE) == (
        Choice("Blue sofa", "kobj_1"),
        Choice("Lamp (ordered twice)", "kobj_2"),
        Choice("kobj_3", "kobj_3"),
    )
    first = ListTemplate.model_validate(template).actions[0]
    assert (first.details_text, first.image_url) == ("Delivered 3 May", "https://x/1.png")


def test_empty_list_offers_none() -> None:
    assert offered_choices({"templateType": "list", "actions": []}, WHERE) is None


# --- feedback --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["answer_button_feedback", "feedback"])
def test_feedback_buttons_with_values_can_be_chosen(kind: str) -> None:
    template = {
        "templateType": kind,
        "body": "Was this answer helpful?",
        "actions": [
            {"displayText": "👍", "value": "helpful", "valueType": "emoji"},
            {"displayText": "👎", "value": "not_helpful", "valueType": "emoji"},
        ],
    }
    assert offered_choices(template, WHERE) == (
        Choice("👍", "helpful"),
        Choice("👎", "not_helpful"),
    )


def test_feedback_buttons_without_a_value_are_skipped() -> None:
    template = {
        "templateType": "answer_button_feedback",
        "actions": [
            {"displayText": "Rate us"},
            {"displayText": "Yes", "value": ""},
            {"displayText": "Maybe", "value": None},
            {"value": "no"},
            {"displayText": "Sure", "value": "yes"},
        ],
    }
    assert offered_choices(template, WHERE) == (Choice("no", "no"), Choice("Sure", "yes"))


@pytest.mark.parametrize(
    "actions",
    [None, [], [{"displayText": "Rate us"}]],
    ids=["no-actions", "empty", "no-values"],
)
def test_feedback_with_nothing_to_choose_offers_none(actions: list[Any] | None) -> None:
    template: dict[str, Any] = {"templateType": "answer_button_feedback"}
    if actions is not None:
        template["actions"] = actions
    assert offered_choices(template, WHERE) is None
    assert FeedbackTemplate.model_validate(template).choices() == ()


# --- malformed templates ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "field"),
    [
        ({"templateType": "quick_replies"}, "actions"),
        ({"templateType": "quick_replies", "actions": [{"value": "v"}]}, "actions.0.displayText"),
        (
            {"templateType": "quick_replies", "actions": [{"displayText": "A", "value": ""}]},
            "actions.0.value",
        ),
        ({"templateType": "mll", "actions": {}}, "actions.tree"),
        (
            {"templateType": "mll", "actions": {"tree": {"children": [{"id": "a"}]}}},
            "actions.tree.children.0.displayName",
        ),
        (
            {
                "templateType": "mll",
                "actions": {"tree": {"children": []}, "lastNodeRequired": {"on": True}},
            },
            "actions.lastNodeRequired",
        ),
        ({"templateType": "list"}, "actions"),
        ({"templateType": "list", "actions": {"list": []}}, "actions"),
        (
            {"templateType": "list", "actions": [{"value": "a"}, {"titleText": "No value"}]},
            "actions.1.value",
        ),
        ({"templateType": "list", "actions": [{"value": 7}]}, "actions.0.value"),
        ({"templateType": "answer_button_feedback", "actions": {"up": "yes"}}, "actions"),
        ({"templateType": "feedback", "actions": ["yes"]}, "actions.0"),
        ({"templateType": "feedback", "actions": [{"value": 1}]}, "actions.0.value"),
        (
            {"templateType": "feedback", "actions": [{"value": "y", "displayText": ["Y"]}]},
            "actions.0.displayText",
        ),
    ],
)
def test_a_malformed_template_names_the_field(template: dict[str, Any], field: str) -> None:
    assert raised_field(template) == field


def test_the_error_names_the_field_but_never_the_value() -> None:
    secret = "sk_live_do_not_log"
    template = {"templateType": "list", "actions": [{"value": {"token": secret}}]}
    with pytest.raises(InvalidInputError) as caught:
        offered_choices(template, WHERE)
    assert "actions.0.value" in str(caught.value)
    assert secret not in str(caught.value)


# --- everything else offers none --------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        None,
        {},
        {"body": "no type"},
        {"templateType": "text", "body": "Hello world"},
        {"templateType": "deflection", "body": "These may help"},
        {"templateType": "none"},
        {"templateType": ""},
        {"templateType": 7},
        {"templateType": "carousel", "actions": [{"displayText": "A", "value": "a"}]},
        {"templateType": "QUICK_REPLIES", "actions": [{"displayText": "A", "value": "a"}]},
    ],
)
def test_types_without_choices_offer_none(template: dict[str, Any] | None) -> None:
    assert offered_choices(template, WHERE) is None
