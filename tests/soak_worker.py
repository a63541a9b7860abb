"""A worker process for tests/test_exactly_once.py: dialogs over a lossy server, shared store.

    python tests/soak_worker.py STORE SERVER_URL DIR --worker N --workers W --conversations C
        [--mode sync|async] [--attempts A] [--timeout SECONDS] [--seed S] [--prefix P]
        [--random-keys]

STORE is ``sqlite:PATH`` or a ``redis://`` URL (``--prefix`` picks the keys). Each
conversation follows :func:`script` (start, a first reply, plain replies, two deflections, an
article visit, a quick reply, the end of the assistant, a reply after it). Conversation ``i``
starts with worker ``i % W``; the conversations travel between the workers as *batons*,
JSON files in ``DIR/inbox/w<N>/``, each carrying the conversation's progress and its
*timeline*: what the worker intends the server to have processed, in order.

On a :class:`TransportError` the worker looks at the conversation's outbox to learn whether
its message was kept (outcome unknown: it will be delivered), then at random resends the same
call, moves on to the next call, or hands the conversation over to another worker (which
resends or moves on). A message neither answered nor kept is *skipped*: the server must never
have processed it. Calls that send nothing (receive, visit, end) are never skipped: they are
repeated, here or by another worker. Anything else the library raises is written down as
*unexpected* (the test fails on it) and the worker carries on.

Finished conversations go to ``DIR/done/<conversation>.json``; the worker's counters to
``DIR/stats/w<N>.json``. A worker ends when every conversation is done.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
from lossy_server import API_KEY
from payloads import greeting, init_response, quick_replies

from assistant_flow import (
    AssistantFlowError,
    AsyncFlow,
    AsyncHTTPTransport,
    AsyncRedisStore,
    AsyncSQLiteStore,
    AsyncStore,
    ConversationHandle,
    ConversationRecord,
    Flow,
    HTTPTransport,
    RedisStore,
    Retry,
    SendMessageOptions,
    SentMessage,
    SQLiteStore,
    Store,
    StoreError,
    TransportError,
)

BUTTONS = init_response(
    greeting(quick_replies("Pick one", ("Billing", "billing"), ("Tech", "tech")))
)
ARTICLES = (
    {"id": "art_1", "version": "3", "lang": "en_us", "title": "Reset your password"},
    {"id": "art_2", "version": "1", "lang": "en_us", "title": "Billing FAQ"},
)
HANDOVER_AFTER_SUCCESS = 0.1  # also pass conversations on when nothing failed


def conversation_ids(count: int) -> list[str]:
    return [f"soak_{n:03d}" for n in range(count)]


def assistant_message(
    conversation_id: str,
    number: int,
    articles: list[dict[str, Any]],
    template: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An assistant message as onMessageReceived delivers it: a deflection (meta.articles)."""
    meta: dict[str, Any] = {"articles": articles} if articles else {}
    if template is not None:
        meta["template"] = template
    return {
        "messageId": f"{conversation_id}:a{number}",
        "conversationId": conversation_id,
        "body": "These articles may help",
        "createdAt": f"2026-11-25T11:00:{number:02d}.000Z",
        "direction": "out",
        "meta": meta,
        "sentBy": {"type": "assistant", "id": "asst_1", "displayName": "Helper"},
    }


@dataclass(frozen=True)
class Call:
    """One call of a dialog: ``verb`` is a handle method, ``arg`` what it takes."""

    verb: str  # start, send, choose, receive, visit, end
    arg: Any = None

    @property
    def sends(self) -> bool:
        return self.verb in ("send", "choose")

    def wire(self) -> tuple[str | None, str | None]:
        """(body, payload) of the message the call sends."""
        if self.verb == "send":
            return self.arg, None
        return {"Billing": ("Billing", "billing"), "Yes": ("Yes", "yes")}[self.arg]

    def describe(self) -> str:
        if self.verb == "receive":
            return f"receive({self.arg['messageId']})"
        return f"{self.verb}({self.arg!r})" if self.arg is not None else f"{self.verb}()"


