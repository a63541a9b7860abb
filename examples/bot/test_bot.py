"""The shop bot's tests, written with the assistant_flow pytest plugin.

The plugin (installed with assistant-flow) provides ``kustomer_stub`` (here playing the bot's
own ``assistant.yaml``, by the marker) and ``async_memory_flow``; ``assert_payload`` compares
what the stub received field by field. The YAML scripts in ``dialogs/`` are collected too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from bot_app import create_app

from assistant_flow import AsyncFlow, AsyncHTTPTransport, MemoryStore
from assistant_flow.dialogs import ABSENT, assert_payload, assert_payloads
from assistant_flow.testing import AsyncStubClient, KustomerStub, StubClient

ASSISTANT = Path(__file__).parent / "assistant.yaml"


@pytest.fixture
async def shop(
    kustomer_stub: KustomerStub,
) -> AsyncIterator[tuple[httpx.AsyncClient, AsyncStubClient]]:
    """The bot wired to the stub, and a Core SDK stand-in for the browser side."""
    transport = AsyncHTTPTransport(
        kustomer_stub.url, api_key=kustomer_stub.api_key, customer_id="cust_1"
    )
    app = create_app(AsyncFlow(transport, MemoryStore()))
    async with (
        transport,
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://bot") as bot,
        AsyncStubClient(kustomer_stub.url, kustomer_stub.api_key) as core,
    ):
        yield bot, core


async def forward_events(
    bot: httpx.AsyncClient, core: AsyncStubClient, conversation: str, after: int
) -> tuple[list[str], int]:
    """What the Core SDK does in the browser: pass each event to the bot's webhook."""
    page = await core.events(conversation, after=after)
    for event in page.events:
        response = await bot.post(
            "/kustomer/events", json={"name": event.name, "payload": event.payload}
        )
        assert response.status_code == 200, response.text
    return [event.name for event in page.events], page.next


@pytest.mark.kustomer_assistants("assistant.yaml")
async def test_a_customer_is_helped_through_the_webhook(
    shop: tuple[httpx.AsyncClient, AsyncStubClient], kustomer_stub: KustomerStub
) -> None:
    bot, core = shop
    session = await core.create_session("cust_1", "Where is my parcel?", assistant="asst_shop")
    conversation = session["conversationId"]
    started = await bot.post(
        f"/conversations/{conversation}/assistant", json=await core.init_assistant("asst_shop")
    )
    assert started.json() == {"state": "in_assistant"}
    assert (await bot.get(f"/conversations/{conversation}")).json()["choices"] == [
        "Our shop",
        "Somewhere else",
    ]

    chosen = await bot.post(f"/conversations/{conversation}/choices", json={"choice": "Our shop"})
    assert chosen.status_code == 200
    events, cursor = await forward_events(bot, core, conversation, 0)
    assert events == ["onMessageReceived", "onMessageReceived"]
    await bot.post(f"/conversations/{conversation}/visits", json={"article": "kb_track"})
    await bot.post(f"/conversations/{conversation}/choices", json={"choice": "No, a person please"})
    events, cursor = await forward_events(bot, core, conversation, cursor)
    assert events == ["onMessageReceived", "onAssistantEnded"]
    written = await bot.post(f"/conversations/{conversation}/messages", json={"body": "Thanks"})
    assert written.json()["state"] == "ended"

    assert_payloads(
        kustomer_stub.sent(),
        [
            {"payload": "shop", "isInAssistantMode": True, "initAssistantPayload.node": "hello"},
            {
                "payload": "person",
                "initAssistantPayload": ABSENT,
                "lastDeflection": {"articles": [{"id": "kb_track", "visited": 1}]},
            },
            {"body": "Thanks", "isInAssistantMode": False, "customerId": "cust_1"},
        ],
    )


async def test_bad_requests_are_answered_with_the_field(async_memory_flow: AsyncFlow) -> None:
    app = create_app(async_memory_flow)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://bot") as bot:
        missing = await bot.post("/conversations/c1/messages", json={"text": "hi"})
        assert (missing.status_code, missing.json()["field"]) == (400, "body")
        refused = await bot.post("/conversations/c1/choices", json={"choice": "Billing"})
        assert (refused.status_code, refused.json()["field"]) == (400, "choice")
        unknown = await bot.post(
            "/kustomer/events", json={"name": "onAssistantEndd", "payload": {}}
        )
        assert (unknown.status_code, unknown.json()["field"]) == (400, "event")
        assert (await bot.post("/conversations/c1/messages", content=b"{")).status_code == 400
        assert (await bot.get("/nowhere")).status_code == 404
        # Nothing above reached the transport.
        assert async_memory_flow.transport.sent == []  # type: ignore[attr-defined]
        await bot.post(
            "/conversations/c1/assistant", json={"assistant": "a", "dialog": "d", "node": "n"}
        )
        await bot.post("/conversations/c1/messages", json={"body": "Hi"})
        again = await bot.post(
            "/conversations/c1/assistant", json={"assistant": "a", "dialog": "d", "node": "n"}
        )
        assert again.status_code == 409
    assert_payload(
        async_memory_flow.transport.sent[0],  # type: ignore[attr-defined]
        {"body": "Hi", "isInAssistantMode": True, "initAssistantPayload.assistant": "a"},
        exact=False,
    )


async def test_a_failed_send_is_a_502_and_moves_nothing(async_memory_flow: AsyncFlow) -> None:
    app = create_app(async_memory_flow)
    async_memory_flow.transport.fail_next()  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://bot") as bot:
        await bot.post(
            "/conversations/c2/assistant", json={"assistant": "a", "dialog": "d", "node": "n"}
        )
        failed = await bot.post("/conversations/c2/messages", json={"body": "Hi"})
        assert failed.status_code == 502
        retried = await bot.post("/conversations/c2/messages", json={"body": "Hi"})
        assert retried.status_code == 200
    [sent] = async_memory_flow.transport.sent  # type: ignore[attr-defined]
    assert "initAssistantPayload" in sent  # the retry still carries the first reply's payload


def test_the_bot_uses_a_stub_per_assistant_file(
    kustomer_stub_for: Callable[[str | Path], KustomerStub],
) -> None:
    # A path relative to this file, wherever pytest is started from.
    shop = kustomer_stub_for("assistant.yaml")
    assert shop is kustomer_stub_for(ASSISTANT)  # one stub a file, reused
    with StubClient(shop.url, shop.api_key) as core:
        assert core.init_assistant("asst_shop")["dialog"] == "dlg_shop"
