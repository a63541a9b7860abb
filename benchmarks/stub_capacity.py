"""How many customer messages a second the local Kustomer stub accepts.

    python benchmarks/stub_capacity.py [--requests 6400] [--concurrency 64]

The stub runs in a child process (``StubProcess``), as a benchmark of a client should run it.
The load comes from a bare asyncio HTTP/1.1 client on keep-alive connections, the cheapest
client there is, so the figure is the stub's own ceiling: a client benchmark far below it is
measuring the client, not the stub. The same load through ``httpx.AsyncClient`` is printed
for comparison. Each request is a valid ``POST /v2.1/chat/messages`` that the stub checks,
stores and answers with a JSON:API 201.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit

import httpx

from assistant_flow.testing import StubProcess


def request_bytes(conversation_id: str, api_key: str) -> bytes:
    body = json.dumps({"conversationId": conversation_id, "body": "Hi"}).encode()
    head = (
        "POST /v2.1/chat/messages HTTP/1.1\r\nHost: stub\r\n"
        f"Authorization: Bearer {api_key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def raw_worker(host: str, port: int, request: bytes, count: int) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for _ in range(count):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 201"):
                raise RuntimeError(head.decode(errors="replace"))
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
    finally:
        writer.close()


async def raw_rate(url: str, request: bytes, requests: int, concurrency: int) -> float:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    per_worker = requests // concurrency
    start = time.perf_counter()
    await asyncio.gather(
        *(raw_worker(parts.hostname, parts.port, request, per_worker) for _ in range(concurrency))
    )
    return per_worker * concurrency / (time.perf_counter() - start)


async def httpx_rate(
    url: str, conversation_id: str, api_key: str, requests: int, concurrency: int
) -> float:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {api_key}"}
    body = {"conversationId": conversation_id, "body": "Hi"}
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with gate:
                response = await client.post("/v2.1/chat/messages", json=body)
                response.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(requests)))
        return requests / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6400)
    parser.add_argument("--httpx-requests", type=int, default=1280)
    parser.add_argument("--concurrency", type=int, default=64)
    options = parser.parse_args()
    with StubProcess(rate_limit=10**9) as stub:
        session = httpx.post(
            f"{stub.url}/v2.1/chat/sessions",
            json={"customerId": "cust_bench", "title": "Benchmark"},
            headers={"Authorization": f"Bearer {stub.api_key}"},
        ).json()["data"]["id"]
        request = request_bytes(session, stub.api_key)
        asyncio.run(raw_rate(stub.url, request, options.concurrency, options.concurrency))  # warm
        raw = asyncio.run(raw_rate(stub.url, request, options.requests, options.concurrency))
        through_httpx = asyncio.run(
            httpx_rate(stub.url, session, stub.api_key, options.httpx_requests, options.concurrency)
        )
    print(f"stub in a child process, concurrency {options.concurrency}, POST /v2.1/chat/messages")
    print(f"bare asyncio HTTP/1.1 client  {raw:10.0f} messages/s  ({options.requests} requests)")
    print(
        f"httpx.AsyncClient             {through_httpx:10.0f} messages/s  "
        f"({options.httpx_requests} requests)"
    )


if __name__ == "__main__":
    main()