def script(conversation_id: str, index: int) -> list[Call]:
    """The calls of one conversation. Odd ones answer the greeting with a plain reply first."""
    c = conversation_id
    first = (
        [Call("choose", "Billing"), Call("send", f"{c}:1")]
        if index % 2 == 0
        else [Call("send", f"{c}:0"), Call("choose", "Billing"), Call("send", f"{c}:1")]
    )
    did_it_help = quick_replies("Did that help?", ("Yes", "yes"), ("No", "no"))
    return [
        Call("start", BUTTONS),
        *first,
        Call("receive", assistant_message(c, 1, list(ARTICLES))),  # deflection 1
        Call("visit", "art_1"),
        Call("send", f"{c}:2"),  # carries lastDeflection 1, art_1 visited once
        Call("send", f"{c}:3"),
        Call("receive", assistant_message(c, 2, [ARTICLES[1]], did_it_help)),  # deflection 2
        Call("choose", "Yes"),  # carries lastDeflection 2 and payload "yes"
        Call("send", f"{c}:4"),
        Call("end"),
        Call("send", f"{c}:5"),  # isInAssistantMode false, on the messages route
    ]


# --- one interface over the sync and the async handle ---------------------------------------


class Handle(Protocol):
    async def start_assistant(self, init_response: dict[str, Any]) -> None: ...
    async def send_message(self, body: str) -> SentMessage: ...
    async def choose(self, choice: str) -> SentMessage: ...
    async def receive(self, message: dict[str, Any]) -> None: ...
    async def visit_article(self, article_id: str) -> None: ...
    async def end_assistant(self) -> None: ...
    async def snapshot(self) -> ConversationRecord: ...


class SyncHandle:
    """A blocking ConversationHandle behind ``await`` (the worker has one task: no harm)."""

    def __init__(self, handle: ConversationHandle) -> None:
        self._handle = handle

    async def start_assistant(self, init_response: dict[str, Any]) -> None:
        self._handle.start_assistant(init_response)

    async def send_message(self, body: str) -> SentMessage:
        return self._handle.send_message(body)

    async def choose(self, choice: str) -> SentMessage:
        return self._handle.choose(choice)

    async def receive(self, message: dict[str, Any]) -> None:
        self._handle.receive(message)

    async def visit_article(self, article_id: str) -> None:
        self._handle.visit_article(article_id)

    async def end_assistant(self) -> None:
        self._handle.end_assistant()

    async def snapshot(self) -> ConversationRecord:
        return self._handle.snapshot()


async def perform(conv: Handle, call: Call) -> SentMessage | None:
    if call.verb == "start":
        await conv.start_assistant(call.arg)
    elif call.verb == "send":
        return await conv.send_message(call.arg)
    elif call.verb == "choose":
        return await conv.choose(call.arg)
    elif call.verb == "receive":
        await conv.receive(call.arg)
    elif call.verb == "visit":
        await conv.visit_article(call.arg)
    elif call.verb == "end":
        await conv.end_assistant()
    else:
        raise AssertionError(call.verb)
    return None


# --- the worker ----------------------------------------------------------------------------


