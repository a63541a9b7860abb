"""Hostile input: every reader of outside data fails inside the error tree, never beside it.

What comes from outside (an HTTP answer, its headers, a YAML file, the command line) either
works or raises an :class:`AssistantFlowError`; nothing else escapes, whatever it holds. Each
reproduced bug has an example test; then hypothesis throws arbitrary input at the same code.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from assistant_flow import (
    AssistantFlowError,
    DialogScriptError,
    HTTPTransport,
    InvalidInputError,
    KustomerAPIError,
    RateLimitedError,
    RetriesExhaustedError,
    Retry,
    SendMessageOptions,
    SentMessage,
    UnexpectedResponseError,
)
from assistant_flow._cli import main
from assistant_flow.dialogs import load_script
from assistant_flow.testing import KustomerStub, load_assistants
from assistant_flow.transports._attachments import upload_target
from assistant_flow.transports._errors import parse_error_body, status_error
from assistant_flow.transports._retry import RetryBudget, rate_limit_wait, retry_after_wait
from assistant_flow.transports._wire import sent_message

BASE = "https://acme.api.kustomerapp.com"
FED = Path(__file__).parent / "dialogs" / "fed_deflection.dialog.yaml"
BOT = Path(__file__).parent.parent / "assistant_flow" / "testing" / "assistants" / "support.yaml"
NOW = 1_800_000_000.0
DAY = 86_400.0
MESSAGE = SendMessageOptions(conversation_id="conv_1", body="Hi")
# No example database: the tree is shared with others, and each run stands on its own.
FAST = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def nested(depth: int, opener: str = "[") -> bytes:
    closer = {"[": "]", "{": "}"}[opener]
    if opener == "{":
        return ('{"a":' * depth + "1" + closer * depth).encode()
    return (opener * depth + closer * depth).encode()


def answer(status: int, content: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    # As bytes, as they come off the wire: httpx takes str header values as ASCII only.
    raw = [(name.encode(), value.encode("latin-1")) for name, value in (headers or {}).items()]
    return httpx.Response(status, content=content, headers=raw)


def scrub(text: str) -> str:
    return text


# --- HTTP answers: examples -----------------------------------------------------------------


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_a_deeply_nested_answer_is_an_unexpected_response(depth: int) -> None:
    for body in (nested(depth), nested(depth, "{")):
        with pytest.raises(UnexpectedResponseError, match="nests deeper than 64 levels"):
            sent_message(answer(201, body), MESSAGE)
        with pytest.raises(UnexpectedResponseError, match="nests deeper than 64 levels"):
            upload_target(answer(201, body))


@pytest.mark.parametrize("depth", [65, 1_000, 100_000])
def test_a_deeply_nested_error_body_still_gives_the_status_error(depth: int) -> None:
    body = b'{"errors": [{"code": "x", "meta": ' + nested(depth) + b"}]}"
    response = answer(400, body)
    assert parse_error_body(response, scrub) == ()
    error = status_error(response, "POST", "/v2.1/chat/messages", scrub, NOW)
    assert type(error) is KustomerAPIError
    assert (error.status_code, error.errors) == (400, ())


def test_nesting_up_to_the_limit_is_read_and_one_more_is_not() -> None:
    from assistant_flow.transports._json import MAX_JSON_DEPTH, read_json

    assert MAX_JSON_DEPTH == 64
    assert read_json(answer(200, nested(MAX_JSON_DEPTH))) is not None
    with pytest.raises(ValueError, match="nests deeper than 64"):
        read_json(answer(200, nested(MAX_JSON_DEPTH + 1)))
    # The limit counts containers: a message answer (~6 levels) is far inside it.
    attributes = {
        "createdAt": "2026-11-25T10:00:00.000Z",
        "direction": "in",
        "meta": {"payload": json.loads(nested(40, "{"))},
    }
    body = json.dumps({"data": {"id": "m1", "attributes": attributes}}).encode()
    assert sent_message(answer(201, body), MESSAGE).message_id == "m1"


def test_an_answer_past_the_size_limit_is_not_parsed() -> None:
    huge = b'{"data": {"id": "m1", "attributes": {"body": "' + b"x" * (1 << 20) + b'"}}}'
    with pytest.raises(UnexpectedResponseError, match="larger than 1048576 bytes"):
        sent_message(answer(201, huge), MESSAGE)
    assert (
        parse_error_body(answer(500, b'{"errors": [], "x": "' + b"y" * (1 << 20) + b'"}'), scrub)
        == ()
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"body": "caf\xe9"}', "is not UTF-8"),
        (b"\xff\xfe{}", "is not UTF-8"),
        (b'{"messageId": NaN}', "is not JSON"),
        (b'{"messageId": 1e999}', "number too large"),
        (b'{"messageId": "\\ud800"}', "lone surrogate"),
        (b'{"\\udfff": 1}', "lone surrogate"),
        (b"", "is not JSON"),
    ],
)
def test_bodies_that_are_not_strict_utf8_json_are_unexpected(body: bytes, reason: str) -> None:
    with pytest.raises(UnexpectedResponseError, match=reason):
        sent_message(answer(201, body), MESSAGE)
    with pytest.raises(UnexpectedResponseError, match=reason):
        upload_target(answer(201, body))
    assert parse_error_body(answer(422, body), scrub) == ()


def test_the_http_transport_turns_a_deep_answer_into_the_error_tree() -> None:
    bodies = {
        "/v2.1/chat/messages": (201, nested(5_000)),
        "/v2.1/chat/assistant/messages": (400, b'{"errors": ' + nested(5_000) + b"}"),
    }

    def kustomer(request: httpx.Request) -> httpx.Response:
        status, body = bodies[request.url.path]
        return httpx.Response(status, content=body)

    with httpx.Client(transport=httpx.MockTransport(kustomer)) as client:
        transport = HTTPTransport(BASE, "key", client=client)
        with pytest.raises(UnexpectedResponseError, match="nests deeper"):
            transport.send(MESSAGE)
        assistant_mode = SendMessageOptions(
            conversation_id="conv_1", body="Hi", is_in_assistant_mode=True
        )
        with pytest.raises(KustomerAPIError) as caught:
            transport.send(assistant_mode)
    assert (caught.value.status_code, caught.value.errors) == (400, ())


# --- HTTP answers: properties ---------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)
# Shapes close to what the readers look for, so the checks past parsing run too.
message_like = st.fixed_dictionaries(
    {},
    optional={
        "data": st.fixed_dictionaries(
            {},
            optional={
                "id": json_values,
                "attributes": json_values
                | st.fixed_dictionaries(
                    {"createdAt": st.sampled_from(["2026-11-25T10:00:00.000Z", "x"])},
                    optional={"direction": json_values, "conversationId": json_values},
                ),
            },
        ),
        "meta": st.fixed_dictionaries(
            {},
            optional={
                "upload": st.fixed_dictionaries(
                    {},
                    optional={
                        "url": st.sampled_from(["https://u.example.test/1", "http://x", "::"])
                        | json_values,
                        "fields": json_values,
                    },
                )
            },
        ),
        "errors": st.lists(json_values, max_size=3),
        "messageId": json_values,
        "createdAt": json_values,
        "code": json_values,
        "title": json_values,
    },
)


def json_text(value: object) -> bytes:
    return json.dumps(value).encode()  # NaN and Infinity come out as JavaScript does


bodies = (
    st.binary(max_size=300)
    | json_values.map(json_text)
    | message_like.map(json_text)
    | st.builds(nested, st.integers(1, 100) | st.integers(900, 3_000), st.sampled_from("[{"))
)
statuses = st.integers(100, 599)


def in_the_tree(call: Callable[[], object]) -> object:
    """``call()``; an error, if any, must be one of the library's."""
    try:
        return call()
    except AssistantFlowError as error:
        return error


