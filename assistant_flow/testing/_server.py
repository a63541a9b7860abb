"""``KustomerStub``: the stub served by uvicorn on 127.0.0.1, in a thread of its own."""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import uvicorn

from .._exceptions import ConfigurationError, InvalidInputError
from ..transports._wire import is_loopback
from ._app import StubApp, quiet_dropped_connections
from ._assistants import Assistant, load_assistants
from ._faults import Fault, FaultKind
from ._state import StubState

__all__ = ["KustomerStub"]

_START_TIMEOUT = 10.0


class KustomerStub:
    """A local stand-in for a Kustomer org: a real HTTP server on a free loopback port.

    Use it as a context manager (or call :meth:`start` and :meth:`stop`)::

        with KustomerStub() as stub:
            transport = HTTPTransport(base_url=stub.url, api_key=stub.api_key)

    It serves the routes in ``docs/http-contract.md``, checks auth, fields and the assistant
    protocol, plays the assistants of ``assistants`` (a YAML file, or the shipped
    ``support.yaml``) and injects faults. ``api_key`` defaults to a fresh random key;
    ``rate_limit`` is the per-minute budget behind ``x-ratelimit-*`` and 429s; ``strict=False``
    turns off the assistant-protocol checks (auth and field checks stay).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        assistants: str | Path | Mapping[str, Assistant] | None = None,
        strict: bool = True,
        rate_limit: int = 1000,
        faults: Iterable[Fault] = (),
        keep_requests: int = 10_000,
    ) -> None:
        if not is_loopback(host):
            raise InvalidInputError(
                "the stub listens on loopback only: use 127.0.0.1, ::1 or localhost", field="host"
            )
        if rate_limit < 1:
            raise InvalidInputError(
                "`rate_limit` must be at least 1 request a minute", field="rate_limit"
            )
        if isinstance(assistants, Mapping):
            loaded = dict(assistants)
        else:
            loaded = load_assistants(assistants)
        self.host = host
        self.port = port
        self.api_key = api_key or f"stub_{secrets.token_urlsafe(18)}"
        """The key clients must send as ``Authorization: Bearer <key>``."""
        self.state = StubState(
            api_key=self.api_key,
            assistants=loaded,
            strict=strict,
            rate_limit=rate_limit,
            faults=faults,
            keep_requests=keep_requests,
        )
        self.app = StubApp(self.state)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    # --- life cycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321`` (set once started)."""
        if self._socket is None:
            raise ConfigurationError("the stub is not started: use `with KustomerStub() as stub`")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server thread is serving."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Self:
        """Bind the port, start uvicorn in a background thread and wait until it answers."""
        if self._thread is not None:
            raise ConfigurationError("this stub is already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        sock.listen(512)
        sock.set_inheritable(True)
        self._socket = sock
        self.port = sock.getsockname()[1]
        self.state.base_url = self.url
        quiet_dropped_connections()
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            backlog=512,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"kustomer-stub-{self.port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ConfigurationError("the stub server did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop serving: long polls answer at once, then uvicorn shuts down. Idempotent."""
        server, thread = self._server, self._thread
        loop = self.app._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: none to wake
                loop.call_soon_threadsafe(self.app.wake_all)
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout=_START_TIMEOUT)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = None

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
        where = self.url if self._socket is not None else "not started"
        return f"KustomerStub({where})"

    # --- test helpers -------------------------------------------------------------------------

    def fault(
        self,
        kind: FaultKind,
        route: str = "*",
        *,
        count: int = 1,
        reset: float = 1.0,
        retry_after: float | None = None,
        status: int = 500,
        delay: float = 1.0,
        after_processing: bool = False,
    ) -> Fault:
        """Inject a fault on the next ``count`` requests of ``route`` (see :class:`Fault`)."""
        fault = Fault(kind, route, count, reset, retry_after, status, delay, after_processing)
        self.state.add_faults([fault])
        return fault

    def clear_faults(self) -> None:
        """Drop the faults still queued."""
        self.state.clear_faults()

    @property
    def faults(self) -> list[dict[str, Any]]:
        """The faults still queued, with the counts left."""
        return self.state.list_faults()

    def requests(self, route: str | None = None) -> list[dict[str, Any]]:
        """What the stub received (oldest first, Authorization left out), optionally one route.

        Each entry has ``route``, ``method``, ``path``, ``query``, ``headers``, ``body`` (parsed
        JSON), ``status`` (or ``"dropped"``) and, for a faulted request, ``fault``.
        """
        found = self.state.list_requests()
        return found if route is None else [entry for entry in found if entry["route"] == route]

    def sent(self) -> list[dict[str, Any]]:
        """The JSON bodies of the customer messages the stub accepted, in order."""
        routes = ("assistant_messages", "messages")
        return [
            entry["body"]
            for entry in self.state.list_requests()
            if entry["route"] in routes
            and entry.get("processed", entry["status"]) == 201
            and not entry.get("replayed")
        ]

    def reset(self) -> None:
        """Forget sessions, events, requests, idempotency keys; restore the configured faults."""
        self.state.reset()

    def agent_says(self, conversation_id: str, body: str) -> None:
        """An agent's reply on a conversation, delivered as ``onMessageReceived``."""
        self.state.agent_says(conversation_id, body)
