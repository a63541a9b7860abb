"""What one send costs, and whether it depends on how many conversations exist.

    python benchmarks/send_cost.py            (or: make bench)

Prints, from one process:

* the median time of ``flow.conversation(id).send_message(...)`` on MemoryStore +
  MemoryTransport with 10^3 and with 10^6 stored conversations, for a reply in a running
  assistant (the common case; the record does not change, so nothing is saved) and for a
  first reply (carries initAssistantPayload; the record is saved);
* each as a ratio to building the same wire payload by hand and ``json.dumps``-ing it, measured
  in the same process with batches interleaved, so machine noise hits both sides alike;
* the bytes held per idle stored conversation (tracemalloc over 10^5 conversations).

structlog is configured to drop info events (a WARNING threshold), as a high-volume backend
would; ``--log-info`` keeps them and renders JSON into memory, to show what logging adds.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import random
import secrets
import statistics
import time
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from assistant_flow import (
    ConversationRecord,
    Flow,
    InitAssistantResponse,
    MemoryStore,
    MemoryTransport,
)

BODY = "Thanks, that answers it."
CONVERSING = "in_assistant.conversing"
AWAITING = "in_assistant.awaiting_first_reply"

INIT_RESPONSE: dict[str, Any] = {
    "assistant": "asst_bench",
    "dialog": "dlg_bench",
    "node": "node_bench",
    "initialMessages": [
        {
            "meta": {
                "template": {
                    "templateType": "quick_replies",
                    "body": "How can I help?",
                    "actions": [
                        {"displayText": "Billing", "value": "billing", "valueType": "text"},
                        {"displayText": "Tech", "value": "tech", "valueType": "text"},
                    ],
                }
            },
            "direction": "out",
            "directionType": "initial-out",
            "importedAt": "2026-11-25T09:00:00.000Z",
            "trackingId": "trk_1",
            "lang": "en_us",
        }
    ],
    "attributes": {"publicName": "Bench"},
}
INIT_PAYLOAD = InitAssistantResponse.model_validate(INIT_RESPONSE).to_init_payload()
INIT_PAYLOAD_DICT = INIT_PAYLOAD.to_wire()


def conversation_id(n: int) -> str:
    return f"conv_{n:08d}"


def populate(store: MemoryStore, count: int, state: str) -> None:
    """Fill ``store`` with ``count`` conversations as the flow leaves them in ``state``."""
    payload = INIT_PAYLOAD if state == AWAITING else None
    for n in range(count):
        # Each conversation's own run name, as start_assistant makes one per conversation.
        run = secrets.token_hex(8)
        record = ConversationRecord(conversation_id(n), state, 2, init_payload=payload, run=run)
        store.save(record, expected_version=0)


def check_population_matches_the_flow() -> None:
    """The records `populate` writes are exactly what the flow itself produces."""
    flow = Flow(MemoryTransport(), MemoryStore())
    conv = flow.conversation(conversation_id(0))
    conv.start_assistant(INIT_RESPONSE)
    conv.choose("Billing")  # answering the greeting's buttons leaves none on offer
    made = conv.snapshot()
    assert made.run is not None, "drifted"
    assert len(made.run) == len(secrets.token_hex(8)), "drifted"
    assert made == ConversationRecord(conversation_id(0), CONVERSING, 2, run=made.run), "drifted"


def by_hand_reply(cid: str) -> str:
    return json.dumps({"conversationId": cid, "body": BODY, "isInAssistantMode": True})


def by_hand_first_reply(cid: str) -> str:
    return json.dumps(
        {
            "conversationId": cid,
            "body": BODY,
            "isInAssistantMode": True,
            "initAssistantPayload": INIT_PAYLOAD_DICT,
        }
    )


def batch_seconds(call: Callable[[str], object], ids: Sequence[str]) -> float:
    """Seconds per call over one batch."""
    start = time.perf_counter()
    for cid in ids:
        call(cid)
    return (time.perf_counter() - start) / len(ids)


def measure(
    contenders: dict[str, Callable[[str], object]],
    ids_for: dict[str, Callable[[], Sequence[str]]],
    repeats: int,
    after_batch: Callable[[], None],
) -> dict[str, float]:
    """Median seconds per call of each contender, batches interleaved round-robin."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, call in contenders.items():
            ids = ids_for[name]()
            samples[name].append(batch_seconds(call, ids))
            after_batch()
    return {name: statistics.median(values) for name, values in samples.items()}


