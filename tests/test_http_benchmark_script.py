"""The HTTP benchmark keeps working (run tiny against a real stub; timings never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "http_throughput.py"


def test_the_http_benchmark_runs_and_prints_every_figure() -> None:
    tiny = ["--sends", "8", "--rounds", "1", "--concurrency", "4"]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *tiny],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for row in (
        "4 concurrent senders, 8 sends a round",
        "raw httpx.AsyncClient",
        "AsyncFlow + AsyncHTTPTransport",
        "ratio (flow / raw)",
        "per-round ratios",
        "stub: uvicorn",
    ):
        assert row in result.stdout
