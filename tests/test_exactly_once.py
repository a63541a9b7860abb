"""Exactly once over a lossy network: the outbox of ARCHITECTURE.md, tested end to end (issue 8).

The server is the tests' own (tests/lossy_server.py, not the library's stub): it honours
``Idempotency-Key``, logs every message it processes, and loses requests and answers on
purpose. The soak runs worker processes (tests/soak_worker.py, sync and async) that share
conversations through one SQLite file or one real redis-server and hand them to each other,
then flushes every conversation and checks the server's log against what the workers
intended: the first reply once and first, each ``lastDeflection`` once and on the first reply
after its deflection, every intended message exactly once and in order, none wedged.

The focused tests below it take one lost answer at a time, over ``Flow`` and ``AsyncFlow``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from lossy_server import (
    API_KEY,
    ASSISTANT_ROUTE,
    MESSAGES_ROUTE,
    RANDOM_KINDS,
    Faults,
    Kind,
    LossyServer,
    Stats,
)
from payloads import greeting, init_response, quick_replies
from redis_server import RedisServer
from soak_worker import ARTICLES, assistant_message, conversation_ids, script
from structlog.testing import capture_logs

from assistant_flow import (
    AsyncFlow,
    AsyncHTTPTransport,
    AsyncSQLiteStore,
    Flow,
    HTTPTransport,
    KustomerAPIError,
    RedisStore,
    Retry,
    SQLiteStore,
    Store,
    TransportError,
    UnknownArticleError,
    UnknownChoiceError,
)

WORKER = Path(__file__).parent / "soak_worker.py"
WORKERS = 4  # sync, async, sync, async; the first two try each request once, the others twice
# EXACTLY_ONCE_SEED and EXACTLY_ONCE_CONVERSATIONS vary the soak (say, in a loop of seeds).
CONVERSATIONS = int(os.environ.get("EXACTLY_ONCE_CONVERSATIONS", "40"))
SOAK_FAULTS = Faults(
    drop_before=0.05,
    fail_503=0.04,
    fail_429=0.03,
    drop_after=0.08,
    truncate_after=0.05,
    slow_after=0.05,
    slow_seconds=0.8,
    seed=int(os.environ.get("EXACTLY_ONCE_SEED", "8")),
)
CLIENT_TIMEOUT = 0.5  # per request, under slow_seconds: a slow answer is a lost one
BUTTONS = init_response(
    greeting(quick_replies("Pick one", ("Billing", "billing"), ("Tech", "tech")))
)


# --- the soak ---------------------------------------------------------------------------------


@dataclass
class Shared:
    """How the test and its worker processes reach the same store."""

    spec: str
    prefix: str

    def open(self) -> Store:
        if self.spec.startswith("sqlite:"):
            return SQLiteStore(self.spec.removeprefix("sqlite:"))
        return RedisStore.from_url(self.spec, prefix=self.prefix)


@pytest.fixture(params=["sqlite", "redis"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Shared:
    prefix = f"soak:{uuid.uuid4().hex}:"
    if request.param == "sqlite":
        return Shared(f"sqlite:{tmp_path / 'soak.db'}", prefix)
    server: RedisServer = request.getfixturevalue("redis_server")
    return Shared(server.url, prefix)


def start_worker(
    shared: Shared, server: LossyServer, root: Path, number: int, soak: Soak
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            str(WORKER),
            shared.spec,
            server.url,
            str(root),
            "--worker", str(number),
            "--workers", str(soak.workers),
            "--conversations", str(soak.conversations),
            "--mode", "sync" if number % 2 == 0 else "async",
            "--attempts", "1" if number < 2 else "2",
            "--timeout", str(CLIENT_TIMEOUT),
            "--seed", str(soak.faults.seed),
            "--prefix", shared.prefix,
            *soak.worker_args,
        ],
        stdout=subprocess.DEVNULL,  # structlog's default configuration prints there
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def expected_problems(
    baton: dict[str, Any], processed: list[dict[str, Any]], final: dict[str, Any]
) -> tuple[list[str], int, int]:
    """What is wrong with one conversation; also (duplicates, lost)."""
    conv = baton["conv"]
    problems: list[str] = []
    timeline = baton["timeline"]
    intended = [entry for entry in timeline if entry["kind"] == "message"]
    want = [(entry["body"], entry["payload"]) for entry in intended]
    got = [(entry["body"].get("body"), entry["body"].get("payload")) for entry in processed]
    counts = Counter(got)
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    lost = sum(1 for message in want if message not in counts)
    if got != want:
        problems.append(f"{conv}: processed {got}, intended {want}")
    for skipped in baton["skipped"]:
        if (skipped["body"], skipped["payload"]) in counts:
            problems.append(f"{conv}: skipped message {skipped} was processed")
    if baton["step"] != len(script(conv, baton["index"])):
        problems.append(f"{conv}: the dialog stopped at step {baton['step']}")

    # initAssistantPayload: once, on the first message processed
    firsts = [n for n, entry in enumerate(processed) if "initAssistantPayload" in entry["body"]]
    if firsts != [0]:
        problems.append(f"{conv}: initAssistantPayload on messages {firsts}, want [0]")

    # lastDeflection, isInAssistantMode and route, walking the timeline in step with the log
    pending: list[dict[str, Any]] | None = None
    in_assistant = True
    position = 0
    for entry in timeline:
        if entry["kind"] == "deflection":
            pending = [{"id": article, "visited": 0} for article in entry["articles"]]
        elif entry["kind"] == "visit":
            assert pending is not None
            for article in pending:
                if article["id"] == entry["article"]:
                    article["visited"] += 1
        elif entry["kind"] == "end":
            in_assistant, pending = False, None
        else:
            if position >= len(processed):
                break
            server_entry = processed[position]
            position += 1
            body = server_entry["body"]
            label = f"{conv} message {entry['body']!r}"
            sent_deflection = body.get("lastDeflection")
            if pending is None:
                if sent_deflection is not None:
                    problems.append(f"{label}: lastDeflection {sent_deflection}, want none")
            else:
                shape = [
                    {"id": article["id"], "visited": article.get("visited", 0)}
                    for article in (sent_deflection or {}).get("articles", [])
                ]
                if shape != pending:
                    problems.append(f"{label}: lastDeflection {shape}, want {pending}")
            pending = None  # a reply answers the deflection
            if body.get("isInAssistantMode") is not in_assistant:
                problems.append(f"{label}: isInAssistantMode {body.get('isInAssistantMode')}")
            route = ASSISTANT_ROUTE if in_assistant else MESSAGES_ROUTE
            if server_entry["route"] != route:
                problems.append(f"{label}: went to {server_entry['route']}, want {route}")
            if entry["answered"] and entry["message_id"] != server_entry["messageId"]:
                problems.append(
                    f"{label}: answered with {entry['message_id']}, the server stored "
                    f"{server_entry['messageId']}"
                )
            if entry["key"] is not None and entry["key"] != server_entry["key"]:
                problems.append(f"{label}: kept with key {entry['key']}, delivered with another")

    # the record at the end
    if final["outbox"]:
        problems.append(f"{conv}: wedged, outbox {final['outbox']} after the final flushes")
    if (final["state"], final["choices"], final["articles"]) != ("ended", 0, 0):
        problems.append(f"{conv}: final record {final}")
    return problems, duplicates, lost


@dataclass(frozen=True)
class Soak:
    """One soak's size and faults."""

    conversations: int = CONVERSATIONS
    workers: int = WORKERS
    faults: Faults = SOAK_FAULTS
    worker_args: tuple[str, ...] = ()


