"""A small chatbot backend: assistant_flow behind a webhook, as a plain ASGI app.

    python examples/bot/bot_app.py            (serves on http://127.0.0.1:8080)

Your chat front end (or Kustomer's Core SDK glue) posts here; the bot keeps each
conversation's lifecycle in a store and sends Kustomer-exact messages through the transport:

    POST /kustomer/events                  {"name": "onMessageReceived", "payload": {...}}
    POST /conversations/{id}/assistant     initAssistant's answer: the assistant starts
    POST /conversations/{id}/messages      {"body": "...", "lang": "en"}: the customer writes
    POST /conversations/{id}/choices       {"choice": "Billing"}: the customer taps a button
    POST /conversations/{id}/visits        {"article": "kb_1"}: the customer opens an article
    GET  /conversations/{id}               {"state": ..., "choices": [...]}

Answers are JSON. A bad request is a 400 naming the field, a call the lifecycle does not allow
a 409, a failed send to Kustomer a 502 (the conversation did not move; the client may retry).
With KUSTOMER_BASE_URL and KUSTOMER_API_KEY set it talks to that org, otherwise to a local
Kustomer stub it starts itself; BOT_DB names a SQLite file to keep conversations in.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from assistant_flow import (
    AsyncFlow,
    AsyncHTTPTransport,
    AsyncSQLiteStore,
    InvalidInputError,
    MemoryStore,
    SentMessage,
    TransitionError,
    TransportError,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY = 1_000_000  # bytes; a webhook body larger than this is refused with a 413


class HTTPError(Exception):
    """An answer other than 200: its status and JSON body."""

    def __init__(self, status: int, error: str, field: str | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.body: dict[str, Any] = {"error": error}
        if field is not None:
            self.body["field"] = field


async def read_json(receive: Receive) -> dict[str, Any]:
    """The request's JSON object (an empty body reads as ``{}``)."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise HTTPError(413, f"the body is larger than {MAX_BODY} bytes")
        chunks.append(chunk)
        more = message.get("more_body", False)
    raw = b"".join(chunks)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as error:
        raise HTTPError(400, "the body is not JSON") from error
    if not isinstance(data, dict):
        raise HTTPError(400, "the body must be a JSON object")
    return data


def text_field(data: dict[str, Any], name: str) -> str:
    """A required non-empty string field of the request body."""
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise HTTPError(400, f"`{name}` must be a non-empty string", name)
    return value


def sent_json(sent: SentMessage, state: str) -> dict[str, Any]:
    """What a send answers: Kustomer's message id and the conversation's new state."""
    return {"messageId": sent.message_id, "state": state}


async def answer(send: Send, status: int, body: dict[str, Any]) -> None:
    """Send one JSON response."""
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def create_app(flow: AsyncFlow) -> App:
    """The webhook app around ``flow`` (its transport and store are the flow's own)."""

    async def route(  # noqa: PLR0911 - one return per route reads as a routing table
        method: str, parts: list[str], data: dict[str, Any]
    ) -> dict[str, Any]:
        if method == "POST" and parts == ["kustomer", "events"]:
            payload = data.get("payload", {})
            if not isinstance(payload, dict):
                raise HTTPError(400, "`payload` must be an object", "payload")
            await flow.dispatch(text_field(data, "name"), payload)
            conversation_id = payload.get("conversationId")
            if isinstance(conversation_id, str) and conversation_id:
                return {"state": await flow.conversation(conversation_id).state}
            return {}
        if len(parts) < 2 or parts[0] != "conversations":
            raise HTTPError(404, "no such route")
        conv = flow.conversation(parts[1])
        action = (method, parts[2] if len(parts) == 3 else None)
        if action == ("GET", None):
            record = await conv.snapshot()
            return {"state": record.state, "choices": [c.display_text for c in record.choices]}
        if action == ("POST", "assistant"):
            await conv.start_assistant(data)
            return {"state": await conv.state}
        if action == ("POST", "messages"):
            lang = data.get("lang")
            sent = await conv.send_message(text_field(data, "body"), lang=lang)
            return sent_json(sent, await conv.state)
        if action == ("POST", "choices"):
            sent = await conv.choose(text_field(data, "choice"), lang=data.get("lang"))
            return sent_json(sent, await conv.state)
        if action == ("POST", "visits"):
            await conv.visit_article(text_field(data, "article"))
            return {"state": await conv.state}
        raise HTTPError(404, "no such route")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # nothing to set up: say so and wait for shutdown
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        parts = [part for part in scope["path"].split("/") if part]
        try:
            data = await read_json(receive) if scope["method"] == "POST" else {}
            await answer(send, 200, await route(scope["method"], parts, data))
        except HTTPError as error:
            await answer(send, error.status, error.body)
        except InvalidInputError as error:  # the library names the field and the fix
            await answer(send, 400, {"error": str(error), "field": error.field})
        except TransitionError as error:
            await answer(send, 409, {"error": str(error)})
        except TransportError as error:  # Kustomer did not take it; nothing moved
            await answer(send, 502, {"error": type(error).__name__})

    return app


def main() -> None:
    """Serve the bot on 127.0.0.1:8080 (PORT changes the port) until Ctrl-C."""
    import uvicorn  # noqa: PLC0415 - the `stub` extra, only needed to serve

    store = AsyncSQLiteStore(os.environ["BOT_DB"]) if os.environ.get("BOT_DB") else MemoryStore()
    base_url, api_key = os.environ.get("KUSTOMER_BASE_URL"), os.environ.get("KUSTOMER_API_KEY")
    if base_url and api_key:
        transport = AsyncHTTPTransport(base_url, api_key=api_key)
        uvicorn.run(
            create_app(AsyncFlow(transport, store)), port=int(os.environ.get("PORT", "8080"))
        )
        return
    from assistant_flow.testing import KustomerStub  # noqa: PLC0415 - as uvicorn

    with KustomerStub() as stub:
        # Flushed: under a pipe, print would hold the line back until the bot exits.
        print(
            f"No KUSTOMER_BASE_URL: messages go to a local Kustomer stub at {stub.url}", flush=True
        )
        transport = AsyncHTTPTransport(stub.url, api_key=stub.api_key)
        uvicorn.run(
            create_app(AsyncFlow(transport, store)), port=int(os.environ.get("PORT", "8080"))
        )


if __name__ == "__main__":
    main()
