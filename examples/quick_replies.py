"""Quick replies and a multi-level list, answered by button text, value or node.

    python examples/quick_replies.py

A chatbot backend gets the customer's button click as text or as the button's value; the flow
finds the offered button and sends ``body`` = what was shown, ``payload`` = its value. A click
on something that was not offered is refused with the list of what was.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import structlog

from assistant_flow import Flow, MemoryTransport, UnknownChoiceError

CONVERSATION = "conv_qr_1"

INIT_RESPONSE: dict[str, Any] = {
    "assistant": "asst_shop",
    "dialog": "dlg_main",
    "node": "node_hello",
    "initialMessages": [
        {
            "meta": {
                "template": {
                    "templateType": "quick_replies",
                    "body": "Welcome! Is this about an order?",
                    "actions": [
                        {"displayText": "Yes, an order", "value": "order", "valueType": "text"},
                        {"displayText": "👍", "value": "thumbs_up", "valueType": "emoji"},
                    ],
                }
            },
            "direction": "out",
            "directionType": "initial-out",
            "lang": "en_us",
        }
    ],
    "attributes": {"publicName": "ShopBot"},
}

PRODUCT_TREE: dict[str, Any] = {
    "conversationId": CONVERSATION,
    "direction": "out",
    "meta": {
        "template": {
            "templateType": "mll",
            "body": "Which product is it?",
            "actions": {
                "tree": {
                    "children": [
                        {
                            "id": "tvs",
                            "displayName": "TVs",
                            "children": [
                                {"id": "tv_oled", "displayName": "OLED"},
                                {"id": "tv_lcd", "displayName": "LCD"},
                            ],
                        },
                        {"id": "phones", "displayName": "Phones"},
                    ]
                }
            },
        }
    },
}


def run(say: Callable[[str], None] = lambda line: None) -> MemoryTransport:
    """Answer a greeting's quick reply, then an mll node; returns the transport."""
    transport = MemoryTransport()
    flow = Flow(transport)
    conv = flow.conversation(CONVERSATION)
    conv.start_assistant(INIT_RESPONSE)

    conv.choose("order")  # by value; "Yes, an order" (the text shown) works the same
    say(f"quick reply by value -> {json.dumps(transport.sent[-1])[:110]}...")

    flow.dispatch("onMessageReceived", PRODUCT_TREE)
    try:
        conv.choose("Fridges")
    except UnknownChoiceError as error:
        say(f"not offered          -> {error}")
    conv.choose("OLED")  # an mll node by its displayName; its id "tv_oled" works too
    say(f"mll node by name     -> {json.dumps(transport.sent[-1])}")
    return transport


def main() -> None:
    """Run the example and print each wire payload."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    run(say=print)


if __name__ == "__main__":
    main()