@dataclass
class SoakResult:
    summary: str
    problems: list[str]
    unexpected: list[dict[str, Any]]
    stats: Stats
    counts: Counter[str]
    duplicates: int
    lost: int
    wedged: int
    hops: int


def run_soak(shared: Shared, tmp_path: Path, soak: Soak) -> SoakResult:
    """Run the workers to the end of every dialog, flush what they left kept, check the log."""
    started = time.monotonic()
    root = tmp_path / "soak"
    with LossyServer(soak.faults) as server:
        workers = [start_worker(shared, server, root, n, soak) for n in range(soak.workers)]
        failures = []
        for process in workers:
            try:
                _, stderr = process.communicate(timeout=90)
            except subprocess.TimeoutExpired:
                process.kill()
                _, stderr = process.communicate()
            if process.returncode != 0:
                failures.append(stderr)
        assert not failures, "\n".join(failures)
        soak_seconds = time.monotonic() - started

        # Deliver what the workers left kept, from this process, faults still on.
        store = shared.open()
        client = httpx.Client(timeout=CLIENT_TIMEOUT)
        transport = HTTPTransport(server.url, API_KEY, retry=Retry(attempts=1), client=client)
        flow = Flow(transport, store)
        flush_calls = flush_failures = left_kept = 0
        finals: dict[str, dict[str, Any]] = {}
        for conversation_id in conversation_ids(soak.conversations):
            conv = flow.conversation(conversation_id)
            left_kept += len(conv.snapshot().outbox)
            for _ in range(20):
                if not conv.snapshot().outbox:
                    break
                flush_calls += 1
                try:
                    delivered = conv.flush()
                except TransportError:
                    flush_failures += 1
                    continue
                if not delivered:  # nothing confirmed, yet something was kept
                    flush_failures += 1
            record = conv.snapshot()
            finals[conversation_id] = {
                "state": record.machine_state,
                "choices": len(record.choices),
                "articles": len(record.articles),
                "outbox": [kept.message.to_wire() for kept in record.outbox],
            }
        client.close()
        store.close()
        log = server.log()
        stats = server.stats

    batons = {
        path.stem: json.loads(path.read_text()) for path in sorted((root / "done").glob("*.json"))
    }
    worker_stats = [json.loads(path.read_text()) for path in sorted((root / "stats").glob("*"))]
    counts: Counter[str] = Counter()
    for worker in worker_stats:
        counts.update(worker["counts"])
    unexpected = [item for worker in worker_stats for item in worker["unexpected"]]
    assert sorted(batons) == conversation_ids(soak.conversations)

    problems: list[str] = []
    duplicates = lost = 0
    for conversation_id, baton in batons.items():
        found, dups, missing = expected_problems(
            baton, log.get(conversation_id, []), finals[conversation_id]
        )
        problems += found
        duplicates += dups
        lost += missing
    hops = sum(baton["hops"] for baton in batons.values())
    wedged = sum(1 for final in finals.values() if final["outbox"])
    summary = (
        f"exactly-once soak [{shared.spec.split(':')[0]}, seed {soak.faults.seed}]: "
        f"{soak.conversations} conversations, "
        f"{soak.workers} worker processes, {soak_seconds:.1f}s; server: {stats.requests} "
        f"requests, {stats.faulted} faulted "
        f"({100 * stats.faulted / max(stats.requests, 1):.0f}%: "
        + ", ".join(f"{kind} {n}" for kind, n in sorted(stats.faults.items()))
        + f"; on first replies {stats.faults_by_class['first']}, deflection replies "
        f"{stats.faults_by_class['deflection']}, plain {stats.faults_by_class['plain']}), "
        f"{stats.lost_answers} lost answers ({stats.lost_new_answers} of first processings), "
        f"{stats.replayed} replayed by key, {stats.conflicts} conflicts, {stats.processed} "
        f"processed; workers: {counts['calls']} calls, {counts['kept']} kept by the flow, "
        f"{counts['not_kept']} not sent (an older kept one undelivered), "
        f"{counts['resends']} resends, {counts['move_ons']} move-ons, {hops} hand-overs, "
        f"{counts['skipped']} skipped; kept ones delivered by the next call: "
        + ", ".join(
            f"{verb} {counts[f'kept_delivered_by:{verb}']}"
            for verb in ("send", "choose", "receive", "visit", "end")
        )
        + f"; final flush: {left_kept} kept left, {flush_calls} "
        f"flushes ({flush_failures} failed); duplicates {duplicates}, lost {lost}, "
        f"wedged {wedged}, unexpected errors {len(unexpected)}"
    )
    print(summary)
    return SoakResult(summary, problems, unexpected, stats, counts, duplicates, lost, wedged, hops)


