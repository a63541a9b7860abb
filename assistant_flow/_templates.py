"""Assistant message templates, and the choices a customer can answer them with.

An assistant message carries its template in ``meta.template``. Kustomer documents ``text``,
``quick_replies``, ``mll`` and ``list``; the mobile SDKs add ``deflection``, ``feedback`` and
``none``. Only ``quick_replies`` and ``mll`` offer choices; every other type, known or not, is
accepted and offers none.

How a choice is answered:

* quick reply: ``body`` = the button's ``displayText``, ``payload`` = its ``value``. The
  ``payload`` part is documented; showing ``displayText`` as the body is inferred from what
  Kustomer's own UI displays.
* mll node: ``body`` = the node's ``displayName``, ``payload`` = its ``id``. **Inferred**: the web
  SDK documents no field for tree answers; the mobile SDKs send a node's display text and
  value, and this is the web mapping of that. Verify against your org.
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


class MllNode(InboundModel):
    """A node of a multi-level list; ``deleted`` nodes (legacy forms) are never offered."""

    id: str = Field(min_length=1)
    display_name: str = Field(min_length=1)
    children: list[MllNode] = Field(default_factory=list)
    deleted: bool = False


class MllTree(InboundModel):
    """``actions.tree`` of an mll template."""

    children: list[MllNode]


class MllActions(InboundModel):
    """``actions`` of an mll template."""

    tree: MllTree


class MllTemplate(InboundModel):
    """A multi-level list: ``{"templateType": "mll", "body", "actions": {"tree": ...}}``."""

    template_type: Literal["mll"] = "mll"
    body: str | None = None
    actions: MllActions

    def nodes(self) -> Iterator[MllNode]:
        """Every node that is not deleted, depth first, parents before their children."""
        pending = list(reversed(self.actions.tree.children))
        while pending:
            node = pending.pop()
            if node.deleted:
                continue
            yield node
            pending.extend(reversed(node.children))


class DeflectionTemplate(InboundModel):
    """A knowledge-base deflection; its articles travel in the message's ``meta.articles``."""

    template_type: Literal["deflection"] = "deflection"
    body: str | None = None


def offered_choices(template: Mapping[str, Any] | None, where: str) -> tuple[Choice, ...] | None:
    """The choices a template offers, or ``None`` when it offers none.

    ``where`` says where the template came from, for error messages
    (``"receive: meta.template"``). A ``quick_replies`` or ``mll`` template that does not have
    its documented shape raises :class:`InvalidInputError`.
    """
    if not template:
        return None
    kind = template.get("templateType")
    if kind == "quick_replies":
        buttons = parse(QuickRepliesTemplate, template, where)
        return tuple(Choice(action.display_text, action.value) for action in buttons.actions)
    if kind == "mll":
        tree = parse(MllTemplate, template, where)
        return tuple(Choice(node.display_name, node.id) for node in tree.nodes())
    return None
