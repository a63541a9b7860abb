"""``StubProcess``: the stub in a child process, for benchmarks and for tests of other programs.

:class:`~assistant_flow.testing.KustomerStub` serves from a thread of the calling process, so
its request handling shares that process's GIL with the client under test. A benchmark that
must not count the server's work against the client starts the stub in its own process
instead; the helpers then go through the control routes (``/_stub/...``).
"""

from __future__ import annotations

import os
import secrets
import selectors
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import httpx

from .._exceptions import ConfigurationError
from ._faults import Fault
from .stub import API_KEY_VARIABLE

__all__ = ["StubProcess"]

_TIMEOUT = 10.0


class StubProcess:
    """``python -m assistant_flow.testing.stub`` as a context manager: ``.url``, ``.api_key``.

    Takes the options of :class:`~assistant_flow.testing.KustomerStub`; ``faults`` are queued
    once the server answers (so :meth:`reset` clears them).
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        assistants: str | Path | None = None,
        strict: bool = True,
        rate_limit: int = 1000,
        faults: Iterable[Fault] = (),
    ) -> None:
        self.api_key = api_key or f"stub_{secrets.token_urlsafe(18)}"
        """The key clients must send as ``Authorization: Bearer <key>``."""
        self._command = [
            sys.executable,
            "-m",
            "assistant_flow.testing.stub",
            "--port",
            "0",
            "--rate-limit",
            str(rate_limit),
        ]
        if assistants is not None:
            self._command += ["--assistants", str(assistants)]
        if not strict:
            self._command.append("--lenient")
        self._faults = list(faults)
        self._process: subprocess.Popen[str] | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The base URL the child process serves on."""
        if self._url is None:
            raise ConfigurationError("the stub process is not started: use `with StubProcess()`")
        return self._url

    def start(self) -> Self:
        """Start the child process and wait (10 s at most) for the URL it prints.

        The key goes to the child in its environment, not on its command line, which any
        user of the machine can read (``ps``).
        """
        errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - kept open while it runs
        self._errors = errors
        self._process = subprocess.Popen(  # noqa: S603 - our own module, no shell
            self._command,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env={**os.environ, API_KEY_VARIABLE: self.api_key},
        )
        assert self._process.stdout is not None
        line = _first_line(self._process.stdout, _TIMEOUT)
        if not line.startswith("http://"):
            errors.seek(0)
            said = errors.read()[-500:]  # read before stop() closes the file
            self.stop()
            raise ConfigurationError(
                f"the stub process did not print its URL within {_TIMEOUT:g}s: {said}"
            )
        self._url = line
        if self._faults:
            self._control("POST", "/_stub/faults", [fault.to_json() for fault in self._faults])
        return self

    def stop(self) -> None:
        """Stop the child process (SIGTERM, then SIGKILL after 10 s). Idempotent."""
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=_TIMEOUT)
            if process.stdout is not None:
                process.stdout.close()
            self._errors.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"StubProcess({self._url or 'not started'})"

    def _control(self, method: str, path: str, body: object = None) -> Any:  # noqa: ANN401 - JSON
        response = httpx.request(method, f"{self.url}{path}", json=body, timeout=_TIMEOUT)
        response.raise_for_status()
        return response.json() if response.content else None

    def fault(self, kind: str, route: str = "*", **options: float | bool | None) -> None:
        """Queue a fault (the keys of :class:`~assistant_flow.testing.Fault`)."""
        self._control("POST", "/_stub/faults", {"kind": kind, "route": route, **options})

    def requests(self) -> list[dict[str, Any]]:
        """What the stub received (Authorization left out)."""
        found: list[dict[str, Any]] = self._control("GET", "/_stub/requests")["requests"]
        return found

    def reset(self) -> None:
        """Forget sessions, events, requests, idempotency keys and faults."""
        self._control("POST", "/_stub/reset")


def _first_line(stream: IO[str], timeout: float) -> str:
    """The first line ``stream`` gives within ``timeout`` seconds, or ``""``."""
    # The child prints its URL as one flushed line, so once the pipe is readable readline()
    # returns without waiting for more.
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            return ""
    return stream.readline().strip()