def test_soak_every_message_exactly_once_over_a_lossy_server(
    shared: Shared, tmp_path: Path
) -> None:
    result = run_soak(shared, tmp_path, Soak())
    stats, summary = result.stats, result.summary
    (tmp_path / "summary.txt").write_text(summary + "\n")

    assert not result.unexpected, json.dumps(result.unexpected, indent=1)
    assert not result.problems, "\n".join(result.problems[:40])
    assert (result.duplicates, result.lost, result.wedged) == (0, 0, 0)
    assert (stats.missing_key, stats.conflicts) == (0, 0)
    # The soak did what it is for: enough faults, of every kind, on every kind of message;
    # answers lost after processing; the outbox used; conversations moving between processes.
    assert stats.faulted >= 0.2 * stats.requests, summary
    assert all(stats.faults[kind] > 0 for kind in RANDOM_KINDS), summary
    assert all(stats.faults_by_class[k] > 0 for k in ("first", "deflection", "plain")), summary
    assert min(stats.lost_new_answers, result.counts["kept"], result.hops) > 0, summary


def test_the_soak_finds_duplicates_when_resends_get_new_keys(tmp_path: Path) -> None:
    """The checker's own check: with a random key per send, lost answers become duplicates."""
    shared = Shared(f"sqlite:{tmp_path / 'control.db'}", "control:")
    soak = Soak(conversations=8, workers=2, worker_args=("--random-keys",))
    result = run_soak(shared, tmp_path, soak)
    assert result.stats.lost_new_answers > 0, result.summary
    assert result.duplicates > 0, result.summary
    assert any("processed" in problem for problem in result.problems)


