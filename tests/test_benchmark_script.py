"""The benchmark script keeps working (run tiny; its timings are never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "send_cost.py"


def test_the_benchmark_runs_and_prints_every_figure() -> None:
    tiny = ["--small", "20", "--large", "200", "--batch", "10", "--repeats", "3"]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *tiny, "--memory-sample", "500"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for row in (
        "reply by hand",
        "reply, 20 conversations stored",
        "reply, 200 conversations stored",
        "first reply through the flow",
        "200 stored / 20 stored",
        "bytes held per idle stored conversation",
    ):
        assert row in result.stdout


def test_the_stub_capacity_benchmark_runs() -> None:
    script = SCRIPT.parent / "stub_capacity.py"
    tiny = ["--requests", "64", "--httpx-requests", "16", "--concurrency", "8"]
    result = subprocess.run(
        [sys.executable, str(script), *tiny],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "bare asyncio HTTP/1.1 client" in result.stdout
    assert "httpx.AsyncClient" in result.stdout