def bytes_per_idle_conversation(count: int) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    store = MemoryStore()
    populate(store, count, CONVERSING)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    held = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert len(store) == count
    return held / count


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1_000, help="conversations in the small store")
    parser.add_argument("--large", type=int, default=1_000_000, help="... in the large store")
    parser.add_argument("--batch", type=int, default=1_000, help="sends per timed batch")
    parser.add_argument("--repeats", type=int, default=41, help="timed batches per contender")
    parser.add_argument("--memory-sample", type=int, default=100_000)
    parser.add_argument("--log-info", action="store_true", help="render info events as JSON")
    args = parser.parse_args(argv)

    if args.log_info:
        structlog.configure(
            processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            logger_factory=structlog.ReturnLoggerFactory(),
            cache_logger_on_first_use=True,
        )
    else:
        structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
            cache_logger_on_first_use=True,
        )
    check_population_matches_the_flow()

    rng = random.Random(7)
    flows: dict[str, Flow] = {}
    transports: list[MemoryTransport] = []
    sizes = {"small": args.small, "large": args.large}
    for label, size in sizes.items():
        store = MemoryStore()
        populate(store, size, CONVERSING)
        transport = MemoryTransport()
        transports.append(transport)
        flows[label] = Flow(transport, store)

    def sample(size: int) -> Callable[[], list[str]]:
        return lambda: [conversation_id(rng.randrange(size)) for _ in range(args.batch)]

    def clear() -> None:
        for transport in transports:
            transport.sent.clear()

    def reply_on(flow: Flow) -> Callable[[str], object]:
        return lambda cid: flow.conversation(cid).send_message(BODY)

    reply = measure(
        {
            "by hand": by_hand_reply,
            "small": reply_on(flows["small"]),
            "large": reply_on(flows["large"]),
        },
        {"by hand": sample(args.small), "small": sample(args.small), "large": sample(args.large)},
        args.repeats,
        clear,
    )

    # First replies consume the pending payload, so each batch gets fresh conversations.
    first_store = MemoryStore()
    fresh = iter(range(10**9))
    first_flow = Flow(MemoryTransport(), first_store)
    transports.append(first_flow.transport)  # type: ignore[arg-type]

    def fresh_awaiting() -> list[str]:
        ids = [f"first_{next(fresh):09d}" for _ in range(args.batch)]
        for cid in ids:
            record = ConversationRecord(cid, AWAITING, 1, init_payload=INIT_PAYLOAD)
            first_store.save(record, expected_version=0)
        return ids

    first = measure(
        {"by hand": by_hand_first_reply, "flow": reply_on(first_flow)},
        {"by hand": sample(args.small), "flow": fresh_awaiting},
        args.repeats,
        clear,
    )
    assert all("initAssistantPayload" in sent for sent in first_flow.transport.sent[-1:])  # type: ignore[attr-defined]

    per_conversation = bytes_per_idle_conversation(args.memory_sample)

    results = {
        "reply_small_us": reply["small"] * 1e6,
        "reply_large_us": reply["large"] * 1e6,
        "reply_by_hand_us": reply["by hand"] * 1e6,
        "reply_ratio": reply["small"] / reply["by hand"],
        "large_over_small": reply["large"] / reply["small"],
        "first_reply_us": first["flow"] * 1e6,
        "first_by_hand_us": first["by hand"] * 1e6,
        "first_reply_ratio": first["flow"] / first["by hand"],
        "bytes_per_idle_conversation": per_conversation,
    }
    logging_note = "info events rendered as JSON" if args.log_info else "info events filtered"
    print(
        f"send cost, MemoryStore + MemoryTransport ({logging_note}; medians of "
        f"{args.repeats} batches of {args.batch})"
    )
    print(f"{'':44} {'median':>10} {'ratio':>8}")
    rows = [
        ("reply by hand (dict + json.dumps)", reply["by hand"], 1.0),
        (f"reply, {args.small:,} conversations stored", reply["small"], results["reply_ratio"]),
        (
            f"reply, {args.large:,} conversations stored",
            reply["large"],
            reply["large"] / reply["by hand"],
        ),
        ("first reply by hand (with initAssistantPayload)", first["by hand"], 1.0),
        (
            "first reply through the flow (record saved)",
            first["flow"],
            results["first_reply_ratio"],
        ),
    ]
    for name, seconds, ratio in rows:
        print(f"{name:44} {seconds * 1e6:8.2f} us {ratio:7.2f}x")
    print(f"{args.large:,} stored / {args.small:,} stored: {results['large_over_small']:.2f}x")
    print(
        f"bytes held per idle stored conversation: {per_conversation:.0f} "
        f"(tracemalloc, {args.memory_sample:,} conversations)"
    )
    return results


if __name__ == "__main__":
    main()
