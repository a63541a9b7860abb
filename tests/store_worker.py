"""A worker process for tests/test_store_processes.py: one Flow on a shared store.

    python tests/store_worker.py STORE OUT --worker N race --go FILE --conversations 50
    python tests/store_worker.py STORE OUT hold CONVERSATION
    python tests/store_worker.py STORE OUT steps CONVERSATION start reply:Hi choose:Billing

STORE is ``sqlite:PATH`` or a ``redis://`` URL (``--prefix`` picks the keys). Every message
the worker sends is appended to OUT as one JSON line (flushed at once, so a killed worker's
lines survive), with the worker number and a system-wide monotonic timestamp taken while the
conversation's lock is held; refused actions are written there too.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from payloads import greeting, init_response, quick_replies

from assistant_flow import (
    Flow,
    MemoryTransport,
    RedisStore,
    SendMessageOptions,
    SentMessage,
    SQLiteStore,
    Store,
    Transport,
    UnknownChoiceError,
)

BUTTONS = init_response(
    greeting(quick_replies("Pick one", ("Billing", "billing"), ("Tech", "tech")))
)


def conversation_ids(count: int) -> list[str]:
    return [f"conv_{n:03d}" for n in range(count)]


class JsonLinesTransport(Transport):
    """Delivers to memory and appends each wire payload to a file, one JSON line per send."""

    def __init__(self, out: TextIO, worker: int) -> None:
        self.inner = MemoryTransport()
        self.out = out
        self.worker = worker

    def send(self, message: SendMessageOptions) -> SentMessage:
        time.sleep(0.003)  # a network send takes time, so racing workers overlap in it
        sent = self.inner.send(message)
        write(
            self.out,
            kind="sent",
            worker=self.worker,
            at=time.monotonic_ns(),
            message=self.inner.sent[-1],
        )
        return sent


def write(out: TextIO, **line: Any) -> None:
    out.write(json.dumps(line) + "\n")
    out.flush()


def open_store(spec: str, prefix: str, lock_timeout: float) -> Store:
    if spec.startswith("sqlite:"):
        return SQLiteStore(spec.removeprefix("sqlite:"), lock_timeout=lock_timeout)
    return RedisStore.from_url(spec, prefix=prefix, lock_timeout=lock_timeout)


def race(flow: Flow, out: TextIO, args: argparse.Namespace) -> None:
    """Each conversation, in this worker's own order: try the quick reply, then a plain reply."""
    go = Path(args.go)
    write(out, kind="ready", worker=args.worker)
    deadline = time.monotonic() + 30
    while not go.exists():  # start together, so the workers really race
        if time.monotonic() > deadline:
            raise SystemExit("no go signal")
        time.sleep(0.005)
    # Half the workers go up the list and half down, each a little shuffled, so several
    # of them arrive at one conversation at the same moment.
    order = conversation_ids(args.conversations)
    if args.worker % 2:
        order.reverse()
    rng = random.Random(args.worker)
    for n in range(0, len(order) - 1, 2):
        if rng.random() < 0.5:
            order[n], order[n + 1] = order[n + 1], order[n]
    for conversation_id in order:
        conv = flow.conversation(conversation_id)
        try:
            conv.choose("Billing")
        except UnknownChoiceError:  # another worker answered the buttons first
            write(out, kind="refused", worker=args.worker, conversation=conversation_id)
        conv.send_message(f"from worker {args.worker}")


def hold(store: Store, out: TextIO, conversation_id: str) -> None:
    """Take the conversation's lock and never let go: the test SIGKILLs this process.

    ``at`` is when the lock was held, on the system-wide monotonic clock the test reads too.
    """
    with store.lock(conversation_id):
        write(out, kind="holding", conversation=conversation_id, at=time.monotonic_ns())
        time.sleep(60)


def steps(flow: Flow, conversation_id: str, actions: Sequence[str]) -> None:
    conv = flow.conversation(conversation_id)
    for action in actions:
        verb, _, text = action.partition(":")
        if verb == "start":
            conv.start_assistant(BUTTONS)
        elif verb == "reply":
            conv.send_message(text)
        elif verb == "choose":
            conv.choose(text)
        else:
            raise SystemExit(f"unknown action {action!r}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("store")
    parser.add_argument("out")
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--prefix", default="assistant_flow:")
    parser.add_argument("--lock-timeout", type=float, default=10.0)
    commands = parser.add_subparsers(dest="command", required=True)
    racing = commands.add_parser("race")
    racing.add_argument("--go", required=True)
    racing.add_argument("--conversations", type=int, default=50)
    holding = commands.add_parser("hold")
    holding.add_argument("conversation")
    stepping = commands.add_parser("steps")
    stepping.add_argument("conversation")
    stepping.add_argument("actions", nargs="+")
    args = parser.parse_args(argv)

    store = open_store(args.store, args.prefix, args.lock_timeout)
    with open(args.out, "a", encoding="utf-8") as out:
        flow = Flow(JsonLinesTransport(out, args.worker), store)
        if args.command == "race":
            race(flow, out, args)
        elif args.command == "hold":
            hold(store, out, args.conversation)
        else:
            steps(flow, args.conversation, args.actions)
    store.close()


if __name__ == "__main__":
    main()
