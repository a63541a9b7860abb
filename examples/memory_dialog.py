"""A whole assistant dialog, end to end, on the in-memory defaults (no network at all).

    python examples/memory_dialog.py

(``make run`` plays the same dialog over HTTP against the local Kustomer stub:
``examples/full_dialog.py``.)

The customer is greeted with quick replies, picks one, gets a knowledge-base deflection,
opens an article, asks for a person, is handed to an agent (``onAssistantEnded``) and writes
to the agent. What the assistant says is what Kustomer would deliver through
``onMessageReceived``; every message the customer sends is printed as the exact JSON that
``KustomerCore.sendMessage`` would get.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import structlog

from assistant_flow import Flow, MemoryTransport, SentMessage

CONVERSATION = "conv_demo_1"

# What KustomerCore.initAssistant returns: one greeting with three buttons.
INIT_RESPONSE: dict[str, Any] = {
    "assistant": "asst_support",
    "dialog": "dlg_welcome",
    "node": "node_start",
    "initialMessages": [
        {
            "meta": {
                "template": {
                    "templateType": "quick_replies",
                    "body": "Hi, I am Ada, the help bot. What can I do for you?",
                    "actions": [
                        {"displayText": "Billing", "value": "billing", "valueType": "text"},
                        {"displayText": "Can't log in", "value": "login", "valueType": "text"},
                        {"displayText": "Talk to a person", "value": "human", "valueType": "text"},
                    ],
                }
            },
            "direction": "out",
            "directionType": "initial-out",
            "importedAt": "2026-11-25T09:00:00.000Z",
            "trackingId": "trk_42",
            "lang": "en_us",
        }
    ],
    "attributes": {"publicName": "Ada", "avatarUrl": "https://example.test/ada.png"},
}

# The assistant's answer to "Can't log in": a deflection with two articles.
DEFLECTION: dict[str, Any] = {
    "messageId": "msg_bot_2",
    "conversationId": CONVERSATION,
    "body": "These articles may help:",
    "direction": "out",
    "meta": {
        "template": {"templateType": "deflection", "body": "These articles may help:"},
        "articles": [
            {
                "id": "kb_reset",
                "version": "4",
                "lang": "en_us",
                "title": "Reset your password",
                "url": "https://help.example.test/en_us/reset-password",
            },
            {
                "id": "kb_2fa",
                "version": "2",
                "lang": "en_us",
                "title": "Two-factor codes not arriving",
                "url": "https://help.example.test/en_us/2fa",
            },
        ],
    },
}

# Its follow-up question.
DID_IT_HELP: dict[str, Any] = {
    "messageId": "msg_bot_3",
    "conversationId": CONVERSATION,
    "direction": "out",
    "meta": {
        "template": {
            "templateType": "quick_replies",
            "body": "Did that solve it?",
            "actions": [
                {"displayText": "Yes, thanks", "value": "solved", "valueType": "text"},
                {"displayText": "No, I need a person", "value": "handoff", "valueType": "text"},
            ],
        }
    },
}


def buttons(template: dict[str, Any]) -> str:
    """A template's buttons, as the transcript shows them."""
    return " ".join(f"[{action['displayText']}]" for action in template["actions"])


def run(say: Callable[[str], None] = lambda line: None) -> MemoryTransport:
    """Play the dialog, narrating through ``say``; returns the transport with every payload."""
    transport = MemoryTransport()
    flow = Flow(transport)  # the store defaults to MemoryStore()
    conv = flow.conversation(CONVERSATION)

    def customer(sent: SentMessage) -> None:
        say(f"  customer  > {sent.body}    (state now: {conv.state})")
        wire = json.dumps(transport.sent[-1], indent=2, ensure_ascii=False)
        say("\n".join(f"      {line}" for line in wire.splitlines()))

    say("1. initAssistant returned a greeting; nothing is sent yet")
    greeting = INIT_RESPONSE["initialMessages"][0]["meta"]["template"]
    say(f"  assistant > {greeting['body']}  {buttons(greeting)}")
    conv.start_assistant(INIT_RESPONSE)

    say("\n2. The customer taps a button: the first reply carries initAssistantPayload")
    customer(conv.choose("Can't log in"))

    say("\n3. The assistant deflects to two articles; the customer opens one of them")
    flow.dispatch("onMessageReceived", DEFLECTION)
    titles = " ".join(f"[{article['title']}]" for article in DEFLECTION["meta"]["articles"])
    say(f"  assistant > {DEFLECTION['body']}  {titles}")
    conv.visit_article("kb_reset")
    flow.dispatch("onMessageReceived", DID_IT_HELP)
    question = DID_IT_HELP["meta"]["template"]
    say(f"  assistant > {question['body']}  {buttons(question)}")

    say("\n4. The answer to the deflection carries lastDeflection with visit counts")
    customer(conv.choose("handoff"))

    say("\n5. Kustomer hands the customer to an agent: onAssistantEnded")
    flow.dispatch("onAssistantEnded", {"conversationId": CONVERSATION, "isInAssistantMode": False})
    say(f"  (state now: {conv.state})")

    say("\n6. Messages to the agent carry isInAssistantMode: false")
    customer(conv.send_message("Hi, I still cannot log in after resetting my password."))
    return transport


def main() -> None:
    """Run the dialog and print the transcript."""
    # The flow logs each transition and send; this demo prints its own transcript instead.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    print("assistant_flow: a full Kustomer assistant dialog on the in-memory defaults\n")
    transport = run(say=print)
    print(f"\n{len(transport.sent)} messages sent, each with the lifecycle fields set by the flow.")


if __name__ == "__main__":
    main()
