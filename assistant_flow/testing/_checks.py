"""The stub's checks on a message: Kustomer's field rules, then the assistant protocol.

The field rules (JSON object, required ``conversationId``, types) always apply. The protocol
rules apply when the stub is strict (the default); they catch exactly the mistakes a client
of a conversational assistant makes:

* while the assistant runs, a customer message goes to the assistant route with
  ``isInAssistantMode: true``; after ``onAssistantEnded`` (or with no assistant) it goes to the
  plain route and does not claim assistant mode;
* the first reply carries ``initAssistantPayload`` naming the run's assistant, dialog and node,
  with each initial message cut to ``meta.template``, ``direction``, ``directionType``,
  ``importedAt``, ``trackingId`` and ``lang``; later replies do not carry it;
* ``payload`` is one of the values the waiting node offers (a button's value, an mll id);
* the reply after a deflection carries ``lastDeflection`` with the offered articles, and no
  other reply does;
* no field outside ``sendMessage``'s (a snake_case name, a typo) is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._answers import Rejected
from ._assistants import Assistant
from ._conversations import Conversation

__all__ = [
    "INITIAL_MESSAGE_FIELDS",
    "MESSAGE_FIELDS",
    "bad",
    "check_assistant_reply",
    "check_fields",
    "check_init_payload",
    "check_plain_message",
]

MESSAGE_FIELDS: Mapping[str, tuple[type, ...]] = {
    "conversationId": (str,),
    "customerId": (str,),
    "body": (str,),
    "payload": (str,),
    "attachments": (list,),
    "lastDeflection": (dict,),
    "isInAssistantMode": (bool,),
    "initAssistantPayload": (dict,),
    "lang": (str,),
}
"""The fields of a message body and their JSON types."""

INITIAL_MESSAGE_FIELDS = frozenset(
    {"meta", "direction", "directionType", "importedAt", "trackingId", "lang"}
)
_JSON_NAMES = {str: "a string", bool: "true or false", list: "an array", dict: "an object"}


def bad(message: str, field: str) -> Rejected:
    """A 400 naming ``field``."""
    return Rejected(400, "bad_request", message, field)


def check_fields(body: object, *, strict: bool) -> dict[str, Any]:
    """Kustomer's rules for a message body: an object, ``conversationId``, the right types."""
    if not isinstance(body, dict):
        raise bad("the request body must be a JSON object", "(body)")
    for name, value in body.items():
        types = MESSAGE_FIELDS.get(name)
        if types is None:
            if strict:
                known = ", ".join(MESSAGE_FIELDS)
                raise bad(f"`{name}` is not a message field; the fields are: {known}", name)
            continue
        if not isinstance(value, types):
            raise bad(f"`{name}` must be {_JSON_NAMES[types[0]]}", name)
    if "conversationId" not in body:
        raise bad("`conversationId` is required", "conversationId")
    for name in ("conversationId", "payload", "lang"):
        if name in body and not body[name]:
            raise bad(f"`{name}` must not be empty", name)
    if not body.get("body") and not body.get("attachments"):
        raise bad("a message needs a non-empty `body` or `attachments`", "body")
    return body


def check_init_payload(
    payload: dict[str, Any], *, assistant: str, dialog: str, node: str, templates: list[Any]
) -> None:
    """``initAssistantPayload`` names the run and carries the greetings, each cut to six fields."""
    field = "initAssistantPayload"
    for name, expected in (("assistant", assistant), ("dialog", dialog), ("node", node)):
        value = payload.get(name)
        if value != expected:
            got = "it is missing" if value is None else f"got {value!r}"
            raise bad(
                f"`{field}.{name}` must be {expected!r}, as initAssistant returned; {got}",
                f"{field}.{name}",
            )
    extra = sorted(set(payload) - {"assistant", "dialog", "node", "initialMessages"})
    if extra:
        raise bad(
            f"`{field}.{extra[0]}` does not belong in initAssistantPayload (only assistant, "
            "dialog, node and initialMessages; `attributes` stays out)",
            f"{field}.{extra[0]}",
        )
    messages = payload.get("initialMessages")
    if not isinstance(messages, list):
        raise bad(
            f"`{field}.initialMessages` must be the array initAssistant returned",
            f"{field}.initialMessages",
        )
    if len(messages) != len(templates):
        raise bad(
            f"`{field}.initialMessages` must hold the {len(templates)} greeting(s) initAssistant "
            f"returned; got {len(messages)}",
            f"{field}.initialMessages",
        )
    for index, (message, template) in enumerate(zip(messages, templates, strict=True)):
        where = f"{field}.initialMessages.{index}"
        if not isinstance(message, dict):
            raise bad(f"`{where}` must be an object", where)
        stray = sorted(set(message) - INITIAL_MESSAGE_FIELDS)
        if stray:
            raise bad(
                f"`{where}.{stray[0]}` must be cut: an initial message carries only meta.template, "
                "direction, directionType, importedAt, trackingId and lang",
                f"{where}.{stray[0]}",
            )
        meta = message.get("meta")
        if not isinstance(meta, dict) or set(meta) != {"template"}:
            raise bad(f"`{where}.meta` must hold exactly `template`", f"{where}.meta")
        if meta["template"] != template:
            raise bad(
                f"`{where}.meta.template` is not the greeting initAssistant returned",
                f"{where}.meta.template",
            )


