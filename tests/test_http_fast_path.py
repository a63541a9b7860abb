"""AsyncHTTPTransport.with_aiohttp: the same transport over aiohttp's pool, against the stub."""

from __future__ import annotations

import pytest

from assistant_flow import AsyncFlow, AsyncHTTPTransport, Retry, State, TransportError
from assistant_flow.testing import AsyncStubClient, KustomerStub


async def test_a_dialog_over_the_fast_path_keeps_keys_and_heals_a_lost_answer() -> None:
    with KustomerStub() as stub:
        async with AsyncStubClient(stub.url, stub.api_key) as core:
            init = await core.init_assistant("asst_support")
            session = await core.create_session("cust_1", "Help", assistant="asst_support")
            cid = session["conversationId"]
        transport = AsyncHTTPTransport.with_aiohttp(stub.url, stub.api_key, retry=Retry(attempts=1))
        async with AsyncFlow(transport) as flow:
            conv = flow.conversation(cid)
            await conv.start_assistant(init)
            # Stored, then the connection drops: the outcome is unknown, the message kept.
            stub.fault("drop", "assistant_messages", after_processing=True)
            with pytest.raises(TransportError) as caught:
                await conv.choose("Talk to a person")
            assert caught.value.kept is True
            assert len((await conv.snapshot()).outbox) == 1
            # The kept message goes again with its key: the stub replays, stores nothing new.
            [delivered] = await conv.flush()
            assert (await conv.snapshot()).outbox == ()
            assert await conv.state == State.IN_ASSISTANT
        attempts = stub.requests("assistant_messages")
        assert len(attempts) == 2
        keys = {attempt["headers"]["idempotency-key"] for attempt in attempts}
        assert len(keys) == 1
        assert [body["payload"] for body in stub.sent()] == [delivered_payload(stub)]
        assert delivered.message_id.startswith("msg")


def delivered_payload(stub: KustomerStub) -> str:
    [first] = stub.requests("assistant_messages")[:1]
    payload: str = first["body"]["payload"]
    return payload


async def test_a_refused_connection_is_a_connection_error_not_a_timeout() -> None:
    transport = AsyncHTTPTransport.with_aiohttp(
        "http://127.0.0.1:9", "key", retry=Retry(attempts=1)
    )
    async with AsyncFlow(transport) as flow:
        with pytest.raises(TransportError) as caught:
            await flow.conversation("conv_1").send_message("Hi")
    cause = caught.value.__cause__
    assert cause is not None
    assert "Timeout" not in type(caught.value).__name__