@FAST
@given(status=statuses, body=bodies)
@example(status=201, body=nested(5_000))
@example(status=400, body=b'{"errors": ' + nested(5_000, "{") + b"}")
def test_any_answer_is_read_or_refused_within_the_tree(status: int, body: bytes) -> None:
    response = answer(status, body)
    sent = in_the_tree(lambda: sent_message(response, MESSAGE))
    assert isinstance(sent, SentMessage | UnexpectedResponseError)
    target = in_the_tree(lambda: upload_target(response))
    assert not isinstance(target, AssistantFlowError) or isinstance(target, UnexpectedResponseError)
    errors = parse_error_body(response, scrub)
    assert isinstance(errors, tuple)
    if status >= 400:
        error = status_error(response, "POST", "/v2.1/chat/messages", scrub, NOW)
        assert error.status_code == status
        assert error.errors == errors


@FAST
@given(depth=st.integers(1, 2_000), opener=st.sampled_from(["[", "{"]))
def test_nesting_is_refused_exactly_past_the_limit(depth: int, opener: str) -> None:
    from assistant_flow.transports._json import MAX_JSON_DEPTH, read_json

    result = in_the_tree(lambda: upload_target(answer(201, nested(depth, opener))))
    assert isinstance(result, UnexpectedResponseError)
    assert ("nests deeper" in str(result)) == (depth > MAX_JSON_DEPTH)
    if depth <= MAX_JSON_DEPTH:
        read_json(answer(200, nested(depth, opener)))


