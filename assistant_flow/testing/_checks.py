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

__all__ = ["INITIAL_MESSAGE_FIELDS", "MESSAGE_FIELDS", "check_fields", "check_init_payload"]

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