class Worker:
    def __init__(self, args: argparse.Namespace, handle: Callable[[str], Handle]) -> None:
        self.args = args
        self.number: int = args.worker
        self.handle = handle
        self.rng = random.Random(args.seed * 1000 + args.worker)
        self.root = Path(args.dir)
        self.inbox = self.root / "inbox" / f"w{self.number}"
        self.done = self.root / "done"
        self.counts: Counter[str] = Counter()
        self.unexpected: list[dict[str, Any]] = []
        self.max_outbox = 0

    # batons: written whole, then renamed into place, so a reader never sees half of one
    def _put(self, folder: Path, baton: dict[str, Any]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = self.root / "tmp" / f"{baton['conv']}.{self.number}.{time.monotonic_ns()}"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(baton))
        os.replace(tmp, folder / f"{baton['conv']}.json")

    def hand_over(self, baton: dict[str, Any]) -> None:
        others = [n for n in range(self.args.workers) if n != self.number] or [self.number]
        target = self.rng.choice(others)
        baton["hops"] += 1
        self.counts["handovers"] += 1
        self._put(self.root / "inbox" / f"w{target}", baton)

    def note(self, baton: dict[str, Any], call: Call, what: str, error: BaseException) -> None:
        self.unexpected.append(
            {
                "conv": baton["conv"],
                "step": baton["step"],
                "call": call.describe(),
                "what": what,
                "error": f"{type(error).__name__}: {error}",
                "worker": self.number,
            }
        )

    async def run(self) -> None:
        ids = conversation_ids(self.args.conversations)
        for index, conversation_id in enumerate(ids):
            if index % self.args.workers == self.number:
                self._put(self.inbox, new_baton(conversation_id, index))
        deadline = time.monotonic() + self.args.deadline
        while True:
            batons = sorted(self.inbox.glob("*.json"))
            if not batons:
                if len(list(self.done.glob("*.json"))) >= len(ids):
                    return
                if time.monotonic() > deadline:
                    raise SystemExit(f"worker {self.number}: not every conversation got done")
                await asyncio.sleep(0.005)
                continue
            for path in batons:
                baton = json.loads(path.read_text())
                path.unlink()
                await self.drive(baton)

    async def drive(self, baton: dict[str, Any]) -> None:
        """Carry one conversation on until it is done or handed over."""
        conv = self.handle(baton["conv"])
        calls = script(baton["conv"], baton["index"])
        while baton["step"] < len(calls):
            step = baton["step"]
            call = calls[step]
            self.counts["calls"] += 1
            try:
                sent = await perform(conv, call)
            except TransportError as error:
                decision = await self.after_transport_error(conv, baton, call, error)
                if decision == "resend":
                    self.counts["resends"] += 1
                    continue
                if decision == "move_on":
                    self.skip_unless_kept(baton, call)
                    baton["step"] += 1
                    self.counts["move_ons"] += 1
                    continue
                if decision == "handover_move_on":
                    self.skip_unless_kept(baton, call)
                    baton["step"] += 1
                self.hand_over(baton)
                return
            except (AssistantFlowError, AssertionError) as error:
                # Not expected with this server: each is a finding. Write it down and carry on
                # (a StoreError: try the call again; anything else: go past it).
                self.note(baton, call, "unexpected library error", error)
                baton["store_errors"] = baton.get("store_errors", 0) + 1
                if isinstance(error, StoreError) and baton["store_errors"] < 5:
                    continue
                self.skip_unless_kept(baton, call)
                baton["step"] += 1
                continue
            self.succeeded(baton, call, sent)
            baton["step"] += 1
            if baton["step"] < len(calls) and self.rng.random() < HANDOVER_AFTER_SUCCESS:
                self.hand_over(baton)
                return
        baton["finished_by"] = self.number
        self._put(self.done, baton)

    def entry_for(self, baton: dict[str, Any], step: int) -> dict[str, Any] | None:
        for entry in baton["timeline"]:
            if entry["kind"] == "message" and entry["step"] == step:
                found: dict[str, Any] = entry
                return found
        return None

    def succeeded(self, baton: dict[str, Any], call: Call, sent: SentMessage | None) -> None:
        step = baton["step"]
        if baton.pop("kept_behind", False):
            # A call that succeeds has delivered the kept message first.
            self.counts[f"kept_delivered_by:{call.verb}"] += 1
        if call.sends:
            assert sent is not None
            entry = self.entry_for(baton, step)
            if entry is None:
                entry = message_entry(call, step, self.number)
                baton["timeline"].append(entry)
            else:
                self.counts["kept_then_answered_by_resend"] += 1
            entry["answered"] = True
            entry["message_id"] = sent.message_id
        elif call.verb == "receive":
            articles = [article["id"] for article in call.arg["meta"]["articles"]]
            baton["timeline"].append({"kind": "deflection", "step": step, "articles": articles})
        elif call.verb == "visit":
            baton["timeline"].append({"kind": "visit", "step": step, "article": call.arg})
        elif call.verb == "end":
            baton["timeline"].append({"kind": "end", "step": step})

    async def after_transport_error(
        self, conv: Handle, baton: dict[str, Any], call: Call, error: TransportError
    ) -> str:
        """Learn whether the call's message was kept; pick what to do next."""
        self.counts[f"error:{type(error).__name__}"] += 1
        kept = getattr(error, "kept", None)
        self.counts[f"error.kept={kept}"] += 1
        if kept is not True:
            # This server never refuses a message for good: every failure is in doubt.
            self.note(baton, call, "TransportError with kept != True", error)
        record = await conv.snapshot()
        outbox = record.outbox
        self.max_outbox = max(self.max_outbox, len(outbox))
        if call.sends:
            body, payload = call.wire()
            mine = [
                item
                for item in outbox
                if item.message.body == body and item.message.payload == payload
            ]
            entry = self.entry_for(baton, baton["step"])
            if mine:
                self.counts["kept"] += 1
                if len(mine) > 1:
                    self.note(baton, call, f"kept {len(mine)} times in the outbox", error)
                if entry is None:
                    entry = message_entry(call, baton["step"], self.number)
                    baton["timeline"].append(entry)
                entry["key"] = mine[0].idempotency_key
            else:
                self.counts["not_kept"] += 1  # an older kept message could not be delivered
                if entry is not None:
                    self.note(baton, call, "a kept message left the outbox unanswered", error)
            choices = ["resend", "move_on", "handover_resend", "handover_move_on"]
        else:
            choices = ["resend", "resend", "handover_resend"]
        decision = self.rng.choice(choices)
        self.counts[f"decision:{decision}"] += 1
        return decision

    def skip_unless_kept(self, baton: dict[str, Any], call: Call) -> None:
        """Moving past a call: a message not kept will never be sent."""
        entry = self.entry_for(baton, baton["step"]) if call.sends else None
        if entry is not None and not entry["answered"]:
            baton["kept_behind"] = True  # the next call (or the final flush) delivers it
        if call.sends and entry is None:
            body, payload = call.wire()
            baton["skipped"].append({"step": baton["step"], "body": body, "payload": payload})
            self.counts["skipped"] += 1
        elif not call.sends:
            self.counts["skipped_non_send"] += 1

    def write_stats(self) -> None:
        folder = self.root / "stats"
        folder.mkdir(parents=True, exist_ok=True)
        stats = {
            "worker": self.number,
            "mode": self.args.mode,
            "attempts": self.args.attempts,
            "counts": dict(self.counts),
            "unexpected": self.unexpected,
            "max_outbox": self.max_outbox,
        }
        (folder / f"w{self.number}.json").write_text(json.dumps(stats))


