"""A lossy Kustomer message server of the tests' own, for the exactly-once tests.

Independent of the library's stub (``assistant_flow.testing``): the standard library's
``ThreadingHTTPServer`` on 127.0.0.1, serving the two message routes of
``docs/http-contract.md``::

    POST /v2.1/chat/assistant/messages      POST /v2.1/chat/messages

It honours ``Idempotency-Key`` as the contract states: a key already answered gets the
stored answer again (``idempotent-replayed: true``) and is not processed again; the same key
with another body is a ``409``. Only 2xx answers are remembered. Every message it processes
is logged per conversation, in order (``server.log()``, or ``GET /_log``).

Faults are drawn per request from a seeded random source (``Faults``), or scripted for the
next matching requests (``server.plan(...)``), and hit first replies (``initAssistantPayload``),
deflection replies (``lastDeflection``) and plain replies alike:

* ``drop_before``: the body is read, nothing is processed, the connection closes unanswered;
* ``fail_503``: nothing is processed, the answer is ``503``;
* ``fail_429``: nothing is processed, the answer is ``429`` (``Retry-After: 0.01``);
* ``drop_after``: processed and stored, then the connection closes with no answer;
* ``truncate_after``: processed and stored, then half an answer and the connection closes;
* ``slow_after``: processed and stored, then the answer comes ``slow_seconds`` later, past the
  client's timeout;
* ``refuse_400`` (scripted only): a definite refusal, nothing processed.

Run it alone with ``python tests/lossy_server.py --drop-after 0.1`` (it prints its URL).
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

ASSISTANT_ROUTE = "/v2.1/chat/assistant/messages"
MESSAGES_ROUTE = "/v2.1/chat/messages"
ROUTES = (ASSISTANT_ROUTE, MESSAGES_ROUTE)
API_KEY = "lossy-test-key"

Kind = Literal[
    "drop_before",
    "fail_503",
    "fail_429",
    "drop_after",
    "truncate_after",
    "slow_after",
    "refuse_400",
]
Match = Literal["first", "deflection", "plain", "any"]
RANDOM_KINDS: tuple[Kind, ...] = (
    "drop_before",
    "fail_503",
    "fail_429",
    "drop_after",
    "truncate_after",
    "slow_after",
)
LOST_ANSWER_KINDS = frozenset({"drop_after", "truncate_after", "slow_after"})
_EPOCH = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Faults:
    """Per-request fault rates (each a probability; at most one fault per request)."""

    drop_before: float = 0.0
    fail_503: float = 0.0
    fail_429: float = 0.0
    drop_after: float = 0.0
    truncate_after: float = 0.0
    slow_after: float = 0.0
    slow_seconds: float = 1.0
    seed: int = 0

    @property
    def total(self) -> float:
        return float(sum(getattr(self, kind) for kind in RANDOM_KINDS))


def message_class(body: dict[str, Any]) -> str:
    """``first`` (carries initAssistantPayload), ``deflection`` (lastDeflection), or ``plain``."""
    if "initAssistantPayload" in body:
        return "first"
    if "lastDeflection" in body:
        return "deflection"
    return "plain"


@dataclass
class _Planned:
    kind: Kind
    match: Match
    times: int


@dataclass
class Stats:
    """What the server saw: counted per request (a retry is a request of its own)."""

    requests: int = 0
    processed: int = 0
    replayed: int = 0
    conflicts: int = 0
    missing_key: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    faults_by_class: Counter[str] = field(default_factory=Counter)
    # a first processing whose answer the client never got (the interesting kind)
    lost_new_answers: int = 0

    @property
    def faulted(self) -> int:
        return sum(self.faults.values())

    @property
    def lost_answers(self) -> int:
        return sum(n for kind, n in self.faults.items() if kind in LOST_ANSWER_KINDS)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["faults"] = dict(self.faults)
        data["faults_by_class"] = dict(self.faults_by_class)
        data["faulted"] = self.faulted
        data["lost_answers"] = self.lost_answers
        return data


class LossyServer:
    """The server, run on a daemon thread: ``with LossyServer(faults) as server: ...``."""

    def __init__(self, faults: Faults | None = None, *, api_key: str = API_KEY) -> None:
        self.faults = faults or Faults()
        self.api_key = api_key
        self._random = random.Random(self.faults.seed)
        self._lock = threading.Lock()
        self._answers: dict[str, tuple[str, dict[str, Any]]] = {}  # key -> (canonical body, answer)
        self._log: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._planned: list[_Planned] = []
        self.stats = Stats()
        self._seq = 0
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.lossy = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LossyServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> LossyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- control ------------------------------------------------------------------------

    def plan(self, kind: Kind, match: Match = "any", times: int = 1) -> None:
        """Apply ``kind`` to the next ``times`` requests of class ``match`` (before any random
        fault)."""
        with self._lock:
            self._planned.append(_Planned(kind, match, times))

    def set_faults(self, faults: Faults) -> None:
        with self._lock:
            self.faults = faults

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """No random faults inside the block (scripted ones still apply)."""
        before = self.faults
        self.set_faults(Faults(slow_seconds=before.slow_seconds, seed=before.seed))
        try:
            yield
        finally:
            self.set_faults(before)

    def log(self, conversation_id: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """Every processed message, per conversation, in the order processed."""
        with self._lock:
            if conversation_id is not None:
                return {conversation_id: list(self._log.get(conversation_id, ()))}
            return {conv: list(entries) for conv, entries in self._log.items()}

    def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        """The bodies processed for one conversation, in order."""
        return [entry["body"] for entry in self.log(conversation_id)[conversation_id]]

    # --- request handling (called on the handler's thread) -------------------------------

    def _choose_fault(self, klass: str) -> Kind | None:
        with self._lock:
            for planned in self._planned:
                if planned.times > 0 and planned.match in ("any", klass):
                    planned.times -= 1
                    return planned.kind
            draw = self._random.random()
            for kind in RANDOM_KINDS:
                rate: float = getattr(self.faults, kind)
                if draw < rate:
                    return kind
                draw -= rate
            return None

    def _process(
        self, route: str, key: str | None, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any], bool, bool]:
        """(status, answer, replayed, new): the stored answer for a known key, else process."""
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        with self._lock:
            if key is None:
                self.stats.missing_key += 1
            elif key in self._answers:
                stored_body, answer = self._answers[key]
                if stored_body != canonical:
                    self.stats.conflicts += 1
                    conflict = _error("conflict", "Idempotency-Key reused with another body")
                    return 409, conflict, False, False
                self.stats.replayed += 1
                return 201, answer, True, False
            self._seq += 1
            conversation_id = str(body.get("conversationId", ""))
            created_at = (
                (_EPOCH + timedelta(milliseconds=self._seq))
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z")
            )
            message_id = f"msg_{self._seq:06d}"
            answer = {
                "data": {
                    "type": "message",
                    "id": message_id,
                    "attributes": {
                        "body": body.get("body"),
                        "createdAt": created_at,
                        "direction": "in",
                        "conversationId": conversation_id,
                        "attachments": [],
                    },
                }
            }
            if key is not None:
                self._answers[key] = (canonical, answer)
            self._log[conversation_id].append(
                {
                    "seq": self._seq,
                    "route": route,
                    "key": key,
                    "class": message_class(body),
                    "messageId": message_id,
                    "body": body,
                }
            )
            self.stats.processed += 1
            return 201, answer, False, True

    def _count(self, kind: Kind | None, klass: str, *, new: bool = False) -> None:
        with self._lock:
            if kind is None:
                return
            self.stats.faults[kind] += 1
            self.stats.faults_by_class[klass] += 1
            if new and kind in LOST_ANSWER_KINDS:
                self.stats.lost_new_answers += 1


def _error(code: str, message: str) -> dict[str, Any]:
    return {"errors": [{"code": code, "message": message, "meta": {}}]}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    lossy: LossyServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet

    def _answer(self, status: int, document: object, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _drop(self) -> None:
        """Close the connection without a byte of answer."""
        self.close_connection = True
        self.wfile.flush()

    def _truncate(self, document: object) -> None:
        payload = json.dumps(document).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload[: len(payload) // 2])
        self.wfile.flush()
        self.close_connection = True

    def do_GET(self) -> None:
        lossy = self.server.lossy
        if self.path == "/_log":
            self._answer(200, {"conversations": lossy.log(), "stats": lossy.stats.to_dict()})
        elif self.path == "/_stats":
            self._answer(200, lossy.stats.to_dict())
        else:
            self._answer(404, _error("not_found", "no such route"))

    def do_POST(self) -> None:
        lossy = self.server.lossy
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path not in ROUTES:
            self._answer(404, _error("not_found", "no such route"))
            return
        if self.headers.get("Authorization") != f"Bearer {lossy.api_key}":
            self._answer(401, _error("unauthorized", "bad API key"))
            return
        try:
            body = json.loads(raw)
            assert isinstance(body, dict)
        except (ValueError, AssertionError):
            self._answer(400, _error("bad_request", "the body is not a JSON object"))
            return
        with lossy._lock:
            lossy.stats.requests += 1
        klass = message_class(body)
        fault = lossy._choose_fault(klass)
        if fault in ("drop_before", "fail_503", "fail_429", "refuse_400"):
            lossy._count(fault, klass)
            if fault == "drop_before":
                self._drop()
            elif fault == "fail_503":
                self._answer(503, _error("unavailable", "try again"))
            elif fault == "fail_429":
                limited = _error("rate_limited", "slow down")
                self._answer(429, limited, {"Retry-After": "0.01"})
            else:
                self._answer(400, _error("bad_request", "refused (scripted)"))
            return
        key = self.headers.get("Idempotency-Key")
        status, answer, replayed, new = lossy._process(self.path, key, body)
        lossy._count(fault, klass, new=new)
        if fault == "drop_after":
            self._drop()
        elif fault == "truncate_after":
            self._truncate(answer)
        else:
            if fault == "slow_after":
                time.sleep(lossy.faults.slow_seconds)
            try:
                self._answer(status, answer, {"idempotent-replayed": "true"} if replayed else None)
            except OSError:  # the client gave up waiting
                self.close_connection = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for kind in RANDOM_KINDS:
        parser.add_argument(f"--{kind.replace('_', '-')}", type=float, default=0.0)
    parser.add_argument("--slow-seconds", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    faults = Faults(
        **{kind: getattr(args, kind) for kind in RANDOM_KINDS},
        slow_seconds=args.slow_seconds,
        seed=args.seed,
    )
    with LossyServer(faults) as server:
        print(server.url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