header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40)


@FAST
@given(
    statuses=st.lists(statuses, min_size=1, max_size=3),
    body=bodies,
    retry_after=st.none() | header_text,
    reset=st.none() | header_text,
)
@example(statuses=[429], body=b"", retry_after=f"Sat, 01 Jan {10**20} 00:00:00 GMT", reset=None)
@example(statuses=[503, 503], body=b"", retry_after="1e308", reset=None)
def test_a_send_over_http_ends_in_a_message_or_the_error_tree(
    statuses: list[int], body: bytes, retry_after: str | None, reset: str | None
) -> None:
    headers = {
        name: value
        for name, value in (("retry-after", retry_after), ("x-ratelimit-reset", reset))
        if value is not None
    }
    answers = iter(statuses)

    def kustomer(request: httpx.Request) -> httpx.Response:
        return answer(next(answers, 201), body, headers)

    slept: list[float] = []
    retry = Retry(
        attempts=3, max_elapsed=DAY * 2, sleep=slept.append, random=lambda: 0.5, now=lambda: NOW
    )
    with httpx.Client(transport=httpx.MockTransport(kustomer)) as client:
        transport = HTTPTransport(BASE, "key", client=client, retry=retry)
        result = in_the_tree(lambda: transport.send(MESSAGE))
    assert isinstance(result, SentMessage | AssistantFlowError)
    assert all(0 <= seconds <= DAY for seconds in slept)


# --- Retry-After and x-ratelimit-reset ------------------------------------------------------


@pytest.mark.parametrize(
    "date",
    [
        "Sat, 01 Jan 99999999999999999999 00:00:00 GMT",
        "Sat, 01 Jan 10000 00:00:00 GMT",
        "Sat, 01 Jan 2027 25:00:00 GMT",
        "Sat, 01 Jan 2027 00:00:00 +9999",
    ],
)
def test_a_retry_after_date_no_calendar_holds_counts_as_absent(date: str) -> None:
    assert retry_after_wait({"retry-after": date}, NOW) is None
    assert rate_limit_wait({"retry-after": date}, NOW) is None
    # ...so x-ratelimit-reset, when sent, is what the 429 asked for.
    assert rate_limit_wait({"retry-after": date, "x-ratelimit-reset": "30"}, NOW) == 30.0
    error = status_error(answer(429, b"", {"retry-after": date}), "POST", "/p", scrub, NOW)
    assert isinstance(error, RateLimitedError)
    assert error.retry_after is None


@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after": "1e308"},
        {"retry-after": "99999999999999999999999"},
        {"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"},
        {"x-ratelimit-reset": "1e308"},
        {"x-ratelimit-reset": "99999999999999999999999"},
    ],
)
def test_an_absurd_wait_is_cut_to_a_day(headers: dict[str, str]) -> None:
    assert rate_limit_wait(headers, NOW) == DAY
    if "retry-after" in headers:
        assert retry_after_wait(headers, NOW) == DAY
    error = status_error(answer(429, b"", headers), "POST", "/p", scrub, NOW)
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == DAY
    assert "(asked to wait 8.64e+04s)" in str(error)


