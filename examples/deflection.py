"""A knowledge-base deflection with AsyncFlow: visits counted, reported once, then cleared.

    python examples/deflection.py

When the assistant suggests articles (``meta.articles``), the customer's next message must
carry ``lastDeflection`` with every article and how often it was opened. The flow remembers
the articles, counts ``visit_article`` calls, attaches them to the next message and forgets
them once that message is sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import structlog

from assistant_flow import AsyncFlow, MemoryTransport

CONVERSATION = "conv_kb_1"

INIT_RESPONSE: dict[str, Any] = {
    "assistant": "asst_help",
    "dialog": "dlg_kb",
    "node": "node_ask",
    "initialMessages": [
        {
            "meta": {"template": {"templateType": "text", "body": "What is your question?"}},
            "direction": "out",
            "directionType": "initial-out",
        }
    ],
}

ARTICLES_MESSAGE: dict[str, Any] = {
    "conversationId": CONVERSATION,
    "direction": "out",
    "body": "Maybe one of these answers it:",
    "meta": {
        "template": {"templateType": "deflection", "body": "Maybe one of these answers it:"},
        "articles": [
            {
                "id": "kb_refund",
                "version": "7",
                "lang": "en_us",
                "title": "Refund policy",
                "url": "https://help.example.test/en_us/refunds",
            },
            {
                "id": "kb_ship",
                "version": "3",
                "lang": "en_us",
                "title": "Shipping times",
                "url": "https://help.example.test/en_us/shipping",
            },
        ],
    },
}


async def run(say: Callable[[str], None] = lambda line: None) -> MemoryTransport:
    """Ask, get a deflection, open articles, answer; returns the transport."""
    transport = MemoryTransport()
    flow = AsyncFlow(transport)
    conv = flow.conversation(CONVERSATION)
    await conv.start_assistant(INIT_RESPONSE)
    await conv.send_message("Can I get my money back?")

    await flow.dispatch("onMessageReceived", ARTICLES_MESSAGE)
    await conv.visit_article("kb_refund")
    await conv.visit_article("kb_refund")
    await conv.send_message("The refund article was close, but I paid by voucher.")
    say("reply to the deflection:")
    say(json.dumps(transport.sent[-1]["lastDeflection"], indent=2))

    await conv.send_message("Anyone there?")
    say(f"the message after it: {json.dumps(transport.sent[-1])}")
    return transport


def main() -> None:
    """Run the example and print the deflection payload."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    asyncio.run(run(say=print))


if __name__ == "__main__":
    main()
