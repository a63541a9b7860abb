"""Assistant message templates, and the choices a customer can answer them with.

An assistant message carries its template in ``meta.template``; ``templateType`` says which
kind it is. :func:`offered_choices` turns a template into the :class:`Choice` values that
``choose()`` accepts. A choice is answered with ``body`` = its ``display_text`` and
``payload`` = its ``value``. The marks below say how sure each shape is:
[documented] = printed on a Kustomer page; [SDK] = read from a Kustomer-published SDK;
[inferred] = our reading of the SDKs. Verify [inferred] shapes against your org.

Templates that offer choices:

* ``quick_replies`` [documented]: ``actions: [{displayText, value, valueType}]``. Each button
  is a choice. ``payload`` = ``value`` is documented ("the value of the quick reply button",
  KustomerCore.sendMessage page); ``body`` = ``displayText`` is [inferred] from what Kustomer's
  own UI shows. Source: https://developer.kustomer.com/chat-sdk/docs/template-types

* ``mll`` (multi-level list) [documented]: ``actions: {tree: {children: [{id, displayName,
  children}]}}``. Each node that is not ``deleted`` is a choice, depth first, parents before
  their children: ``body`` = ``displayName``, ``payload`` = ``id`` [inferred: the web SDK
  documents no field for tree answers; the mobile SDKs send a node's display text and value].
  ``lastNodeRequired: true`` offers only leaves (nodes with no live children).
  ``lastNodeRequired`` is [SDK] on the legacy chat-form model, where it sits beside ``tree``
  in the question's ``valueMeta`` (kustomer/customer-ios ``Source/Models/KUSFormQuestion.m``,
  ``KUSMLFormValue.h``; the legacy Android SDK ``com.kustomer.kustomersdk``, e.g.
  github.com/BrainXtech/customer-android ``Models/KUSMLFormValue.java`` and
  ``Views/KUSMLFormValuesPickerView.java``, which enables "send" only on a leaf when set).
  Where it sits in a v2 ``mll`` template is [inferred]: ``actions`` plays ``valueMeta``'s
  part (it holds ``tree``), so ``actions.lastNodeRequired`` is the closest analogue; it is
  accepted there, on the template itself and on ``actions.tree``. True in any of the three
  places means leaves only.

* ``list`` (KObject list): "KObjects that customers can select from a list" [documented, the
  JSON sample is not public]. Item model [SDK]: iOS ``KUSObjectMessageAction { displayText,
  value, titleText, detailsText, imageUrl }`` (github.com/kustomer/kustomer-ios 7.2.8,
  ``KustomerChat.swiftinterface``; its ``displayText`` is a computed property). That the
  items travel as the template's ``actions`` array, like quick-reply buttons, is
  [inferred]: the iOS SDK stores them in the same ``KUSChatMessage.actions`` list as quick
  replies and casts that list to ``[KUSObjectMessageAction]`` for its list cell (symbol
  names in the SDK's dSYM relocation map). So:
  ``actions: [{value, displayText?, titleText?, detailsText?, imageUrl?}]``. ``value`` is
  required (non-optional in the iOS model). Answered like a quick reply [inferred]:
  ``body`` = ``displayText``, else ``titleText`` (iOS derives ``displayText``; we take the
  title when the text is absent), else ``value``; ``payload`` = ``value``.

* ``answer_button_feedback`` and ``feedback``: the type string ``answer_button_feedback`` is
  [SDK] (``@kustomer/chat-react-native``, ``types/KusChatMessage``, where
  ``KustomerMessageTemplateType.feedback = "answer_button_feedback"``); ``feedback`` is the
  iOS ``KUSMessageTemplateType`` case name and is accepted too [inferred]. Button shape
  [inferred]: the iOS SDK builds its feedback row from the message's ``actions`` and sends a
  tapped ``KUSButtonMessageAction`` (the quick-reply button type) like a quick reply, so:
  ``actions: [{displayText, value, valueType}]``. A button with a missing, null or empty
  ``value`` cannot be chosen and is skipped; a button without ``displayText`` is answered
  with its ``value`` as the body; a template without ``actions`` offers none.

Templates that offer no choices: ``text`` [documented] (answered with free text),
``deflection`` [SDK] (articles travel in the message's ``meta.articles``), the iOS ``none``
type, and any type not listed here (Kustomer adds types over time; names are matched
exactly, so ``QUICK_REPLIES`` is not ``quick_replies``). For those
:func:`offered_choices` returns ``None``.

Zero choices: a choice-offering template whose choices all drop out (an empty ``actions``,
an mll of deleted nodes, feedback buttons without values) also returns ``None``, never
``()``; ``None`` always means "this message offers nothing to ``choose()``".

Malformed templates: a ``quick_replies``, ``mll``, ``list`` or feedback template that does
not have the shape above raises :class:`InvalidInputError` naming the field
(``actions.0.value``), never its value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from ._messages import InboundModel
from ._validation import parse

__all__ = [
    "Choice",
    "DeflectionTemplate",
    "FeedbackAction",
    "FeedbackTemplate",
    "ListItem",
    "ListTemplate",
    "MllNode",
    "MllTemplate",
    "QuickRepliesTemplate",
    "QuickReplyAction",
    "TextTemplate",
    "offered_choices",
]


@dataclass(frozen=True, slots=True)
class Choice:
    """One answer on offer: what the customer sees, and the value sent as ``payload``."""

    display_text: str
    value: str


class TextTemplate(InboundModel):
    """``{"templateType": "text", "body": ...}``: plain text, no choices."""

    template_type: Literal["text"] = "text"
    body: str | None = None


class QuickReplyAction(InboundModel):
    """One quick-reply button. ``valueType`` is ``text`` or ``emoji``."""

    display_text: str = Field(min_length=1)
    value: str = Field(min_length=1)
    value_type: str | None = None


class QuickRepliesTemplate(InboundModel):
    """A question with buttons: ``{"templateType": "quick_replies", "body", "actions": [...]}``."""

    template_type: Literal["quick_replies"] = "quick_replies"
    body: str | None = None
    actions: list[QuickReplyAction]

    def choices(self) -> tuple[Choice, ...]:
        """Every button, in order."""
        return tuple(Choice(action.display_text, action.value) for action in self.actions)


class MllNode(InboundModel):
    """A node of a multi-level list; ``deleted`` nodes (legacy forms) are never offered."""

    id: str = Field(min_length=1)
    display_name: str = Field(min_length=1)
    children: list[MllNode] = Field(default_factory=list)
    deleted: bool = False

    @property
    def is_leaf(self) -> bool:
        """True when no child is left to pick: it has none, or all of them are deleted."""
        return all(child.deleted for child in self.children)


class MllTree(InboundModel):
    """``actions.tree`` of an mll template. ``lastNodeRequired`` here is accepted [inferred]."""

    children: list[MllNode]
    last_node_required: bool | None = None


class MllActions(InboundModel):
    """``actions`` of an mll template; ``lastNodeRequired`` here mirrors the legacy form model."""

    tree: MllTree
    last_node_required: bool | None = None


class MllTemplate(InboundModel):
    """A multi-level list: ``{"templateType": "mll", "body", "actions": {"tree": ...}}``."""

    template_type: Literal["mll"] = "mll"
    body: str | None = None
    actions: MllActions
    last_node_required: bool | None = None

    @property
    def leaves_only(self) -> bool:
        """True when ``lastNodeRequired`` is true on the template, ``actions`` or its ``tree``."""
        return bool(
            self.last_node_required
            or self.actions.last_node_required
            or self.actions.tree.last_node_required
        )

    def nodes(self) -> Iterator[MllNode]:
        """Every node that is not deleted, depth first, parents before their children."""
        pending = list(reversed(self.actions.tree.children))
        while pending:
            node = pending.pop()
            if node.deleted:
                continue
            yield node
            pending.extend(reversed(node.children))

    def choices(self) -> tuple[Choice, ...]:
        """The nodes that can be sent: every live node, or only leaves (``lastNodeRequired``)."""
        leaves_only = self.leaves_only
        return tuple(
            Choice(node.display_name, node.id)
            for node in self.nodes()
            if not leaves_only or node.is_leaf
        )


class ListItem(InboundModel):
    """One KObject of a ``list`` template, after iOS ``KUSObjectMessageAction``.

    ``value`` identifies the object and is sent as ``payload``. The text shown (and sent as
    ``body``) is ``displayText``, else ``titleText``, else ``value`` [inferred].
    """

    value: str = Field(min_length=1)
    display_text: str | None = None
    title_text: str | None = None
    details_text: str | None = None
    image_url: str | None = None

    @property
    def label(self) -> str:
        """What the customer sees and what is sent as ``body``."""
        return self.display_text or self.title_text or self.value


class ListTemplate(InboundModel):
    """A KObject list: ``{"templateType": "list", "body", "actions": [item, ...]}`` [inferred]."""

    template_type: Literal["list"] = "list"
    body: str | None = None
    actions: list[ListItem]

    def choices(self) -> tuple[Choice, ...]:
        """Every item, in order."""
        return tuple(Choice(item.label, item.value) for item in self.actions)


class FeedbackAction(InboundModel):
    """One feedback button, shaped like a quick-reply button [inferred].

    Unlike a quick reply, either field may be missing: a button without a ``value`` cannot
    be chosen, and one without ``displayText`` is answered with its ``value``.
    """

    display_text: str | None = None
    value: str | None = None
    value_type: str | None = None


class FeedbackTemplate(InboundModel):
    """Feedback buttons: ``{"templateType": "answer_button_feedback", "actions": [...]}``.

    ``feedback`` (the iOS name of the type) is accepted as ``templateType`` too.
    """

    template_type: Literal["answer_button_feedback", "feedback"] = "answer_button_feedback"
    body: str | None = None
    actions: list[FeedbackAction] | None = None

    def choices(self) -> tuple[Choice, ...]:
        """The buttons that carry a value, in order; the others are skipped."""
        return tuple(
            Choice(action.display_text or action.value, action.value)
            for action in self.actions or ()
            if action.value
        )


class DeflectionTemplate(InboundModel):
    """A knowledge-base deflection; its articles travel in the message's ``meta.articles``."""

    template_type: Literal["deflection"] = "deflection"
    body: str | None = None


_ChoiceTemplate = QuickRepliesTemplate | MllTemplate | ListTemplate | FeedbackTemplate

# templateType -> the model that reads it. Every other type offers no choices.
_OFFERING: Mapping[str, type[_ChoiceTemplate]] = {
    "quick_replies": QuickRepliesTemplate,
    "mll": MllTemplate,
    "list": ListTemplate,
    "answer_button_feedback": FeedbackTemplate,
    "feedback": FeedbackTemplate,
}


def offered_choices(template: Mapping[str, Any] | None, where: str) -> tuple[Choice, ...] | None:
    """The choices a template offers, or ``None`` when it offers none.

    ``None`` covers both a type that offers no choices (``text``, ``deflection``, unknown
    types) and a choice-offering template left with zero choices; a non-empty tuple is
    returned otherwise, never ``()``. ``where`` says where the template came from, for error
    messages (``"receive: meta.template"``). A ``quick_replies``, ``mll``, ``list`` or
    feedback template that does not have its shape (see the module docstring) raises
    :class:`InvalidInputError` naming the field.
    """
    if not template:
        return None
    kind = template.get("templateType")
    model = _OFFERING.get(kind) if isinstance(kind, str) else None
    if model is None:
        return None
    return parse(model, template, where).choices() or None