def test_the_budget_never_computes_an_absurd_wait() -> None:
    retry = Retry(
        attempts=10_000,
        max_elapsed=math.inf,
        backoff=1.0,
        max_backoff=math.inf,
        random=lambda: 1.0,
        clock=lambda: 0.0,
    )
    budget = RetryBudget(retry)
    failure = RateLimitedError("429", retry_after=None)
    for _ in range(2_000):  # 2.0 ** 1999 overflowed a float
        budget.attempt()
        assert 0 <= budget.wait_after(failure) <= DAY
    for asked in (math.inf, math.nan, 1e308, -5.0):
        budget.attempt()
        assert 0 <= budget.wait_after(failure, asked) <= DAY


def test_a_wait_past_the_budget_raises_the_rate_limit_error() -> None:
    budget = RetryBudget(Retry(clock=lambda: 0.0))
    budget.attempt()
    failure = RateLimitedError("429", retry_after=1e308)
    with pytest.raises(RateLimitedError):
        budget.wait_after(failure, 1e308)
    budget.attempt()
    with pytest.raises(RetriesExhaustedError, match="past max_elapsed"):
        budget.wait_after(KustomerAPIError("503", status_code=503), math.inf)


@pytest.mark.parametrize("name", ["max_elapsed", "backoff", "max_backoff"])
def test_a_nan_retry_setting_is_refused(name: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        Retry(**{name: math.nan})  # type: ignore[arg-type]
    assert caught.value.field == name


http_dates = st.builds(
    "{}, {:02d} {} {} {:02d}:{:02d}:{:02d} {}".format,
    st.sampled_from(["Mon", "Sat", "Xyz"]),
    st.integers(0, 40),
    st.sampled_from(["Jan", "Feb", "Dec", "Foo"]),
    st.integers(-10, 10**6) | st.integers(10**6, 10**40),
    st.integers(0, 99),
    st.integers(0, 99),
    st.integers(0, 99),
    st.sampled_from(["GMT", "-0000", "+0000", "+9999", "-2400", "UTC", "EST"]),
)
numbers = st.floats(allow_nan=True, allow_infinity=True).map(repr) | st.integers().map(str)


@FAST
@given(
    retry_after=st.none() | header_text | http_dates | numbers,
    reset=st.none() | header_text | numbers,
    now=st.floats(0, 4e9),
)
@example(retry_after=f"Sat, 01 Jan {10**20} 00:00:00 GMT", reset=None, now=NOW)
@example(retry_after="1e308", reset="99999999999999999999999", now=NOW)
def test_any_rate_limit_header_is_a_bounded_wait_or_none(
    retry_after: str | None, reset: str | None, now: float
) -> None:
    headers = {
        name: value
        for name, value in (("retry-after", retry_after), ("x-ratelimit-reset", reset))
        if value is not None
    }
    for wait in (rate_limit_wait(headers, now), retry_after_wait(headers, now)):
        assert wait is None or 0 <= wait <= DAY
    error = status_error(answer(429, b"", headers), "POST", "/p", scrub, now)
    assert isinstance(error, RateLimitedError)
    assert error.retry_after is None or 0 <= error.retry_after <= DAY


# --- YAML: assistant files and dialog scripts -----------------------------------------------

GOOD_ASSISTANTS = (
    "assistants:\n  a:\n    dialog: d\n    start: s\n    nodes:\n"
    "      s: {body: hi, end: handoff}\n"
)


def load_both(path: Path) -> list[object]:
    """Both loaders on one file; each result is what it returned or the error it raised."""
    return [in_the_tree(lambda: load_assistants(path)), in_the_tree(lambda: load_script(path))]


def test_a_file_that_is_not_utf8_is_each_loaders_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.dialog.yaml"
    path.write_bytes(GOOD_ASSISTANTS.encode().replace(b"hi", b"caf\xe9"))
    with pytest.raises(InvalidInputError, match=r"latin1.dialog.yaml: .*line 6.*not UTF-8"):
        load_assistants(path)
    with pytest.raises(DialogScriptError, match="not UTF-8") as caught:
        load_script(path)
    assert caught.value.line == 6


@pytest.mark.parametrize(
    ("node", "line", "reason"),
    [
        ("      s: {body: hi, end: handoff, 1: x, a: y}\n", 6, "YAML reads `1` as a whole number"),
        ("      s: {body: hi, end: handoff, ? [x] : y, a: z}\n", 6, "not a list"),
        ("      s: {body: hi, end: handoff, yes: y, a: z}\n", 6, "YAML reads `yes` as true"),
        ("      1: {body: hi, end: handoff}\n", 6, "as a whole number"),
    ],
)
def test_keys_that_are_not_text_are_refused_at_their_line(
    tmp_path: Path, node: str, line: int, reason: str
) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text(GOOD_ASSISTANTS.replace("      s: {body: hi, end: handoff}\n", node))
    with pytest.raises(
        InvalidInputError, match=f"not valid YAML at line {line}: a key must be text"
    ):
        load_assistants(path)
    with pytest.raises(InvalidInputError, match=reason):
        load_assistants(path)
    script = tmp_path / "keys.dialog.yaml"
    script.write_text("steps:\n  - say: hi\n    expect: {payload: {1: x, a: y}}\n")
    with pytest.raises(DialogScriptError, match="a key must be text") as caught:
        load_script(script)
    assert caught.value.line == 3


@pytest.mark.parametrize(
    "text",
    [
        "[" * 10_000 + "]" * 10_000,
        "a: " + "{b: " * 5_000 + "1" + "}" * 5_000,
        "".join(f"{'  ' * level}- \n" for level in range(2_000)),
        # Aliases of aliases: shallow as written, deep as read.
        "a: &a " + "[" * 60 + "x" + "]" * 60 + "\nb: &b " + "[" * 10 + "*a" + "]" * 10 + "\n",
    ],
)
def test_deep_nesting_is_refused_by_both_loaders(tmp_path: Path, text: str) -> None:
    path = tmp_path / "deep.dialog.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInputError, match="nested deeper than 64 levels"):
        load_assistants(path)
    with pytest.raises(DialogScriptError, match="nested deeper than 64 levels"):
        load_script(path)


def test_nesting_up_to_the_limit_loads(tmp_path: Path) -> None:
    from assistant_flow._yaml import MAX_YAML_DEPTH, load

    assert MAX_YAML_DEPTH == 64
    assert load("[" * (MAX_YAML_DEPTH - 1) + "x" + "]" * (MAX_YAML_DEPTH - 1)) is not None
    script = tmp_path / "deep_payload.dialog.yaml"
    template = "{a: " * 40 + "x" + "}" * 40  # a template is any JSON object
    script.write_text(
        "init: {assistant: a, dialog: d, node: n}\nsteps:\n  - say: hi\n    expect:\n"
        f"      initAssistantPayload.initialMessages.0.meta.template: {template}\n"
    )
    assert load_script(script).steps[0].expect is not None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a: &a [*a]\n", "an alias inside the mapping or list it names"),
        (
            "a: &a [x,x,x,x,x,x,x,x,x,x]\n"
            + "".join(
                f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n"
                for p, n in zip("abcdef", "bcdefg", strict=True)
            ),
            "more than 100000 values",
        ),
        ("say: 2020-13-01\n", "`2020-13-01` cannot be read as a date"),
        ("say: !!int abc\n", "cannot be read as a whole number"),
        ("say: !!bool maybe\n", "cannot be read as true or false"),
        ("say: !!timestamp x\n", "cannot be read as a date"),
        ("say: !!int ':'\n", "cannot be read as a whole number"),
        ("say: 2001-12-14t21:59:43.10-99:99\n", "cannot be read as a date"),
        ("say: a\x00b\n", "character #x0000 is not allowed"),
    ],
)
def test_what_pyyaml_raises_beside_its_errors_is_each_loaders_error(
    tmp_path: Path, text: str, reason: str
) -> None:
    path = tmp_path / "odd.dialog.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInputError, match=reason):
        load_assistants(path)
    path.write_text(text if "say" not in text else f"steps:\n  - {text}")
    with pytest.raises(DialogScriptError, match=reason):
        load_script(path)


