"""Async HTTP sends per second: the flow on the default and on the aiohttp fast path.

    python benchmarks/http_fast_path.py

Against one stub in its own process (as ``http_throughput.py``), from one event loop, at
c = 8 and c = 64 concurrent senders, rounds interleaved and their order alternated:

* **flow, default**: ``AsyncFlow(AsyncHTTPTransport(...))``, httpx on its own pool (httpcore);
* **flow, fast path**: ``AsyncFlow(AsyncHTTPTransport.with_aiohttp(...))``;
* **raw httpx**: ``httpx.AsyncClient.post`` of the same JSON, the same headers;
* **bare aiohttp**: ``aiohttp.ClientSession.post`` of the same JSON: the ceiling.

Logging: the default set-up (structlog unconfigured: the events go to the silent stdlib
logger), as a user gets it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import uuid
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
from http_throughput import API_KEY, BODY, CUSTOMER, ROUTE, create_sessions, raw_sender, timed

from assistant_flow import AsyncFlow, AsyncHTTPTransport, Retry
from assistant_flow.testing import StubProcess


async def flow_sender(flow: AsyncFlow, conversation_id: str, n: int) -> None:
    conversation = flow.conversation(conversation_id)
    for _ in range(n):
        await conversation.send_message(BODY)


async def aiohttp_sender(
    session: aiohttp.ClientSession, url: str, conversation_id: str, n: int
) -> None:
    body = {"conversationId": conversation_id, "customerId": CUSTOMER, "body": BODY}
    for _ in range(n):
        headers = {"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": uuid.uuid4().hex}
        async with session.post(url + ROUTE, json=body, headers=headers) as response:
            if response.status != 201:
                raise RuntimeError(f"aiohttp send answered {response.status}")
            await response.json()


async def measure(url: str, sends: int, rounds: int, concurrency: int) -> dict[str, float]:
    """Median sends per second of each contender at ``concurrency``."""
    conversations = create_sessions(url, concurrency)
    per_sender = max(1, sends // concurrency)
    total = per_sender * concurrency
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    retry = Retry(attempts=1)
    async with (
        httpx.AsyncClient(limits=limits, timeout=30.0) as raw_client,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session,
        AsyncFlow(AsyncHTTPTransport(url, API_KEY, customer_id=CUSTOMER, retry=retry)) as default,
        AsyncFlow(
            AsyncHTTPTransport.with_aiohttp(
                url,
                API_KEY,
                customer_id=CUSTOMER,
                retry=retry,
                limits=httpx.Limits(max_connections=concurrency),
            )
        ) as fast,
    ):
        contenders: dict[str, Callable[[], Awaitable[float]]] = {
            "flow, default": lambda: timed(
                [flow_sender(default, c, per_sender) for c in conversations], total
            ),
            "flow, fast path": lambda: timed(
                [flow_sender(fast, c, per_sender) for c in conversations], total
            ),
            "raw httpx": lambda: timed(
                [raw_sender(raw_client, url, c, per_sender) for c in conversations], total
            ),
            "bare aiohttp": lambda: timed(
                [aiohttp_sender(session, url, c, per_sender) for c in conversations], total
            ),
        }
        for run in contenders.values():  # warm: connections open, code paths hot
            await run()
        rates: dict[str, list[float]] = {name: [] for name in contenders}
        order = list(contenders)
        for index in range(rounds):
            for name in order if index % 2 == 0 else order[::-1]:
                rates[name].append(await contenders[name]())
    return {name: statistics.median(values) for name, values in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=1600, help="sends a round per contender")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds per contender")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 64])
    options = parser.parse_args()
    with StubProcess(api_key=API_KEY, rate_limit=1_000_000_000) as stub:
        for concurrency in options.concurrency:
            figures = asyncio.run(measure(stub.url, options.sends, options.rounds, concurrency))
            print(f"c = {concurrency} (medians of {options.rounds} rounds, default logging)")
            for name, rate in figures.items():
                print(f"  {name:<20} {rate:>9.0f} sends/s")
            fast = figures["flow, fast path"]
            print(f"  fast path / bare aiohttp {fast / figures['bare aiohttp']:>5.2f}")
            print(f"  fast path / raw httpx    {fast / figures['raw httpx']:>5.2f}")
            default = figures["flow, default"]
            print(f"  default / raw httpx      {default / figures['raw httpx']:>5.2f}")


if __name__ == "__main__":
    main()