def check_plain_message(conversation: Conversation, body: dict[str, Any]) -> None:
    """A message to the plain route: no assistant runs, and the message claims none."""
    if conversation.run in ("waiting", "running"):
        raise bad(
            "the assistant is running on this conversation: send customer messages to "
            "/v2.1/chat/assistant/messages with isInAssistantMode true until onAssistantEnded",
            "isInAssistantMode",
        )
    if body.get("isInAssistantMode") is True:
        raise bad(
            "`isInAssistantMode` must not be true: no assistant runs on this conversation "
            "(it ended, or never started)",
            "isInAssistantMode",
        )
    for name in ("initAssistantPayload", "lastDeflection"):
        if name in body:
            raise bad(f"`{name}` only goes with assistant replies", name)


def check_assistant_reply(
    conversation: Conversation, body: dict[str, Any], assistants: Mapping[str, Assistant]
) -> Assistant:
    """A message to the assistant route; returns the assistant whose run it answers."""
    if body.get("isInAssistantMode") is not True:
        raise bad(
            "`isInAssistantMode` must be true on the assistant route (send it on every "
            "customer message until onAssistantEnded)",
            "isInAssistantMode",
        )
    if conversation.run == "ended":
        raise bad(
            "the assistant ended (onAssistantEnded was emitted): send to /v2.1/chat/messages "
            "with isInAssistantMode false",
            "isInAssistantMode",
        )
    payload = body.get("initAssistantPayload")
    if conversation.run in ("none", "waiting"):
        return _check_first_reply(conversation, body, payload, assistants)
    if payload is not None:
        raise bad(
            "`initAssistantPayload` goes on the first reply only; this conversation already "
            "replied to the assistant",
            "initAssistantPayload",
        )
    assistant = conversation.assistant
    assert assistant is not None
    node = conversation.node or assistant.first_node
    _check_answer(assistant, node, conversation.deflection, body)
    return assistant


def _check_first_reply(
    conversation: Conversation,
    body: dict[str, Any],
    payload: dict[str, Any] | None,
    assistants: Mapping[str, Assistant],
) -> Assistant:
    if payload is None:
        raise bad(
            "the first reply to an assistant must carry `initAssistantPayload` built from "
            "initAssistant's answer",
            "initAssistantPayload",
        )
    assistant = conversation.assistant or assistants.get(str(payload.get("assistant")))
    if assistant is None:
        raise bad(
            "`initAssistantPayload.assistant` names no assistant of this org",
            "initAssistantPayload.assistant",
        )
    check_init_payload(
        payload,
        assistant=assistant.id,
        dialog=assistant.dialog,
        node=assistant.first_node,
        templates=[node.template for node in assistant.greeting],
    )
    greeted = tuple(a["id"] for node in assistant.greeting for a in node.articles)
    _check_answer(assistant, assistant.first_node, greeted, body)
    return assistant


def _check_answer(
    assistant: Assistant, node_id: str, pending: tuple[str, ...], body: dict[str, Any]
) -> None:
    node = assistant.nodes[node_id]
    payload = body.get("payload")
    if payload is not None and node.offered and payload not in node.offered:
        offered = ", ".join(sorted(node.offered))
        raise bad(
            f"`payload` must be one of the values on offer ({offered}): a quick reply sends "
            "the button's value, an mll answer the node's id",
            "payload",
        )
    deflection = body.get("lastDeflection")
    if pending and deflection is None:
        raise bad(
            "this reply follows a deflection: it must carry `lastDeflection` with the "
            "articles and their visit counts",
            "lastDeflection",
        )
    if deflection is not None:
        if not pending:
            raise bad(
                "`lastDeflection` goes only on the reply after a deflection", "lastDeflection"
            )
        _check_deflection(deflection, pending)


def _check_deflection(deflection: dict[str, Any], offered: tuple[str, ...]) -> None:
    articles = deflection.get("articles")
    if not isinstance(articles, list) or not articles:
        raise bad("`lastDeflection.articles` must be a non-empty array", "lastDeflection.articles")
    for index, article in enumerate(articles):
        where = f"lastDeflection.articles.{index}"
        if not isinstance(article, dict) or article.get("id") not in offered:
            raise bad(f"`{where}.id` is not an article the deflection offered", f"{where}.id")
        visited = article.get("visited")
        if not isinstance(visited, int) or isinstance(visited, bool) or visited < 0:
            raise bad(f"`{where}.visited` must be a count (0 or more)", f"{where}.visited")