@pytest.mark.parametrize(
    ("step", "reason"),
    [
        ("say: hi\n    state: [in_assistant]", "`state` must be one of"),
        ("say: hi\n    expect: 5", "`steps.1.expect` must be a mapping"),
        ("say: hi\n    expect:", "`steps.1.expect` must be a mapping"),
        ("say: hi\n    expect: just text", "`steps.1.expect` must be a mapping"),
        ("attach: " + "a" * 5_000, "no file"),
        ("say: hi\n    expect: {payload" + ".a" * 100 + ": 1}", "deeper than 64 levels"),
    ],
)
def test_odd_steps_are_script_errors(tmp_path: Path, step: str, reason: str) -> None:
    path = tmp_path / "odd.dialog.yaml"
    path.write_text(f"init: {{assistant: a, dialog: d, node: n}}\nsteps:\n  - {step}\n")
    with pytest.raises(DialogScriptError, match=reason) as caught:
        load_script(path)
    assert caught.value.line == 2 + step.count("\n") + 1  # the step's last line, its culprit


def test_an_assistants_path_too_long_for_the_system_is_no_file(tmp_path: Path) -> None:
    path = tmp_path / "long.dialog.yaml"
    path.write_text(f"assistant: a\nassistants: {'b' * 5_000}.yaml\nsteps:\n  - say: hi\n")
    with pytest.raises(DialogScriptError, match="no file") as caught:
        load_script(path)
    assert caught.value.line == 2


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile")


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["billing", "in_assistant", "ended", "assistant ended", "kb_1", "s"])
)
yaml_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.integers() | st.booleans(), children, max_size=4)
    ),
    max_leaves=20,
)
step_keys = st.sampled_from(
    [
        *("say", "choose", "attach", "visit", "event", "assistant", "expect", "absent"),
        *("exact", "state", "events", "error", "lang", "payload"),
    ]
)
steps = st.dictionaries(step_keys, yaml_values, min_size=1, max_size=3)
scripts = st.fixed_dictionaries(
    {"steps": st.lists(steps, max_size=4) | yaml_values},
    optional={
        "init": yaml_values
        | st.fixed_dictionaries(
            {"assistant": scalars, "dialog": scalars, "node": scalars},
            optional={"initialMessages": yaml_values},
        ),
        "assistant": scalars,
        "assistants": scalars,
        "name": scalars,
        "conversation": scalars,
    },
)
nodes = st.dictionaries(
    st.sampled_from(["template", "body", "quick_replies", "mll", "articles", "next", "default"])
    | st.sampled_from(["then", "end", "colour"]),
    yaml_values | st.sampled_from(["quick_replies", "mll", "deflection", "handoff", "s"]),
    max_size=5,
)
assistant_files = st.fixed_dictionaries(
    {
        "assistants": st.dictionaries(
            st.text(max_size=6) | st.integers(),
            st.fixed_dictionaries(
                {"dialog": scalars, "start": scalars},
                optional={"nodes": st.dictionaries(scalars, nodes, max_size=3), "lang": scalars},
            )
            | yaml_values,
            max_size=2,
        )
    }
)
# Syntax soup: anchors, aliases, tags, flow and block collections, in any order.
yaml_soup = st.lists(
    st.sampled_from([*"[]{}:,-?&*!|>'\"#\n %@`\t\\ab1.", "!!int ", "!!bool ", "&a ", "*a", "<<: "]),
    max_size=60,
).map("".join)