# --- focused tests, one lost answer at a time, sync and async ---------------------------------


class SyncView:
    """A blocking handle seen through the async handle's interface."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._handle, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **kwargs)

        return call


@dataclass
class Driver:
    """A flow on the lossy server and a SQLite file, driven with ``await`` in both modes."""

    mode: str
    server: LossyServer
    path: Path
    flow: Flow | AsyncFlow

    def conversation(self, conversation_id: str = "conv_1") -> Any:
        if isinstance(self.flow, Flow):
            return SyncView(self.flow.conversation(conversation_id))
        return self.flow.conversation(conversation_id)

    def other_process(self) -> Flow:
        """Another flow on the same file, as another worker process would have."""
        transport = HTTPTransport(
            self.server.url, API_KEY, retry=Retry(attempts=1), timeout=FOCUSED_TIMEOUT
        )
        return Flow(transport, SQLiteStore(self.path))

    def bodies(self, conversation_id: str = "conv_1") -> list[dict[str, Any]]:
        return self.server.messages(conversation_id)


FOCUSED_TIMEOUT = 0.4


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    """The flows in this process log nothing to the terminal (the tests read the server)."""
    with capture_logs():
        yield


@pytest.fixture
def server() -> Iterator[LossyServer]:
    with LossyServer(Faults(slow_seconds=0.8)) as lossy:
        yield lossy


@pytest.fixture(params=["sync", "async"])
async def driver(
    request: pytest.FixtureRequest, server: LossyServer, tmp_path: Path
) -> AsyncIterator[Driver]:
    path = tmp_path / "focused.db"
    retry = Retry(attempts=1)  # every fault reaches the flow
    if request.param == "sync":
        client = httpx.Client(timeout=FOCUSED_TIMEOUT)
        store = SQLiteStore(path)
        flow = Flow(HTTPTransport(server.url, API_KEY, retry=retry, client=client), store)
        yield Driver("sync", server, path, flow)
        client.close()
        store.close()
    else:
        async_client = httpx.AsyncClient(timeout=FOCUSED_TIMEOUT)
        async_store = AsyncSQLiteStore(path)
        transport = AsyncHTTPTransport(server.url, API_KEY, retry=retry, client=async_client)
        yield Driver("async", server, path, AsyncFlow(transport, async_store))
        await async_client.aclose()
        await async_store.aclose()


async def conversing(driver: Driver) -> Any:
    """A conversation past its first reply ("hi")."""
    conv = driver.conversation()
    await conv.start_assistant(BUTTONS)
    await conv.send_message("hi")
    return conv


LOSSES: list[Kind] = [
    "drop_after",
    "truncate_after",
    "slow_after",
    "drop_before",
    "fail_503",
    "fail_429",
]


@pytest.mark.parametrize("first", ["send", "choose"])
async def test_lost_answer_to_the_first_reply_then_a_different_message(
    driver: Driver, first: str
) -> None:
    conv = driver.conversation()
    await conv.start_assistant(BUTTONS)
    driver.server.plan("drop_after", "first")
    first_reply = conv.send_message("hello") if first == "send" else conv.choose("Billing")
    with pytest.raises(TransportError) as caught:
        await first_reply
    assert caught.value.kept is True
    record = await conv.snapshot()
    assert record.machine_state == "in_assistant.awaiting_first_reply"  # unmoved
    [kept] = record.outbox
    assert kept.message.init_assistant_payload is not None
    assert kept.idempotency_key == driver.server.log()["conv_1"][0]["key"]

    await conv.send_message("something else")

    bodies = driver.bodies()
    assert [b["body"] for b in bodies] == [
        "hello" if first == "send" else "Billing",
        "something else",
    ]
    assert ["initAssistantPayload" in b for b in bodies] == [True, False]
    assert driver.server.stats.replayed == 1  # the kept one again, answered from the key
    record = await conv.snapshot()
    assert (record.machine_state, record.outbox) == ("in_assistant.conversing", ())
    if first == "choose":
        assert bodies[0]["payload"] == "billing"
        assert record.choices == ()  # the kept choice answered its question
        with pytest.raises(UnknownChoiceError):
            await conv.choose("Billing")


async def test_lost_answer_to_a_deflection_reply_then_visit_and_next_message(
    driver: Driver,
) -> None:
    conv = await conversing(driver)
    await conv.receive(assistant_message("conv_1", 1, list(ARTICLES)))
    await conv.visit_article("art_2")
    driver.server.plan("drop_after", "deflection")
    with pytest.raises(TransportError) as caught:
        await conv.send_message("thanks")
    assert caught.value.kept is True
    assert len((await conv.snapshot()).articles) == 2  # the deflection still pending

    # The visit delivers the kept reply first, which answers the deflection: then the article
    # is no longer on offer. The delivery stays done all the same.
    with pytest.raises(UnknownArticleError):
        await conv.visit_article("art_1")
    record = await conv.snapshot()
    assert (record.outbox, record.articles) == ((), ())
    await conv.send_message("next")

    bodies = driver.bodies()
    assert [b["body"] for b in bodies] == ["hi", "thanks", "next"]
    assert [b.get("lastDeflection") is not None for b in bodies] == [False, True, False]
    visits = {a["id"]: a.get("visited", 0) for a in bodies[1]["lastDeflection"]["articles"]}
    assert visits == {"art_1": 0, "art_2": 1}


@pytest.mark.parametrize("loss", LOSSES)
async def test_lost_plain_reply_then_resend(driver: Driver, loss: Kind) -> None:
    conv = await conversing(driver)
    driver.server.plan(loss, "plain")
    with pytest.raises(TransportError) as caught:
        await conv.send_message("are you there?")
    assert caught.value.kept is True
    assert len((await conv.snapshot()).outbox) == 1

    sent = await conv.send_message("are you there?")  # the same call again: the kept one

    log = driver.server.log()["conv_1"]
    assert [entry["body"]["body"] for entry in log] == ["hi", "are you there?"]
    assert sent.message_id == log[1]["messageId"]
    assert (await conv.snapshot()).outbox == ()
    lost_after_processing = loss in ("drop_after", "truncate_after", "slow_after")
    assert driver.server.stats.replayed == (1 if lost_after_processing else 0)


async def test_a_resend_whose_answer_is_lost_again_stays_kept_once(driver: Driver) -> None:
    conv = await conversing(driver)
    driver.server.plan("drop_after", "plain", times=2)
    for _ in range(2):
        with pytest.raises(TransportError) as caught:
            await conv.send_message("again?")
        assert caught.value.kept is True
        assert len((await conv.snapshot()).outbox) == 1
    await conv.send_message("again?")
    assert [b["body"] for b in driver.bodies()] == ["hi", "again?"]
    assert (await conv.snapshot()).outbox == ()


@pytest.mark.parametrize("loss", LOSSES)
async def test_lost_plain_reply_then_move_on(driver: Driver, loss: Kind) -> None:
    conv = await conversing(driver)
    driver.server.plan(loss, "plain")
    with pytest.raises(TransportError) as caught:
        await conv.send_message("first thought")
    assert caught.value.kept is True

    await conv.send_message("second thought")

    assert [b["body"] for b in driver.bodies()] == ["hi", "first thought", "second thought"]
    assert (await conv.snapshot()).outbox == ()


async def test_flush_delivers_the_kept_message_and_nothing_else(driver: Driver) -> None:
    conv = await conversing(driver)
    driver.server.plan("slow_after", "plain")
    with pytest.raises(TransportError):
        await conv.send_message("bye")
    [kept] = (await conv.snapshot()).outbox
    assert kept.message.body == "bye"

    delivered = await conv.flush()

    assert [sent.message_id for sent in delivered] == [
        driver.server.log()["conv_1"][1]["messageId"]
    ]
    assert [b["body"] for b in driver.bodies()] == ["hi", "bye"]
    assert (await conv.snapshot()).outbox == ()
    requests = driver.server.stats.requests
    assert await conv.flush() == []  # nothing kept: no request
    assert driver.server.stats.requests == requests


async def test_a_flush_whose_delivery_fails_raises_and_keeps_the_message(driver: Driver) -> None:
    conv = await conversing(driver)
    driver.server.plan("drop_after", "plain")
    with pytest.raises(TransportError):
        await conv.send_message("still there?")
    driver.server.plan("drop_before", "plain")  # the flush's delivery is lost too
    with pytest.raises(TransportError) as caught:
        await conv.flush()
    assert caught.value.kept is True
    assert len((await conv.snapshot()).outbox) == 1


async def test_an_async_send_cancelled_in_flight_is_delivered_once(
    server: LossyServer, tmp_path: Path
) -> None:
    store = AsyncSQLiteStore(tmp_path / "cancel.db")
    transport = AsyncHTTPTransport(server.url, API_KEY, retry=Retry(attempts=1), timeout=5.0)
    conv = AsyncFlow(transport, store).conversation("conv_1")
    try:
        await conv.start_assistant(BUTTONS)
        server.plan("slow_after", "first")  # processed, then the answer takes 0.8 s
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(conv.send_message("hello"), 0.3)
        await conv.send_message("something else")
        bodies = server.messages("conv_1")
        assert [b["body"] for b in bodies] == ["hello", "something else"]
        assert ["initAssistantPayload" in b for b in bodies] == [True, False]
    finally:
        await transport.aclose()
        await store.aclose()


async def test_a_definite_refusal_keeps_nothing(driver: Driver) -> None:
    conv = driver.conversation()
    await conv.start_assistant(BUTTONS)
    before = await conv.snapshot()
    driver.server.plan("refuse_400", "first")
    with pytest.raises(KustomerAPIError) as caught:
        await conv.send_message("hello")
    assert (caught.value.status_code, caught.value.kept) == (400, False)
    assert await conv.snapshot() == before  # nothing kept, nothing moved

    await conv.send_message("hello again")
    bodies = driver.bodies()
    assert [b["body"] for b in bodies] == ["hello again"]
    assert "initAssistantPayload" in bodies[0]  # still owed, so on this one


async def test_a_kept_message_is_delivered_by_another_process_next_step(driver: Driver) -> None:
    conv = await conversing(driver)
    driver.server.plan("truncate_after", "plain")
    with pytest.raises(TransportError):
        await conv.send_message("lost in transit")

    other = driver.other_process()  # another worker on the same file takes the next event
    other.conversation("conv_1").receive(
        assistant_message("conv_1", 1, [], quick_replies("Sure?", ("Yes", "yes")))
    )
    other.conversation("conv_1").choose("Yes")
    other.store.close()
    other.transport.close()

    assert [(b["body"], b.get("payload")) for b in driver.bodies()] == [
        ("hi", None),
        ("lost in transit", None),
        ("Yes", "yes"),
    ]
    assert (await conv.snapshot()).outbox == ()


def test_the_lossy_server_honours_idempotency_keys() -> None:
    with LossyServer() as lossy, httpx.Client(base_url=lossy.url) as client:
        auth = {"Authorization": f"Bearer {API_KEY}"}
        body = {"conversationId": "c", "body": "x", "isInAssistantMode": True}

        def post(key: str | None, json_body: dict[str, Any]) -> httpx.Response:
            headers = dict(auth) if key is None else {**auth, "Idempotency-Key": key}
            return client.post(ASSISTANT_ROUTE, json=json_body, headers=headers)

        first, again = post("k1", body), post("k1", body)
        assert (first.status_code, again.status_code) == (201, 201)
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        assert post("k1", {**body, "body": "y"}).status_code == 409
        lossy.plan("fail_503")
        assert post("k2", body).status_code == 503  # not processed, so not remembered
        assert post("k2", body).status_code == 201
        assert [b["body"] for b in lossy.messages("c")] == ["x", "x"]
        assert (lossy.stats.replayed, lossy.stats.conflicts) == (1, 1)
        assert client.get("/_log").json()["conversations"]["c"][0]["key"] == "k1"
