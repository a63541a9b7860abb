"""Running a dialog script against a target: memory, the local stub, or a real org.

One runner serves pytest (each script is a test item) and ``assistant-flow run``. A run stops
at the first step that is not as the script says and reports it as a :class:`StepFailure`
(step number, line, what was expected and what happened); a mistake in the script itself
raises :class:`DialogScriptError` before anything is sent.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from .._exceptions import AssistantFlowError
from .._flow import ConversationHandle, Flow
from .._messages import Attachment, SendMessageOptions, SentMessage
from ..stores.memory import MemoryStore
from ..transports.base import Transport
from ..transports.http import HTTPTransport
from ..transports.memory import MemoryTransport
from ._compare import PayloadMismatchError, payload_differences
from ._errors import DialogScriptError
from ._names import SUFFIXES, TARGETS
from ._script import SENDING_ACTIONS, DialogScript, Step, load_script

if TYPE_CHECKING:
    from ..testing import KustomerStub, StubClient

__all__ = [
    "DialogResult",
    "OrgSettings",
    "StepFailure",
    "StubPool",
    "fixed_clock",
    "iter_scripts",
    "run_dialog",
    "where_crashed",
]


_DIALOG_TITLE_LIMIT = 256  # the stub (and Kustomer) refuse longer session titles


@dataclass(frozen=True)
class StepFailure:
    """The first step that was not as the script says."""

    step: int
    line: int
    description: str
    message: str

    def report(self, path: Path) -> str:
        """The failure as a report shows it, starting ``file:line: step N (...)``."""
        return f"{path}:{self.line}: step {self.step} ({self.description})\n{self.message}"


@dataclass
class DialogResult:
    """The outcome of one run: ``failure`` is ``None`` when every step was as scripted."""

    script: DialogScript
    target: str
    failure: StepFailure | None = None
    duration: float = 0.0
    sent: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether every step was as the script says."""
        return self.failure is None


@dataclass(frozen=True)
class OrgSettings:
    """A real Kustomer org: its API root and key. The key never shows in the repr."""

    base_url: str
    api_key: str = field(repr=False)
    customer_id: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OrgSettings:
        """From ``KUSTOMER_BASE_URL``, ``KUSTOMER_API_KEY``, ``KUSTOMER_CUSTOMER_ID`` (optional)."""
        env = os.environ if environ is None else environ
        missing = [name for name in ("KUSTOMER_BASE_URL", "KUSTOMER_API_KEY") if not env.get(name)]
        if missing:
            raise DialogScriptError(
                "the org target needs the environment variables " + " and ".join(missing),
                path="(environment)",
                field=missing[0],
            )
        return cls(
            env["KUSTOMER_BASE_URL"], env["KUSTOMER_API_KEY"], env.get("KUSTOMER_CUSTOMER_ID")
        )


class StubPool:
    """Started stubs, one per assistant file (and strictness), reused and reset between runs.

    Starting uvicorn costs little but stopping it about 0.16 s, so pytest and the command
    line start each stub once; :meth:`close` stops them all.
    """

    def __init__(self) -> None:
        self._stubs: dict[tuple[Path | None, bool], KustomerStub] = {}

    def get(self, assistants: str | Path | None = None, *, strict: bool = True) -> KustomerStub:
        """A started stub playing ``assistants`` (the shipped file when ``None``), reset."""
        from ..testing import KustomerStub  # noqa: PLC0415 - the `stub` extra, only when used

        key = (Path(assistants).resolve() if assistants is not None else None, strict)
        stub = self._stubs.get(key)
        if stub is None:
            stub = KustomerStub(assistants=key[0], strict=strict).start()
            self._stubs[key] = stub
        else:
            stub.reset()
        return stub

    def close(self) -> None:
        """Stop every stub this pool started."""
        stubs, self._stubs = list(self._stubs.values()), {}
        for stub in stubs:
            stub.stop()


def fixed_clock() -> Callable[[], datetime]:
    """A clock for ``MemoryTransport`` that ticks one second a call, so runs repeat exactly."""
    ticks = itertools.count()
    return lambda: datetime(2026, 1, 1, 10, 0, next(ticks) % 60, tzinfo=UTC)


