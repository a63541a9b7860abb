"""Sends per second over HTTP: AsyncFlow + AsyncHTTPTransport against raw httpx.

    python benchmarks/http_throughput.py

Starts the Kustomer stub in a separate process (``StubProcess``: uvicorn, with uvloop and
httptools when the ``stub`` extra brought them), so serving is not what this measures; it
prints how busy each process was, to show which one limits the rate. Then, from one client
process and one event loop, ``--concurrency`` senders each post to their own conversation:

* **raw**: ``httpx.AsyncClient.post`` of the JSON the flow would send (``conversationId``,
  ``customerId``, ``body``), with the same headers (Bearer key, a fresh ``Idempotency-Key``),
  reading the JSON answer: the floor, no library;
* **flow**: ``AsyncFlow(AsyncHTTPTransport(...)).conversation(id).send_message(body)``: lock,
  load, step, build the message, post it, parse the ``SentMessage``.

Both use one ``httpx.AsyncClient`` each with the same ``httpx.Limits``. The conversations are
not in assistant mode, so both post to ``/v2.1/chat/messages`` and the stub checks the same
things for both. Rounds alternate which side goes first; the figure is the ratio of the
medians. structlog drops info events (a WARNING threshold), as a busy backend would.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import structlog

from assistant_flow import AsyncFlow, AsyncHTTPTransport, Retry
from assistant_flow.testing import StubProcess

API_KEY = "bench-api-key-not-secret"
CUSTOMER = "cust_bench"
BODY = "Thanks, that answers it."
ROUTE = "/v2.1/chat/messages"


def stub_cpu_seconds(pid: int | None) -> float | None:
    """CPU time (user + system) a process has used, from /proc (None where there is none)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # utime and stime are the 14th and 15th fields of stat; fields here start at the 3rd.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pid() -> int | None:
    """The one child process of this one (the stub), from /proc; None where there is none."""
    me = os.getpid()
    try:
        children = Path(f"/proc/{me}/task/{me}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if len(children) == 1 else None


def create_sessions(url: str, count: int) -> list[str]:
    """``count`` conversations without an assistant (createConversation in the browser)."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    ids = []
    with httpx.Client(timeout=10) as client:
        for n in range(count):
            response = client.post(
                f"{url}/v2.1/chat/sessions",
                json={"customerId": CUSTOMER, "title": f"Bench {n}"},
                headers=headers,
            )
            response.raise_for_status()
            ids.append(response.json()["data"]["id"])
    return ids


async def raw_sender(client: httpx.AsyncClient, url: str, conversation_id: str, n: int) -> None:
    body = {"conversationId": conversation_id, "customerId": CUSTOMER, "body": BODY}
    for _ in range(n):
        headers = {
            "Authorization": f"Bearer {API_KEY}",
            "Accept": "application/json",
            "Idempotency-Key": uuid.uuid4().hex,
        }
        response = await client.post(url + ROUTE, json=body, headers=headers)
        if response.status_code != 201:
            raise RuntimeError(f"raw send answered {response.status_code}: {response.text}")
        response.json()


async def flow_sender(flow: AsyncFlow, conversation_id: str, n: int) -> None:
    conversation = flow.conversation(conversation_id)
    for _ in range(n):
        await conversation.send_message(BODY)


async def timed(senders: list[Awaitable[None]], total: int) -> float:
    """Sends per second of ``senders`` run together."""
    started = time.perf_counter()
    await asyncio.gather(*senders)
    return total / (time.perf_counter() - started)


@dataclass
class Figures:
    """Medians of each side, the spread of the per-round ratios, and how busy each process was.

    ``ratios`` pairs each measured round of one side with the same round of the other (they
    ran back to back), so one noisy round shows as an outlier instead of hiding in a median.
    """

    raw: float
    flow: float
    client_cpu: float
    stub_cpu: float | None
    ratios: list[float]


async def measure(
    url: str, stub_pid: int | None, sends: int, rounds: int, concurrency: int
) -> Figures:
    """Median sends per second of the raw side and of the flow side."""
    conversations = create_sessions(url, concurrency)
    per_sender = max(1, sends // concurrency)
    total = per_sender * concurrency
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(30.0)
    raw_rates: list[float] = []
    flow_rates: list[float] = []
    async with (
        httpx.AsyncClient(limits=limits, timeout=timeout) as raw_client,
        httpx.AsyncClient(limits=limits, timeout=timeout) as flow_client,
    ):
        transport = AsyncHTTPTransport(
            url, API_KEY, client=flow_client, customer_id=CUSTOMER, retry=Retry(attempts=1)
        )
        flow = AsyncFlow(transport)

        def raw_round() -> Awaitable[float]:
            return timed([raw_sender(raw_client, url, c, per_sender) for c in conversations], total)

        def flow_round() -> Awaitable[float]:
            return timed([flow_sender(flow, c, per_sender) for c in conversations], total)

        sides: list[tuple[Callable[[], Awaitable[float]], list[float]]] = [
            (raw_round, raw_rates),
            (flow_round, flow_rates),
        ]
        # One unrecorded round each: connections opened, code paths warm.
        for run, _ in sides:
            await run()
        stub_before, client_before = stub_cpu_seconds(stub_pid), time.process_time()
        started = time.perf_counter()
        for index in range(rounds):
            for run, rates in sides if index % 2 == 0 else sides[::-1]:
                rates.append(await run())
        wall = time.perf_counter() - started
        stub_after, client_after = stub_cpu_seconds(stub_pid), time.process_time()
    stub_cpu = None
    if stub_before is not None and stub_after is not None:
        stub_cpu = (stub_after - stub_before) / wall
    return Figures(
        statistics.median(raw_rates),
        statistics.median(flow_rates),
        (client_after - client_before) / wall,
        stub_cpu,
        [flow_rate / raw_rate for raw_rate, flow_rate in zip(raw_rates, flow_rates, strict=True)],
    )


def server_description() -> str:
    extras = [name for name in ("uvloop", "httptools") if importlib.util.find_spec(name)]
    return "uvicorn" + (f" ({', '.join(extras)})" if extras else "") + " in its own process"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=3200, help="sends a round per side")
    parser.add_argument("--rounds", type=int, default=9, help="measured rounds per side")
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent senders")
    options = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    with StubProcess(api_key=API_KEY, rate_limit=1_000_000_000) as stub:
        figures = asyncio.run(
            measure(stub.url, child_pid(), options.sends, options.rounds, options.concurrency)
        )
    raw, flow = figures.raw, figures.flow

    per_sender = max(1, options.sends // options.concurrency)
    print(
        f"HTTP throughput: {options.concurrency} concurrent senders, "
        f"{per_sender * options.concurrency} sends a round, medians of {options.rounds} "
        f"interleaved rounds; stub: {server_description()}"
    )
    print(f"{'raw httpx.AsyncClient':<32} {raw:>9.0f} sends/s")
    print(f"{'AsyncFlow + AsyncHTTPTransport':<32} {flow:>9.0f} sends/s")
    print(f"{'ratio (flow / raw)':<32} {flow / raw:>9.2f}  (target >= 0.85)")
    print(
        f"{'per-round ratios':<32} min {min(figures.ratios):.2f}, "
        f"max {max(figures.ratios):.2f} over {len(figures.ratios)} rounds"
    )
    stub_busy = "n/a" if figures.stub_cpu is None else f"{figures.stub_cpu:.0%}"
    print(
        f"{'busy (CPU / wall time)':<32} client {figures.client_cpu:.0%}, "
        f"stub {stub_busy} of one core"
    )


if __name__ == "__main__":
    main()
