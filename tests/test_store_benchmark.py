"""The store benchmark keeps working (run tiny; its timings are never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "store_cost.py"


def test_the_store_benchmark_runs_and_counts_two_redis_round_trips_per_send() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--conversations", "20", "--batch", "10", "--repeats", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Redis round trips per send: reply 2.00, first reply (record saved) 2.00" in (
        result.stdout
    )
    for row in (
        "Redis: bare GET + SET",
        "Redis: reply through the flow",
        "Redis: first reply through the flow",
        "SQLite: bare UPDATE (autocommit)",
        "SQLite: replies through the flow",
        "SQLite: first replies through the flow",
    ):
        assert row in result.stdout