class _Recorder(Transport):
    """Delegates to a transport and keeps each payload it was handed (for the org target)."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.sent: list[dict[str, Any]] = []

    def send(self, message: SendMessageOptions) -> SentMessage:
        """Record the payload, then send it."""
        self.sent.append(message.to_wire())
        return self.inner.send(message)


@dataclass
class _Session:
    """What a running dialog needs: the conversation, where its sent payloads show, events."""

    flow: Flow
    conv: ConversationHandle
    conversation_id: str
    last_sent: Callable[[], list[dict[str, Any]]]
    poll_events: Callable[[], list[str]] = lambda: []


def _resolve_target(script: DialogScript, target: str) -> str:
    if target not in TARGETS:
        raise DialogScriptError(
            f"unknown target {target!r}; use one of {', '.join(TARGETS)}",
            path=script.path,
            field="target",
        )
    if target == "auto":
        return "stub" if script.played else "memory"
    if script.played and target != "stub":
        raise DialogScriptError(
            f"this script's assistant ({script.assistant!r}) is played by the local stub, so it "
            f"runs on the stub target only, not {target!r}; feed the messages with `init` and "
            "`assistant` steps to run it elsewhere",
            path=script.path,
            line=script.lines.get("assistant"),
            field="assistant",
        )
    return target


@dataclass
class _Context:
    """Where the run reads the stub from, and the org settings, when it needs them."""

    stubs: StubPool | None
    org: OrgSettings | None
    client: httpx.Client | None
    stack: ExitStack


def _stub_session(script: DialogScript, context: _Context) -> _Session:
    from ..testing import StubClient  # noqa: PLC0415 - the `stub` extra, only when used

    pool = context.stubs
    if pool is None:
        pool = StubPool()
        context.stack.callback(pool.close)
    # A played script is checked by the stub's assistant protocol; fed messages are the
    # script's own, which the stub's assistant knows nothing of, so those run lenient.
    stub = pool.get(script.assistants, strict=script.played)
    core = context.stack.enter_context(StubClient(stub.url, stub.api_key))
    transport = context.stack.enter_context(
        HTTPTransport(stub.url, api_key=stub.api_key, customer_id=script.customer)
    )
    title = script.name[:_DIALOG_TITLE_LIMIT]
    session = core.create_session(script.customer, title, assistant=script.assistant)
    conversation_id = str(session["conversationId"])
    flow = Flow(transport, MemoryStore())
    conv = flow.conversation(conversation_id)
    routes = ("assistant_messages", "messages")

    def last_sent() -> list[dict[str, Any]]:
        return [r["body"] for r in stub.requests() if r["route"] in routes]

    session_state = _StubEvents(core, flow, conversation_id)
    if script.played:
        assert script.assistant is not None  # played means it is set
        conv.start_assistant(core.init_assistant(script.assistant))
        session_state.poll()
    return _Session(flow, conv, conversation_id, last_sent, session_state.poll)


class _StubEvents:
    """Forwards the stub's events to the flow, as the Core SDK would, and names them."""

    def __init__(self, core: StubClient, flow: Flow, conversation_id: str) -> None:
        self.core, self.flow, self.conversation_id = core, flow, conversation_id
        self.cursor = 0

    def poll(self) -> list[str]:
        # The stub emits an answer's events before it answers the message, so no wait.
        page = self.core.events(self.conversation_id, after=self.cursor, wait=0)
        self.cursor = page.next
        for event in page.events:
            self.flow.dispatch(event.name, event.payload)
        return [event.name for event in page.events]


def _open_session(script: DialogScript, target: str, context: _Context) -> _Session:
    if target == "stub":
        return _stub_session(script, context)
    if target == "memory":
        memory = MemoryTransport(clock=fixed_clock())
        flow = Flow(memory, MemoryStore())
        conv = flow.conversation(script.conversation)
        return _Session(flow, conv, script.conversation, lambda: memory.sent)
    org = context.org or OrgSettings.from_env()
    http = context.stack.enter_context(
        HTTPTransport(
            org.base_url, api_key=org.api_key, customer_id=org.customer_id, client=context.client
        )
    )
    recorder = _Recorder(http)
    flow = Flow(recorder, MemoryStore())
    conv = flow.conversation(script.conversation)
    return _Session(flow, conv, script.conversation, lambda: recorder.sent)


def _act(step: Step, session: _Session, script: DialogScript) -> None:
    conv = session.conv
    if step.action == "say":
        conv.send_message(step.argument, lang=step.lang)
    elif step.action == "choose":
        conv.choose(step.argument, lang=step.lang)
    elif step.action == "visit":
        conv.visit_article(step.argument)
    elif step.action == "attach":
        spec = step.argument
        if "path" in spec:
            attachment = Attachment.from_path(spec["path"], spec.get("content_type"))
        else:
            data = spec["content"].encode()
            attachment = Attachment.from_bytes(data, spec["name"], spec.get("content_type"))
        conv.send_message(step.say, attachments=[attachment], lang=step.lang)
    elif step.action == "event":
        payload: dict[str, Any] = {"conversationId": session.conversation_id}
        if step.argument == "onAssistantEnded":
            payload["isInAssistantMode"] = False
        session.flow.dispatch(step.argument, {**payload, **(step.payload or {})})
    else:  # assistant: a fed message, as onMessageReceived delivers it
        conv.receive({"conversationId": session.conversation_id, **step.argument})