def dumped(value: object) -> bytes:
    return yaml.safe_dump(value, allow_unicode=True).encode()


yaml_files = (
    st.binary(max_size=200)
    | yaml_soup.map(str.encode)
    | scripts.map(dumped)
    | assistant_files.map(dumped)
    | yaml_values.map(dumped)
)


@FAST
@given(content=yaml_files)
@example(content=b"[" * 10_000)
@example(content=b"assistants:\n  a: {1: x, a: y}\n")
@example(content=b"steps:\n  - say: caf\xe9\n")
def test_any_file_loads_or_is_each_loaders_error(scratch: Path, content: bytes) -> None:
    path = scratch / "any.dialog.yaml"
    path.write_bytes(content)
    assistants, script = load_both(path)
    assert isinstance(assistants, dict) or type(assistants) is InvalidInputError
    assert not isinstance(script, AssistantFlowError) or isinstance(script, DialogScriptError)


@FAST
@given(depth=st.integers(1, 3_000), flow=st.booleans(), mapping=st.booleans())
def test_any_nesting_loads_or_is_refused_past_the_limit(
    scratch: Path, depth: int, flow: bool, mapping: bool
) -> None:
    if not flow:
        depth = depth % 200 + 1  # block style indents each level: keep the file small
    if flow:
        text = ("{a: " if mapping else "[") * depth + "x" + ("}" if mapping else "]") * depth
    else:
        step = "a:" if mapping else "-"
        text = "".join(f"{' ' * 2 * level}{step}\n" for level in range(depth))
    path = scratch / "nested.dialog.yaml"
    path.write_text(text)
    for result in load_both(path):
        deep = isinstance(result, InvalidInputError) and "nested deeper" in str(result)
        assert isinstance(result, AssistantFlowError | dict)
        # Each level here is one mapping or list and its value: 64 levels allow ~32 of them.
        if depth > 64:
            assert deep
        elif depth < 30:
            assert not deep


