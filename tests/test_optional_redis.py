"""redis-py is an optional extra: assistant_flow imports without it and says what to install.

And the test suite's redis-server is not optional: without one the store tests fail, saying how
to get it, rather than skip.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis_server

WITHOUT_REDIS = """
import sys
sys.modules["redis"] = None  # as if redis-py were not installed
import assistant_flow
from assistant_flow import Flow, MemoryTransport, SQLiteStore
from assistant_flow import *  # every name in __all__ imports without redis-py
assert "RedisStore" not in dir() and callable(AsyncFlow)
try:
    assistant_flow.RedisStore
except ImportError as error:
    print("ImportError:", error)
"""


def test_assistant_flow_imports_without_redis_and_names_the_extra() -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_REDIS],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "ImportError: RedisStore needs redis-py: pip install 'assistant-flow[redis]'" in (
        result.stdout
    )


def test_a_missing_redis_server_fails_the_tests_and_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match="run `make test`"):
        redis_server.RedisServer(tmp_path)