def _check(step: Step, session: _Session, sent_before: int, events: list[str]) -> str | None:
    """What is off after a step, in words, or ``None``."""
    problems: list[str] = []
    if step.action in SENDING_ACTIONS:
        sent = session.last_sent()
        if len(sent) != sent_before + 1:
            return f"expected one message sent, {len(sent) - sent_before} were"
        if step.expect is not None:
            found = payload_differences(sent[-1], step.expect, exact=step.exact)
            if found:
                problems.append(str(PayloadMismatchError(found)))
    if step.events is not None and list(step.events) != events:
        problems.append(f"events: expected {list(step.events)}, the stub emitted {events}")
    if step.state is not None:
        state = session.conv.state
        if state != step.state:
            problems.append(f"state: expected {step.state.value}, got {state.value}")
    return "\n".join(problems) or None


def _run_steps(script: DialogScript, session: _Session, result: DialogResult) -> None:
    for step in script.steps:
        try:
            _run_step(script, step, session, result)
        except Exception as error:
            # Not a library error: a bug, or a target that broke. Say which step it hit.
            error.add_note(where_crashed(script, step))
            raise
        if result.failure is not None:
            return


def where_crashed(script: DialogScript, step: Step) -> str:
    """``file:line: step N (...)``: the step an unexpected exception came from."""
    return f"{script.path}:{step.line}: step {step.number} ({step.describe()})"


def _run_step(script: DialogScript, step: Step, session: _Session, result: DialogResult) -> None:
    """Act, then check; a step not as scripted sets ``result.failure``."""
    sent_before = len(session.last_sent())
    try:
        _act(step, session, script)
    except AssistantFlowError as error:
        if step.error is not None and type(error).__name__ == step.error:
            # The step raised as expected; only `state` can be checked after it.
            if step.state is not None and session.conv.state != step.state:
                message = (
                    f"state: expected {step.state.value} after {step.error}, "
                    f"got {session.conv.state.value}"
                )
                result.failure = StepFailure(step.number, step.line, step.describe(), message)
            return
        wanted = f" (expected {step.error})" if step.error else ""
        message = f"{type(error).__name__}: {error}{wanted}"
        result.failure = StepFailure(step.number, step.line, step.describe(), message)
        return
    if step.error is not None:
        message = f"expected {step.error}, but the step succeeded"
        result.failure = StepFailure(step.number, step.line, step.describe(), message)
        return
    events = session.poll_events() if step.action in SENDING_ACTIONS else []
    problem = _check(step, session, sent_before, events)
    if problem is not None:
        result.failure = StepFailure(step.number, step.line, step.describe(), problem)


def run_dialog(
    script: DialogScript | str | Path,
    *,
    target: str = "auto",
    stubs: StubPool | None = None,
    org: OrgSettings | None = None,
    client: httpx.Client | None = None,
) -> DialogResult:
    """Run a script; the result says whether every step was as scripted, else where not.

    ``target``: ``memory`` (``MemoryTransport``), ``stub`` (a local ``KustomerStub``, from
    ``stubs`` if given, else started and stopped here), ``org`` (``HTTPTransport`` to ``org``
    or, by default, ``KUSTOMER_BASE_URL`` / ``KUSTOMER_API_KEY``; ``client`` is an
    ``httpx.Client`` to send through) or ``auto``. A mistake in the script, or a target it
    cannot run on, raises :class:`DialogScriptError`; a target that cannot be set up raises
    what it raised (``InvalidInputError`` for an ``http://`` org URL, ``TransportError`` when
    the stub cannot be reached); a failure once the dialog runs fails the step.
    """
    loaded = script if isinstance(script, DialogScript) else load_script(script)
    chosen = _resolve_target(loaded, target)
    result = DialogResult(loaded, chosen)
    started = time.perf_counter()
    with ExitStack() as stack:
        context = _Context(stubs, org, client, stack)
        session = _open_session(loaded, chosen, context)
        try:
            if loaded.init is not None:
                session.conv.start_assistant(loaded.init)
        except AssistantFlowError as error:
            message = f"the dialog could not start: {type(error).__name__}: {error}"
            result.failure = StepFailure(0, 1, "start", message)
        else:
            _run_steps(loaded, session, result)
            result.sent = list(session.last_sent())
    result.duration = time.perf_counter() - started
    return result


def iter_scripts(paths: list[str]) -> Iterator[Path]:
    """The scripts named, directories searched for ``*.dialog.yaml`` / ``*.dialog.yml``."""
    for name in paths:
        path = Path(name)
        if path.is_dir():
            yield from sorted(found for suffix in SUFFIXES for found in path.rglob(f"*{suffix}"))
        else:
            yield path