# --- the command line -----------------------------------------------------------------------


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def usage_error(argv: list[str], message: str, prog: str = "assistant-flow") -> None:
    code, out, err = cli(*argv)
    assert code == 2, out + err
    assert "Traceback" not in out + err
    last = err.splitlines()[-1]
    assert last.startswith(f"{prog}: error: "), err
    assert message in last


class WouldServe(Exception):
    """Raised in place of binding the port: every check of the options passed."""

    @staticmethod
    def instead(stub: KustomerStub) -> KustomerStub:
        raise WouldServe


@pytest.fixture
def no_serving(monkeypatch: pytest.MonkeyPatch) -> list[KustomerStub]:
    """The stub command checks everything but binds nothing; the stubs it would start."""
    started: list[KustomerStub] = []

    def start(self: KustomerStub) -> KustomerStub:
        started.append(self)
        raise WouldServe

    monkeypatch.setattr(KustomerStub, "start", start)
    return started


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "99999"], "argument --port: 99999 is not a port: use 0 to 65535"),
        (["--port", "-1"], "argument --port: -1 is not a port"),
        (["--port", "8o80"], "argument --port: '8o80' is not a whole number"),
        (["--port", "9" * 5_000], "is not a whole number"),
        (["--host", "10.0.0.1"], "argument --host: '10.0.0.1': the stub listens on loopback only"),
        (["--host", ""], "loopback only"),
        (["--rate-limit", "0"], "argument --rate-limit: 0 is not a rate limit"),
        (["--rate-limit", "lots"], "argument --rate-limit: 'lots' is not a whole number"),
        (["--assistants", "absent.yaml"], "argument --assistants: no such file: 'absent.yaml'"),
        (["--assistants", "a" * 5_000], "argument --assistants: no such file"),
        (["--assistants", "a\0b"], "argument --assistants: no such file"),
        (["--api-key", "two words"], "argument --api-key: the key must be printable ASCII"),
        (["--api-key", ""], "argument --api-key: the key must be printable ASCII"),
        (["--fault", "teapot"], "argument --fault: fault `kind` must be one of"),
        (["--fault", "slow,delay=inf"], "`delay` must be a finite number of seconds"),
        (["--fault", "429,reset=nan"], "`reset` must be a finite number of seconds"),
        (["--fault", "429,count=x"], "`count` must be a number"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_every_stub_option_is_checked_before_serving(
    no_serving: list[KustomerStub], argv: list[str], message: str
) -> None:
    usage_error(["stub", *argv], message, prog="assistant-flow stub")
    assert no_serving == []


def test_a_bad_stub_key_in_the_environment_is_a_usage_error(
    no_serving: list[KustomerStub], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSISTANT_FLOW_STUB_API_KEY", "has a space")
    usage_error(
        ["stub"], "$ASSISTANT_FLOW_STUB_API_KEY must be printable ASCII", "assistant-flow stub"
    )
    assert "has a space" not in cli("stub")[2]
    assert no_serving == []
    monkeypatch.delenv("ASSISTANT_FLOW_STUB_API_KEY")
    with pytest.raises(WouldServe):
        cli("stub", "--port", "65535", "--fault", "429,reset=2", "--assistants", str(BOT))
    assert no_serving[-1].port == 65535


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


def test_a_port_already_taken_is_a_usage_error(taken_port: int) -> None:
    usage_error(
        ["stub", "--port", str(taken_port)],
        f"cannot listen on 127.0.0.1 port {taken_port}: Address already in use",
        prog="assistant-flow stub",
    )


def test_the_console_script_reports_a_port_out_of_range_without_a_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "assistant_flow", "stub", "--port", "99999"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        "assistant-flow stub: error: argument --port: 99999 is not a port: use 0 to 65535 "
        "(0 picks a free one)"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "absent.dialog.yaml"], "argument DIALOG: no such file or directory"),
        (["run", ""], "argument DIALOG: '' is not a file name"),
        (["run", "a\0b.dialog.yaml"], "is not a file name"),
        (["run", "x" * 5_000], "no such file or directory"),
        (["diagram", "--out", "a\0b"], "argument --out: 'a\\x00b' is not a file name"),
        (["diagram", "--out", ""], "argument --out: '' is not a file name"),
        (["schema", "--out", "a\0b"], "argument --out: 'a\\x00b' is not a file name"),
        (["schema", "--out", ""], "argument --out: '' is not a file name"),
    ],
)
def test_every_command_checks_its_arguments(tmp_path: Path, argv: list[str], message: str) -> None:
    with contextlib.chdir(tmp_path):
        code, out, err = cli(*argv)
    assert (code, out) == (2, "")
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith(f"assistant-flow {argv[0]}: error: ")
    assert message in err.splitlines()[-1]


