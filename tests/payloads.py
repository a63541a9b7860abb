"""Kustomer-shaped payloads for tests: what initAssistant and onMessageReceived deliver."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

# --- Kustomer-shaped payloads -----------------------------------------------------------------


def quick_replies(body: str, *labels: tuple[str, str]) -> dict[str, Any]:
    """A quick_replies template with (displayText, value) buttons."""
    return {
        "templateType": "quick_replies",
        "body": body,
        "actions": [
            {"displayText": text, "value": value, "valueType": "text"} for text, value in labels
        ],
    }


def mll(body: str, children: list[dict[str, Any]]) -> dict[str, Any]:
    """An mll template with the given tree."""
    return {"templateType": "mll", "body": body, "actions": {"tree": {"children": children}}}


def greeting(template: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """One initialMessages entry as initAssistant returns it, with fields Kustomer adds."""
    return {
        "meta": {"template": template, "ui": {"shown": True}},
        "direction": "out",
        "directionType": "initial-out",
        "importedAt": "2026-11-25T10:00:00.000Z",
        "trackingId": "trk_1",
        "lang": "en_us",
        "sentBy": {"type": "assistant"},
        **extra,
    }


def init_response(*greetings: dict[str, Any], assistant: str = "asst_1") -> dict[str, Any]:
    """What KustomerCore.initAssistant returns."""
    return {
        "assistant": assistant,
        "dialog": "dlg_1",
        "node": "node_1",
        "initialMessages": list(greetings)
        or [greeting({"templateType": "text", "body": "Hi! I am the help bot."})],
        "attributes": {"avatarUrl": "https://example.test/a.png", "publicName": "Helper"},
    }


_MESSAGE_NUMBERS = itertools.count(1)


def assistant_message(
    conversation_id: str,
    template: dict[str, Any] | None = None,
    articles: list[dict[str, Any]] | None = None,
    body: str = "",
    *,
    number: int | None = None,
) -> dict[str, Any]:
    """A message as onMessageReceived delivers it.

    Each call makes a new message: its own ``messageId`` and a later ``createdAt``, unless
    ``number`` names one (the same number gives the same message again, as a repeated
    delivery does).
    """
    number = next(_MESSAGE_NUMBERS) if number is None else number
    meta: dict[str, Any] = {}
    if template is not None:
        meta["template"] = template
    if articles is not None:
        meta["articles"] = articles
    moment = datetime(2026, 11, 25, 10, 0, tzinfo=UTC) + timedelta(seconds=number)
    return {
        "messageId": f"m_assistant_{number}",
        "conversationId": conversation_id,
        "body": body,
        "createdAt": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "direction": "out",
        "meta": meta,
        "sentBy": {"type": "assistant", "id": "asst_1", "displayName": "Helper"},
    }


ARTICLES = [
    {
        "id": "art_1",
        "version": "3",
        "lang": "en_us",
        "title": "Reset your password",
        "url": "https://help.example.test/en_us/reset",
        "slug": "reset",
    },
    {"id": "art_2", "version": "1", "lang": "en_us", "title": "Billing FAQ"},
]
