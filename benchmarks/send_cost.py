"""What one send costs, and whether it depends on how many conversations exist.

    python benchmarks/send_cost.py            (or: make bench)

Prints, from one process, for a reply in a running assistant, a first reply (it carries
initAssistantPayload) and a choose (a quick reply: body and payload):

* the median time of ``flow.conversation(id).<call>(...)`` on MemoryStore + MemoryTransport,
  the reply with 10^3 and with 10^6 stored conversations;
* each as a ratio to building the same wire payload by hand and ``json.dumps``-ing it,
  measured in the same rounds (batches interleaved), so machine noise hits both sides alike;
* all of it under three logging set-ups, their batches interleaved too: ``default`` (structlog
  left unconfigured, as a user gets it: the events go to the silent stdlib logger),
  ``info dropped`` (structlog configured with a WARNING threshold) and ``JSON at info``
  (structlog rendering every info event as JSON, into memory);
* the bytes held per idle stored conversation (tracemalloc over 10^5 conversations).

Every reply now saves the record (each message has its own stable idempotency key), so
the record, the outbox check and the inbound window are all on the measured path.
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
    Choice,
    ConversationRecord,
    Flow,
    InitAssistantResponse,
    MemoryStore,
    MemoryTransport,
)
from assistant_flow._logging import LibraryLogger

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


SETUPS = ("default", "info dropped", "JSON at info")


def use_logging(setup: str) -> None:
    """Switch structlog to one of the measured set-ups.

    The configured set-ups cache their loggers on first use, as structlog recommends for
    production; each set-up's flows get a logger of their own (:class:`LibraryLogger`), so
    each caches the configuration it was first used under.
    """
    structlog.reset_defaults()
    if setup == "info dropped":
        structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
            cache_logger_on_first_use=True,
        )
    elif setup == "JSON at info":
        structlog.configure(
            processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            logger_factory=structlog.ReturnLoggerFactory(),
            cache_logger_on_first_use=True,
        )


def by_hand_choose(cid: str) -> str:
    return json.dumps(
        {"conversationId": cid, "body": "Billing", "payload": "billing", "isInAssistantMode": True}
    )


CHOICES = (Choice("Billing", "billing"), Choice("Tech", "tech"))


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1_000, help="conversations in the small store")
    parser.add_argument("--large", type=int, default=1_000_000, help="... in the large store")
    parser.add_argument("--batch", type=int, default=1_000, help="sends per timed batch")
    parser.add_argument("--repeats", type=int, default=31, help="timed rounds")
    parser.add_argument("--memory-sample", type=int, default=100_000)
    args = parser.parse_args(argv)

    check_population_matches_the_flow()
    rng = random.Random(7)
    transports: list[MemoryTransport] = []
    stores = {"small": MemoryStore(), "large": MemoryStore()}
    populate(stores["small"], args.small, CONVERSING)
    populate(stores["large"], args.large, CONVERSING)
    # First replies and chooses consume what they answer, so each batch gets fresh ones.
    stores["fresh"] = fresh_store = MemoryStore()
    fresh = iter(range(10**9))
    # One flow per set-up and store, all sharing the stores (see use_logging).
    flows: dict[tuple[str, str], Flow] = {}
    for setup in SETUPS:
        logger = LibraryLogger()
        for label, store in stores.items():
            transport = MemoryTransport()
            transports.append(transport)
            flows[(setup, label)] = Flow(transport, store, logger=logger)

    def fresh_records(machine_state: str, version: int, **parts: Any) -> list[str]:  # noqa: ANN401
        ids = [f"fresh_{next(fresh):09d}" for _ in range(args.batch)]
        for cid in ids:
            record = ConversationRecord(
                cid, machine_state, version, run=secrets.token_hex(8), **parts
            )
            fresh_store.save(record, expected_version=0)
        return ids

    def sample(size: int) -> list[str]:
        return [conversation_id(rng.randrange(size)) for _ in range(args.batch)]

    def contenders(
        setup: str,
    ) -> dict[str, tuple[Callable[[str], object], Callable[[], list[str]]]]:
        small, large, first = (flows[(setup, label)] for label in ("small", "large", "fresh"))
        return {
            "reply by hand": (by_hand_reply, lambda: sample(args.small)),
            "reply small": (
                lambda cid: small.conversation(cid).send_message(BODY),
                lambda: sample(args.small),
            ),
            "reply large": (
                lambda cid: large.conversation(cid).send_message(BODY),
                lambda: sample(args.large),
            ),
            "first by hand": (by_hand_first_reply, lambda: sample(args.small)),
            "first": (
                lambda cid: first.conversation(cid).send_message(BODY),
                lambda: fresh_records(AWAITING, 1, init_payload=INIT_PAYLOAD),
            ),
            "choose by hand": (by_hand_choose, lambda: sample(args.small)),
            "choose": (
                lambda cid: first.conversation(cid).choose("Billing"),
                lambda: fresh_records(CONVERSING, 2, choices=CHOICES),
            ),
        }

    names = list(contenders(SETUPS[0]))
    samples: dict[tuple[str, str], list[float]] = {
        (setup, name): [] for setup in SETUPS for name in names
    }
    for _ in range(args.repeats):
        for setup in SETUPS:
            use_logging(setup)
            for name, (call, ids_for) in contenders(setup).items():
                ids = ids_for()
                samples[(setup, name)].append(batch_seconds(call, ids))
                for transport in transports:
                    transport.sent.clear()
    structlog.reset_defaults()
    for transport in transports:
        assert not transport.sent
    median = {key: statistics.median(values) for key, values in samples.items()}

    per_conversation = bytes_per_idle_conversation(args.memory_sample)
    results: dict[str, float] = {"bytes_per_idle_conversation": per_conversation}
    print(
        f"send cost, MemoryStore + MemoryTransport (medians of {args.repeats} interleaved "
        f"rounds of {args.batch} sends each)"
    )
    rows = [
        ("reply by hand (dict + json.dumps)", "reply by hand", "reply by hand"),
        (f"reply, {args.small:,} conversations stored", "reply small", "reply by hand"),
        (f"reply, {args.large:,} conversations stored", "reply large", "reply by hand"),
        ("first reply by hand (with initAssistantPayload)", "first by hand", "first by hand"),
        ("first reply through the flow", "first", "first by hand"),
        ("choose by hand (body + payload)", "choose by hand", "choose by hand"),
        ("choose through the flow", "choose", "choose by hand"),
    ]
    for setup in SETUPS:
        print(f"\nlogging: {setup}")
        print(f"{'':48} {'median':>10} {'ratio':>8}")
        for label, name, floor in rows:
            seconds = median[(setup, name)]
            ratio = seconds / median[(setup, floor)]
            results[f"{setup}: {name}"] = ratio
            print(f"{label:48} {seconds * 1e6:8.2f} us {ratio:7.2f}x")
        scale = median[(setup, "reply large")] / median[(setup, "reply small")]
        results[f"{setup}: large over small"] = scale
        print(f"{args.large:,} stored / {args.small:,} stored: {scale:.2f}x")
    print(
        f"\nbytes held per idle stored conversation: {per_conversation:.0f} "
        f"(tracemalloc, {args.memory_sample:,} conversations)"
    )
    return results


if __name__ == "__main__":
    main()