def test_an_out_that_cannot_be_written_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    usage_error(["schema", "--out", str(tmp_path / "file" / "x.json")], "cannot write")
    usage_error(["diagram", "--out", str(tmp_path / "file")], "cannot write to")
    usage_error(["schema", "--out", str(tmp_path / ("n" * 300))], "cannot write")


words = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="/\\"),
    max_size=12,
).filter(lambda word: word != "..")
tokens = (
    st.sampled_from(["run", "diagram", "stub", "schema", "--help", "-h", "--target", "--out"])
    | st.sampled_from(["--traceback", "--host", "--port", "--assistants", "--api-key"])
    | st.sampled_from(["--rate-limit", "--lenient", "--fault", "memory", "stub", "org", "auto"])
    | st.sampled_from(["ok.dialog.yaml", "bad.dialog.yaml", "bot.yaml", "latin1.yaml", "."])
    | st.sampled_from(["0", "-1", "65535", "65536", "1e3", "429,count=2", "slow,delay=nan"])
    | st.sampled_from(["127.0.0.1", "::1", "localhost", "0.0.0.0", "out", "out/x.json"])
    | st.integers().map(str)
    | words
)


@FAST
@given(argv=st.lists(tokens, max_size=6))
@example(argv=["stub", "--port", "99999"])
@example(argv=["diagram", "--out", "a\0b"])
def test_any_command_line_exits_0_1_or_2_without_a_traceback(
    scratch: Path, argv: list[str]
) -> None:
    folder = scratch / "cli"
    folder.mkdir(exist_ok=True)
    (folder / "ok.dialog.yaml").write_text(FED.read_text())
    (folder / "bad.dialog.yaml").write_bytes(b"steps: [\xff")
    (folder / "bot.yaml").write_text(GOOD_ASSISTANTS)
    (folder / "latin1.yaml").write_bytes(GOOD_ASSISTANTS.encode().replace(b"hi", b"\xe9"))
    with (
        contextlib.chdir(folder),
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setattr(KustomerStub, "start", WouldServe.instead)
        for name in ("KUSTOMER_BASE_URL", "KUSTOMER_API_KEY", "ASSISTANT_FLOW_STUB_API_KEY"):
            patch.delenv(name, raising=False)
        try:
            code, out, err = cli(*argv)
        except WouldServe:  # every option was good: it would serve now
            code, out, err = 0, "", ""
        except SystemExit as exit_:  # allowed, though main() returns its status instead
            code, out, err = int(exit_.code or 0), "", ""
    assert code in (0, 1, 2)
    assert "Traceback" not in out + err
    if code == 2 and err:  # a usage mistake: argparse's usage line, then the error
        assert "\nassistant-flow" in f"\n{err}"
        assert ": error: " in err
