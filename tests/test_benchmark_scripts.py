"""Every benchmark script keeps working, run tiny; timings are never asserted, only that each
figure the README and docs/performance.md quote is still printed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"

RUNS = {
    "send_cost": (
        [
            *["--small", "20", "--large", "200", "--batch", "10", "--repeats", "3"],
            *["--memory-sample", "500"],
        ],
        [
            "reply by hand",
            "reply, 20 conversations stored",
            "reply, 200 conversations stored",
            "first reply through the flow",
            "200 stored / 20 stored",
            "bytes held per idle stored conversation",
        ],
    ),
    "stub_capacity": (
        ["--requests", "64", "--httpx-requests", "16", "--concurrency", "8"],
        ["bare asyncio HTTP/1.1 client", "httpx.AsyncClient"],
    ),
    "store_cost": (
        ["--conversations", "20", "--batch", "10", "--repeats", "2"],
        [
            # Counted, not timed: two Redis round trips per send is the target.
            "Redis round trips per send: reply 2.00, first reply (record saved) 2.00",
            "Redis: bare GET + SET",
            "Redis: reply through the flow",
            "Redis: first reply through the flow",
            "SQLite: bare UPDATE (autocommit)",
            "SQLite: replies through the flow",
            "SQLite: first replies through the flow",
        ],
    ),
    "http_throughput": (
        ["--sends", "8", "--rounds", "1", "--concurrency", "4"],
        [
            "4 concurrent senders, 8 sends a round",
            "raw httpx.AsyncClient",
            "AsyncFlow + AsyncHTTPTransport",
            "ratio (flow / raw)",
            "per-round ratios",
            "stub: uvicorn",
        ],
    ),
}


@pytest.mark.parametrize("script", sorted(RUNS))
def test_the_benchmark_runs_and_prints_every_figure(script: str) -> None:
    arguments, rows = RUNS[script]
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{script}.py"), *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    missing = [row for row in rows if row not in result.stdout]
    assert missing == [], result.stdout
