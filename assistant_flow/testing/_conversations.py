"""A conversation on the stub, and the assistant run that answers it node by node."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ._answers import kustomer_time
from ._assistants import Assistant, Node

__all__ = ["Conversation", "RunState", "assistant_sender", "new_id"]

RunState = Literal["none", "waiting", "running", "ended"]
"""``none``: no assistant; ``waiting``: created with one, no reply yet; ``running``; ``ended``."""

Emit = Callable[["Conversation", str, dict[str, Any]], None]


def new_id(prefix: str) -> str:
    """A fresh Kustomer-looking id such as ``msg_3f2a...``."""
    return f"{prefix}_{secrets.token_hex(8)}"


def assistant_sender(assistant: Assistant) -> dict[str, Any]:
    """``sentBy`` of the assistant's messages."""
    sender: dict[str, Any] = {"type": "assistant", "id": assistant.id}
    if "publicName" in assistant.attributes:
        sender["displayName"] = assistant.attributes["publicName"]
    return sender


@dataclass(slots=True)
class Conversation:
    """A chat session and its assistant run."""

    id: str
    customer_id: str
    title: str
    created_at: str
    lang: str | None
    assistant: Assistant | None
    run: RunState = "none"
    node: str | None = None
    """The node waiting for the customer's answer."""
    deflection: tuple[str, ...] = ()
    """Article ids of a deflection the next reply must report on."""
    ended: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)

    def session(self) -> dict[str, Any]:
        """The session's attributes (``createConversation``'s callbackResponse, and more)."""
        data: dict[str, Any] = {
            "conversationId": self.id,
            "customerId": self.customer_id,
            "title": self.title,
            "createdAt": self.created_at,
            "ended": self.ended,
            "isInAssistantMode": self.run in ("waiting", "running"),
        }
        if self.assistant is not None:
            data["assistant"] = self.assistant.id
        if self.lang is not None:
            data["lang"] = self.lang
        return data

    def outbound(self, template: dict[str, Any]) -> dict[str, Any]:
        """A message to the customer, shaped as ``onMessageReceived`` delivers it."""
        return {
            "messageId": new_id("msg"),
            "body": template.get("body"),
            "createdAt": kustomer_time(),
            "direction": "out",
            "directionType": "followup-out",
            "conversationId": self.id,
            "meta": {"template": template},
        }

    def advance(self, payload: str | None, emit: Emit) -> None:
        """Answer the customer: move to the node the answer leads to, say it and its chain."""
        assistant = self.assistant
        assert assistant is not None
        waiting = assistant.nodes[self.node or assistant.first_node]
        for node in assistant.chain(waiting.answer(payload) or waiting.id):
            self._say(assistant, node, emit)
            self.node = node.id
            if node.end is not None:
                self.run = "ended"
                ended = {"conversationId": self.id, "isInAssistantMode": False}
                emit(self, "onAssistantEnded", ended)
                if node.end == "conversation":
                    self.ended = True
                    emit(self, "onConversationEnded", {"conversationId": self.id})

    def _say(self, assistant: Assistant, node: Node, emit: Emit) -> None:
        message = self.outbound(node.template)
        if node.articles:
            message["meta"]["articles"] = list(node.articles)
            self.deflection = tuple(article["id"] for article in node.articles)
        message["sentBy"] = assistant_sender(assistant)
        if assistant.lang is not None:
            message["lang"] = assistant.lang
        emit(self, "onMessageReceived", message)