def new_baton(conversation_id: str, index: int) -> dict[str, Any]:
    return {
        "conv": conversation_id,
        "index": index,
        "step": 0,
        "timeline": [],
        "skipped": [],
        "hops": 0,
    }


def message_entry(call: Call, step: int, worker: int) -> dict[str, Any]:
    body, payload = call.wire()
    return {
        "kind": "message",
        "step": step,
        "call": call.verb,
        "body": body,
        "payload": payload,
        "answered": False,
        "message_id": None,
        "key": None,
        "worker": worker,
    }


def random_key(message: SendMessageOptions) -> str:
    """``--random-keys``: a new key for every send, so the server cannot spot a resend (for
    the test that checks the soak's checker finds duplicates)."""
    return uuid.uuid4().hex


def transport_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {"retry": retry_policy(args)}
    if args.random_keys:
        options["idempotency_key"] = random_key
    return options


def retry_policy(args: argparse.Namespace) -> Retry:
    return Retry(attempts=args.attempts, max_elapsed=5.0, backoff=0.01, max_backoff=0.05)


async def run_sync(args: argparse.Namespace) -> Worker:
    store: Store
    if args.store.startswith("sqlite:"):
        store = SQLiteStore(args.store.removeprefix("sqlite:"))
    else:
        store = RedisStore.from_url(args.store, prefix=args.prefix)
    client = httpx.Client(timeout=httpx.Timeout(args.timeout))
    flow = Flow(
        HTTPTransport(args.server, API_KEY, client=client, **transport_options(args)), store
    )
    worker = Worker(args, lambda conversation_id: SyncHandle(flow.conversation(conversation_id)))
    try:
        await worker.run()
    finally:
        worker.write_stats()
        client.close()
        store.close()
    return worker


async def run_async(args: argparse.Namespace) -> Worker:
    store: AsyncStore
    if args.store.startswith("sqlite:"):
        store = AsyncSQLiteStore(args.store.removeprefix("sqlite:"))
    else:
        store = AsyncRedisStore.from_url(args.store, prefix=args.prefix)
    client = httpx.AsyncClient(timeout=httpx.Timeout(args.timeout))
    transport = AsyncHTTPTransport(args.server, API_KEY, client=client, **transport_options(args))
    flow = AsyncFlow(transport, store)
    worker = Worker(args, flow.conversation)
    try:
        await worker.run()
    finally:
        worker.write_stats()
        await client.aclose()
        await store.aclose()
    return worker


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("server")
    parser.add_argument("dir")
    parser.add_argument("--worker", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--conversations", type=int, required=True)
    parser.add_argument("--mode", choices=["sync", "async"], default="sync")
    parser.add_argument("--attempts", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prefix", default="assistant_flow:")
    parser.add_argument("--deadline", type=float, default=50.0)
    parser.add_argument("--random-keys", action="store_true")
    args = parser.parse_args()
    asyncio.run(run_sync(args) if args.mode == "sync" else run_async(args))


if __name__ == "__main__":
    main()
