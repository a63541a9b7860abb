"""The Kustomer stub over real loopback HTTP: auth, fields, the assistant protocol, a whole
dialog, faults, idempotency, attachments, the command line and assistant files."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistant_flow import (
    ConfigurationError,
    Flow,
    InvalidInputError,
    SendMessageOptions,
    SentMessage,
    State,
    Transport,
    TransportError,
)
from assistant_flow.testing import (
    AsyncStubClient,
    Fault,
    KustomerStub,
    StubClient,
    StubProcess,
    load_assistants,
    parse_fault,
)

SIX = {"meta", "direction", "directionType", "importedAt", "trackingId", "lang"}


# --- helpers: a browser-less customer speaking raw JSON ---------------------------------------


class Customer:
    """Raw HTTP against the stub, as a client of the contract would speak it."""

    def __init__(self, stub: KustomerStub) -> None:
        self.stub = stub
        self.http = httpx.Client(base_url=stub.url, timeout=10)
        self.auth = {"Authorization": f"Bearer {stub.api_key}"}
        self.cursor = 0

    def post(self, path: str, body: Any, **headers: str) -> httpx.Response:
        return self.http.post(path, json=body, headers={**self.auth, **headers})

    def init(self, assistant: str = "asst_support") -> dict[str, Any]:
        response = self.http.get(f"/v2.1/chat/assistants/{assistant}/init", headers=self.auth)
        assert response.status_code == 200
        data: dict[str, Any] = response.json()
        return data

    def session(self, **extra: Any) -> str:
        body = {"customerId": "cust_1", "title": "Help", "assistant": "asst_support", **extra}
        response = self.post("/v2.1/chat/sessions", body)
        assert response.status_code == 201, response.text
        conversation: str = response.json()["data"]["id"]
        return conversation

    def events(self, conversation: str, wait: float = 0) -> list[dict[str, Any]]:
        response = self.http.get(
            f"/v2.1/chat/sessions/{conversation}/events",
            params={"after": self.cursor, "wait": wait},
            headers=self.auth,
            timeout=10 + wait,
        )
        assert response.status_code == 200, response.text
        page = response.json()
        self.cursor = page["next"]
        events: list[dict[str, Any]] = page["events"]
        return events

    def reply(self, conversation: str, body: str, **fields: Any) -> httpx.Response:
        message = {"conversationId": conversation, "body": body, "isInAssistantMode": True}
        return self.post("/v2.1/chat/assistant/messages", {**message, **fields})


def cut(init: dict[str, Any]) -> dict[str, Any]:
    """initAssistantPayload done right: four keys, each greeting cut to its six fields."""
    messages = [
        {
            key: ({"template": m["meta"]["template"]} if key == "meta" else m[key])
            for key in SIX
            if key in m
        }
        for m in init["initialMessages"]
    ]
    return {k: init[k] for k in ("assistant", "dialog", "node")} | {"initialMessages": messages}


def error_of(response: httpx.Response) -> dict[str, Any]:
    [error] = response.json()["errors"]
    assert set(error) == {"code", "message", "meta"}
    assert isinstance(error, dict)
    return error


@pytest.fixture
def customer(kustomer_stub: KustomerStub) -> Iterator[Customer]:
    customer = Customer(kustomer_stub)
    yield customer
    customer.http.close()


@pytest.fixture
def replied(customer: Customer) -> str:
    """A conversation whose first reply (Billing) went through."""
    conversation = customer.session()
    answer = customer.reply(
        conversation, "Billing", payload="billing", initAssistantPayload=cut(customer.init())
    )
    assert answer.status_code == 201, answer.text
    return conversation


# --- auth and rate limit ----------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer", "Basic abc", "Bearer wrong-key"])
def test_requests_without_the_key_get_401_and_the_key_is_never_echoed(
    customer: Customer, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = customer.http.post(
        "/v2.1/chat/sessions", json={"customerId": "c", "title": "t"}, headers=headers
    )
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"
    assert customer.stub.api_key not in response.text
    assert "wrong-key" not in response.text
    assert "x-ratelimit-limit" in response.headers
    assert customer.stub.state.conversations == {}


def test_every_answer_carries_rate_limit_headers_and_the_budget_gives_429() -> None:
    with KustomerStub(rate_limit=3) as stub:
        auth = {"Authorization": f"Bearer {stub.api_key}"}
        answers = [
            httpx.get(f"{stub.url}/v2.1/chat/assistants/asst_support/init", headers=auth)
            for _ in range(4)
        ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert {a.headers["x-ratelimit-limit"] for a in answers} == {"3"}
    resets = {int(a.headers["x-ratelimit-reset"]) for a in answers}
    assert len(resets) == 1
    assert resets.pop() > 10**9
    assert error_of(answers[3])["code"] == "too_many_requests"


def test_the_request_log_keeps_headers_but_never_authorization(customer: Customer) -> None:
    customer.session()
    [entry] = customer.stub.requests()
    assert entry["route"] == "sessions"
    assert entry["status"] == 201
    assert "authorization" not in entry["headers"]
    assert customer.stub.api_key not in json.dumps(customer.stub.requests())
    assert customer.stub.api_key not in repr(customer.stub)


# --- Kustomer's field rules -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([1, 2], "(body)"),
        ({"body": "hi"}, "conversationId"),
        ({"conversationId": "CONV", "body": "hi", "isInAssistantMode": "yes"}, "isInAssistantMode"),
        ({"conversationId": "CONV", "body": 3}, "body"),
        ({"conversationId": "CONV"}, "body"),
        (
            {"conversationId": "CONV", "body": "hi", "is_in_assistant_mode": True},
            "is_in_assistant_mode",
        ),
        ({"conversationId": "CONV", "body": "hi", "payload": ""}, "payload"),
    ],
)
def test_malformed_messages_get_400_naming_the_field(
    customer: Customer, body: Any, field: str
) -> None:
    conversation = customer.session()
    if isinstance(body, dict) and body.get("conversationId") == "CONV":
        body["conversationId"] = conversation
    response = customer.post("/v2.1/chat/assistant/messages", body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["meta"]["field"] == field
    assert f"`{field}`" in error["message"] or field == "(body)"
    assert customer.events(conversation) == []


def test_a_body_that_is_not_json_is_refused(customer: Customer) -> None:
    response = customer.http.post(
        "/v2.1/chat/messages",
        content=b"{nope",
        headers={**customer.auth, "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert error_of(response)["meta"]["field"] == "(body)"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"title": "t"}, 400, "customerId"),
        ({"customerId": "c"}, 400, "title"),
        ({"customerId": "c", "title": "x" * 257}, 400, "title"),
        ({"customerId": "c", "title": "t", "assistant": "asst_nobody"}, 404, "assistant"),
    ],
)
def test_sessions_need_a_customer_and_a_title(
    customer: Customer, body: dict[str, Any], status: int, field: str
) -> None:
    response = customer.post("/v2.1/chat/sessions", body)
    assert response.status_code == status
    assert error_of(response)["meta"]["field"] == field


def test_unknown_conversations_assistants_and_routes_are_404(customer: Customer) -> None:
    reply = customer.reply("conv_missing", "hi", initAssistantPayload=cut(customer.init()))
    assert (reply.status_code, error_of(reply)["meta"]["field"]) == (404, "conversationId")
    init = customer.http.get("/v2.1/chat/assistants/asst_nobody/init", headers=customer.auth)
    assert init.status_code == 404
    route = customer.http.get("/v2.1/chat/nothing", headers=customer.auth)
    assert (route.status_code, error_of(route)["code"]) == (404, "not_found")


def test_init_answers_flat_with_kustomer_shaped_greetings(customer: Customer) -> None:
    init = customer.init()
    assert set(init) == {"assistant", "dialog", "node", "initialMessages", "attributes"}
    assert (init["assistant"], init["dialog"], init["node"]) == (
        "asst_support",
        "dlg_welcome",
        "welcome",
    )
    [greeting] = init["initialMessages"]
    assert set(greeting) > SIX  # Kustomer sends more than the payload may carry
    assert greeting["direction"] == "out"
    assert greeting["directionType"] == "initial-out"
    template = greeting["meta"]["template"]
    assert template["templateType"] == "quick_replies"
    assert [a["value"] for a in template["actions"]] == ["billing", "login", "human"]
    assert init["attributes"]["publicName"] == "Ada"


# --- the assistant protocol -------------------------------------------------------------------


def test_the_first_reply_needs_init_assistant_payload(customer: Customer) -> None:
    conversation = customer.session()
    response = customer.reply(conversation, "Billing", payload="billing")
    assert response.status_code == 400
    assert error_of(response)["meta"]["field"] == "initAssistantPayload"
    assert customer.events(conversation) == []


@pytest.mark.parametrize(
    ("spoil", "field"),
    [
        (lambda p, init: p.update(node="elsewhere"), "initAssistantPayload.node"),
        (lambda p, init: p.update(dialog="dlg_other"), "initAssistantPayload.dialog"),
        (lambda p, init: p.pop("assistant"), "initAssistantPayload.assistant"),
        (
            lambda p, init: p.update(attributes=init["attributes"]),
            "initAssistantPayload.attributes",
        ),
        (
            lambda p, init: p.update(initialMessages=init["initialMessages"]),
            "initAssistantPayload.initialMessages.0.channel",
        ),
        (
            lambda p, init: p["initialMessages"][0]["meta"].update(articles=[]),
            "initAssistantPayload.initialMessages.0.meta",
        ),
        (lambda p, init: p.update(initialMessages=[]), "initAssistantPayload.initialMessages"),
    ],
)
def test_a_first_reply_with_a_wrong_payload_names_the_field(
    customer: Customer, spoil: Any, field: str
) -> None:
    conversation = customer.session()
    init = customer.init()
    payload = cut(init)
    spoil(payload, init)
    response = customer.reply(
        conversation, "Billing", payload="billing", initAssistantPayload=payload
    )
    assert response.status_code == 400
    assert error_of(response)["meta"]["field"] == field
    assert customer.events(conversation) == []


def test_only_the_first_reply_carries_the_payload(customer: Customer, replied: str) -> None:
    again = customer.reply(
        replied, "Monthly", payload="plan_monthly", initAssistantPayload=cut(customer.init())
    )
    assert again.status_code == 400
    assert error_of(again)["meta"]["field"] == "initAssistantPayload"


@pytest.mark.parametrize(
    ("route", "fields", "field"),
    [
        ("/v2.1/chat/messages", {}, "isInAssistantMode"),
        ("/v2.1/chat/assistant/messages", {"isInAssistantMode": False}, "isInAssistantMode"),
        ("/v2.1/chat/assistant/messages", {"payload": "Monthly"}, "payload"),
        ("/v2.1/chat/assistant/messages", {"lastDeflection": {"articles": []}}, "lastDeflection"),
    ],
)
def test_while_the_assistant_runs_messages_must_claim_assistant_mode(
    customer: Customer, replied: str, route: str, fields: dict[str, Any], field: str
) -> None:
    before = customer.events(replied)
    message = {"conversationId": replied, "body": "Monthly", "isInAssistantMode": True, **fields}
    if route == "/v2.1/chat/messages":
        message.pop("isInAssistantMode")
    response = customer.post(route, message)
    assert response.status_code == 400
    assert error_of(response)["meta"]["field"] == field
    assert before
    assert customer.events(replied) == []


def test_the_reply_after_a_deflection_must_carry_last_deflection(customer: Customer) -> None:
    conversation = customer.session()
    customer.reply(
        conversation, "Can't log in", payload="login", initAssistantPayload=cut(customer.init())
    )
    customer.events(conversation)
    bare = customer.reply(conversation, "No, I need a person", payload="handoff")
    assert error_of(bare)["meta"]["field"] == "lastDeflection"
    unknown = customer.reply(
        conversation,
        "No",
        payload="handoff",
        lastDeflection={"articles": [{"id": "kb_x", "visited": 0}]},
    )
    assert error_of(unknown)["meta"]["field"] == "lastDeflection.articles.0.id"
    negative = customer.reply(
        conversation,
        "No",
        payload="handoff",
        lastDeflection={"articles": [{"id": "kb_2fa", "visited": -1}]},
    )
    assert error_of(negative)["meta"]["field"] == "lastDeflection.articles.0.visited"


def test_after_hand_off_messages_must_not_claim_assistant_mode(customer: Customer) -> None:
    conversation = customer.session()
    customer.reply(
        conversation, "Talk to a person", payload="human", initAssistantPayload=cut(customer.init())
    )
    assert [e["name"] for e in customer.events(conversation)][-1] == "onAssistantEnded"
    claimed = customer.reply(conversation, "Hello?")
    assert error_of(claimed)["meta"]["field"] == "isInAssistantMode"
    still_true = customer.post(
        "/v2.1/chat/messages",
        {"conversationId": conversation, "body": "Hello?", "isInAssistantMode": True},
    )
    assert error_of(still_true)["meta"]["field"] == "isInAssistantMode"
    right = customer.post(
        "/v2.1/chat/messages",
        {"conversationId": conversation, "body": "Hello?", "isInAssistantMode": False},
    )
    assert right.status_code == 201


def test_a_lenient_stub_lets_protocol_mistakes_through() -> None:
    with KustomerStub(strict=False) as stub:
        customer = Customer(stub)
        conversation = customer.session()
        first = customer.reply(
            conversation, "Billing", payload="billing"
        )  # no payload: let through
        plain = customer.post(
            "/v2.1/chat/messages", {"conversationId": conversation, "body": "hi", "extra": 1}
        )
        auth = customer.http.post(
            "/v2.1/chat/messages", json={"conversationId": conversation, "body": "hi"}
        )
        customer.http.close()
    assert (first.status_code, plain.status_code) == (201, 201)
    assert auth.status_code == 401  # auth and field rules stay


# --- a whole dialog, raw JSON through the shipped assistant ------------------------------------


def test_a_full_dialog_round_trips_through_the_default_assistant(customer: Customer) -> None:
    init = customer.init()
    conversation = customer.session(lang="en")

    first = customer.reply(
        conversation, "Can't log in", payload="login", initAssistantPayload=cut(init)
    )
    assert first.status_code == 201
    data = first.json()["data"]
    assert data["type"] == "message"
    assert data["id"].startswith("msg_")
    assert data["attributes"]["direction"] == "in"
    assert data["attributes"]["conversationId"] == conversation
    deflection, question = customer.events(conversation)
    assert deflection["name"] == question["name"] == "onMessageReceived"
    message = deflection["payload"]
    assert message["direction"] == "out"
    assert message["conversationId"] == conversation
    assert message["meta"]["template"]["templateType"] == "deflection"
    assert [a["id"] for a in message["meta"]["articles"]] == ["kb_reset", "kb_2fa"]
    assert set(message["meta"]["articles"][0]) == {"id", "version", "title", "url", "lang"}
    assert message["sentBy"]["id"] == "asst_support"
    assert {"messageId", "body", "createdAt"} <= set(message)
    assert question["payload"]["meta"]["template"]["templateType"] == "quick_replies"

    articles = [{"id": "kb_reset", "visited": 1}, {"id": "kb_2fa", "visited": 0}]
    second = customer.reply(
        conversation,
        "No, I need a person",
        payload="handoff",
        lastDeflection={"articles": articles},
    )
    assert second.status_code == 201
    handoff, ended = customer.events(conversation)
    assert handoff["payload"]["body"].startswith("I am passing you")
    assert ended == {
        "cursor": 4,
        "name": "onAssistantEnded",
        "payload": {"conversationId": conversation, "isInAssistantMode": False},
    }

    to_agent = customer.post(
        "/v2.1/chat/messages",
        {"conversationId": conversation, "body": "Still stuck", "isInAssistantMode": False},
    )
    assert to_agent.status_code == 201
    assert customer.events(conversation) == []  # nobody answers unless an agent does
    customer.stub.agent_says(conversation, "Hi, I am Sam.")
    [agent] = customer.events(conversation)
    assert agent["payload"]["sentBy"]["type"] == "user"
    assert [body["body"] for body in customer.stub.sent()] == [
        "Can't log in",
        "No, I need a person",
        "Still stuck",
    ]


def test_the_end_node_ends_the_assistant_and_the_conversation(
    customer: Customer, replied: str
) -> None:
    customer.events(replied)
    customer.reply(replied, "Monthly", payload="plan_monthly")
    customer.reply(replied, "No, that's all", payload="done")
    names = [event["name"] for event in customer.events(replied)]
    assert names[-3:] == ["onMessageReceived", "onAssistantEnded", "onConversationEnded"]


def test_free_text_follows_the_default_and_unknown_text_asks_again(customer: Customer) -> None:
    conversation = customer.session()
    customer.reply(conversation, "hmm", initAssistantPayload=cut(customer.init()))
    [sorry] = customer.events(conversation)
    assert sorry["payload"]["body"].startswith("Sorry, I did not get that")


def test_a_long_poll_returns_the_events_that_arrive_while_it_waits(
    customer: Customer, replied: str
) -> None:
    customer.events(replied)
    found: list[list[dict[str, Any]]] = []
    poller = Customer(customer.stub)
    poller.cursor = customer.cursor
    thread = threading.Thread(target=lambda: found.append(poller.events(replied, wait=20)))
    thread.start()
    customer.reply(replied, "Monthly", payload="plan_monthly")
    thread.join(timeout=25)
    poller.http.close()
    assert [e["payload"]["body"] for e in found[0]][:1] == [
        "I have sent the invoice to the email address on your account."
    ]


def test_a_long_poll_with_nothing_new_answers_empty(customer: Customer, replied: str) -> None:
    customer.events(replied)
    assert customer.events(replied, wait=0.05) == []


@pytest.mark.parametrize(
    ("query", "field"), [("after=-1", "after"), ("wait=99", "wait"), ("after=x", "after")]
)
def test_events_queries_are_checked(
    customer: Customer, replied: str, query: str, field: str
) -> None:
    response = customer.http.get(
        f"/v2.1/chat/sessions/{replied}/events?{query}", headers=customer.auth
    )
    assert (response.status_code, error_of(response)["meta"]["field"]) == (400, field)


# --- the stub client, sync and async under the same names --------------------------------------


class SyncView:
    """A StubClient seen through AsyncStubClient's interface."""

    def __init__(self, client: StubClient) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **kwargs)

        return call


@pytest.fixture(params=["sync", "async"])
async def stub_client(
    request: pytest.FixtureRequest, kustomer_stub: KustomerStub
) -> AsyncIterator[Any]:
    """StubClient or AsyncStubClient, both driven with await."""
    if request.param == "async":
        async with AsyncStubClient(kustomer_stub.url, kustomer_stub.api_key) as client:
            yield client
    else:
        with StubClient(kustomer_stub.url, kustomer_stub.api_key) as sync:
            yield SyncView(sync)


async def test_the_stub_client_does_what_the_core_sdk_does(
    stub_client: Any, kustomer_stub: KustomerStub
) -> None:
    init = await stub_client.init_assistant("asst_support")
    session = await stub_client.create_session(
        "cust_9", "Help", assistant=init["assistant"], lang="en"
    )
    assert session["isInAssistantMode"] is True
    assert session["ended"] is False
    page = await stub_client.events(session["conversationId"], after=0, wait=0)
    assert (page.events, page.next) == ([], 0)
    with pytest.raises(TransportError, match="404") as refused:
        await stub_client.init_assistant("asst_nobody")
    assert kustomer_stub.api_key not in str(refused.value)


def test_stub_clients_keep_the_key_out_of_their_repr(kustomer_stub: KustomerStub) -> None:
    with StubClient(kustomer_stub.url, kustomer_stub.api_key) as client:
        assert kustomer_stub.api_key not in repr(client)
    assert kustomer_stub.api_key not in repr(
        AsyncStubClient(kustomer_stub.url, kustomer_stub.api_key)
    )


# --- faults -----------------------------------------------------------------------------------


def test_a_429_fault_sends_reset_and_retry_after_and_is_not_processed(customer: Customer) -> None:
    customer.stub.fault("429", "sessions", count=2, reset=0.25, retry_after=1)
    first = customer.post("/v2.1/chat/sessions", {"customerId": "c", "title": "t"})
    second = customer.post("/v2.1/chat/sessions", {"customerId": "c", "title": "t"})
    third = customer.post("/v2.1/chat/sessions", {"customerId": "c", "title": "t"})
    assert [r.status_code for r in (first, second, third)] == [429, 429, 201]
    assert first.headers["x-ratelimit-reset"] == "0.25"
    assert first.headers["retry-after"] == "1"
    assert first.headers["x-ratelimit-remaining"] == "0"
    assert error_of(first)["code"] == "too_many_requests"
    assert len(customer.stub.state.conversations) == 1
    assert customer.stub.faults == []


def test_a_500_fault_answers_a_kustomer_error_and_only_on_its_route(customer: Customer) -> None:
    customer.stub.fault("500", "assistant_messages", status=503)
    conversation = customer.session()  # another route: untouched
    failed = customer.reply(
        conversation, "Billing", payload="billing", initAssistantPayload=cut(customer.init())
    )
    assert failed.status_code == 503
    assert error_of(failed)["code"] == "internal_server_error"
    assert customer.events(conversation) == []
    retried = customer.reply(
        conversation, "Billing", payload="billing", initAssistantPayload=cut(customer.init())
    )
    assert retried.status_code == 201


def test_a_slow_fault_delays_then_answers_normally(customer: Customer) -> None:
    customer.stub.fault("slow", delay=0.05)
    conversation = customer.session()
    [entry] = customer.stub.requests("sessions")
    assert entry["fault"] == "slow"
    assert entry["status"] == 201
    assert conversation in customer.stub.state.conversations


def test_a_slow_fault_longer_than_the_client_timeout_is_a_timeout(customer: Customer) -> None:
    customer.stub.fault("slow", "init", delay=0.5)
    with pytest.raises(httpx.TimeoutException):
        customer.http.get(
            "/v2.1/chat/assistants/asst_support/init", headers=customer.auth, timeout=0.05
        )


def test_a_dropped_connection_is_a_transport_error_and_not_processed(customer: Customer) -> None:
    customer.stub.fault("drop", "sessions")
    with pytest.raises(httpx.TransportError):
        customer.post("/v2.1/chat/sessions", {"customerId": "c", "title": "t"})
    assert customer.stub.state.conversations == {}
    assert customer.stub.requests()[0]["status"] == "dropped"
    customer.session()  # the next request is served


def test_a_drop_after_processing_is_healed_by_the_idempotency_key(
    customer: Customer, replied: str
) -> None:
    customer.events(replied)
    customer.stub.fault("drop", "assistant_messages", after_processing=True)
    message = {
        "conversationId": replied,
        "body": "Monthly",
        "payload": "plan_monthly",
        "isInAssistantMode": True,
    }
    with pytest.raises(httpx.RemoteProtocolError):
        customer.post("/v2.1/chat/assistant/messages", message, **{"Idempotency-Key": "key-1"})
    again = customer.post("/v2.1/chat/assistant/messages", message, **{"Idempotency-Key": "key-1"})
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    bodies = [e["payload"]["body"] for e in customer.events(replied)]
    assert bodies.count("I have sent the invoice to the email address on your account.") == 1
    assert [b["body"] for b in customer.stub.sent()] == ["Billing", "Monthly"]


def test_faults_are_set_read_and_cleared_through_the_control_routes(customer: Customer) -> None:
    http = customer.http
    added = http.post("/_stub/faults", json=[{"kind": "500", "route": "init", "count": 2}])
    assert added.status_code == 201
    assert http.get("/_stub/faults").json()["faults"][0]["count"] == 2
    assert (
        customer.http.get(
            "/v2.1/chat/assistants/asst_support/init", headers=customer.auth
        ).status_code
        == 500
    )
    assert http.get("/_stub/faults").json()["faults"][0]["count"] == 1
    assert http.delete("/_stub/faults").status_code == 204
    assert customer.init()["assistant"] == "asst_support"
    log = http.get("/_stub/requests").json()["requests"]
    assert [entry["status"] for entry in log] == [500, 200]
    bad = http.post("/_stub/faults", json={"kind": "teapot"})
    assert (bad.status_code, error_of(bad)["meta"]["field"]) == (400, "kind")
    assert http.post("/_stub/reset").status_code == 204
    assert http.get("/_stub/requests").json()["requests"] == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "429@messages,count=2,reset=0.5,retry_after=1",
            Fault("429", "messages", 2, reset=0.5, retry_after=1),
        ),
        ("500,status=502", Fault("500", status=502)),
        ("slow@events,delay=2", Fault("slow", "events", delay=2)),
        ("drop,after_processing=true", Fault("drop", after_processing=True)),
    ],
)
def test_fault_specs_parse(spec: str, expected: Fault) -> None:
    assert parse_fault(spec) == expected


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("teapot", "kind"),
        ("429@nowhere", "route"),
        ("500,count=0", "count"),
        ("500,count=x", "count"),
        ("drop,oops", "fault"),
    ],
)
def test_bad_fault_specs_name_the_problem(spec: str, field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_fault(spec)
    assert caught.value.field == field


# --- idempotency ------------------------------------------------------------------------------


def test_a_repeated_idempotency_key_returns_the_first_answer(customer: Customer) -> None:
    body = {"customerId": "c", "title": "t"}
    first = customer.post("/v2.1/chat/sessions", body, **{"Idempotency-Key": "k1"})
    second = customer.post("/v2.1/chat/sessions", body, **{"Idempotency-Key": "k1"})
    assert first.json() == second.json()
    assert len(customer.stub.state.conversations) == 1
    other = customer.post(
        "/v2.1/chat/sessions", {"customerId": "c", "title": "other"}, **{"Idempotency-Key": "k1"}
    )
    assert (other.status_code, error_of(other)["code"]) == (409, "conflict")


# --- attachments ------------------------------------------------------------------------------


def announce(customer: Customer, conversation: str, **fields: Any) -> httpx.Response:
    body = {
        "conversationId": conversation,
        "name": "shot.png",
        "contentType": "image/png",
        "contentLength": 4,
    }
    return customer.post("/v2.1/chat/attachments", {**body, **fields})


def test_an_attachment_is_announced_uploaded_and_sent(customer: Customer, replied: str) -> None:
    announced = announce(customer, replied)
    assert announced.status_code == 201
    data = announced.json()
    upload = data["meta"]["upload"]
    assert upload["url"].startswith(customer.stub.url)
    uploaded = httpx.post(
        upload["url"], data=upload["fields"], files={"file": ("shot.png", b"\x89PNG", "image/png")}
    )
    assert uploaded.status_code == 204
    reference = {
        "id": data["data"]["id"],
        "name": "shot.png",
        "contentType": "image/png",
        "contentLength": 4,
    }
    sent = customer.reply(replied, "Here", attachments=[reference])
    assert sent.status_code == 201
    assert sent.json()["data"]["attributes"]["attachments"] == [reference]


def test_attachments_are_checked_for_type_size_upload_and_auth(
    customer: Customer, replied: str
) -> None:
    assert announce(customer, replied, contentType="application/zip").status_code == 415
    assert announce(customer, replied, contentLength=6 * 1024 * 1024).status_code == 413
    data = announce(customer, replied).json()
    upload = data["meta"]["upload"]
    never = customer.reply(replied, "Here", attachments=[{"id": data["data"]["id"]}])
    assert error_of(never)["meta"]["field"] == "attachments.0.id"
    short = httpx.post(
        upload["url"], data=upload["fields"], files={"file": ("s.png", b"\x89", "image/png")}
    )
    assert error_of(short)["meta"]["field"] == "file"
    keyed = httpx.post(
        upload["url"],
        data=upload["fields"],
        files={"file": ("s.png", b"1234", "image/png")},
        headers=customer.auth,
    )
    assert error_of(keyed)["meta"]["field"] == "Authorization"
    assert customer.stub.api_key not in keyed.text


# --- the command line -------------------------------------------------------------------------


def test_the_command_line_prints_a_url_serves_and_stops() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "assistant_flow.testing.stub",
            "--port",
            "0",
            "--api-key",
            "k-123",
            "--fault",
            "500@init,count=1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        auth = {"Authorization": "Bearer k-123"}
        first = httpx.get(f"{url}/v2.1/chat/assistants/asst_support/init", headers=auth)
        second = httpx.get(f"{url}/v2.1/chat/assistants/asst_support/init", headers=auth)
        assert (first.status_code, second.status_code) == (500, 200)
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0
    assert "k-123" not in stderr


def test_the_command_line_refuses_a_bad_assistant_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "assistants:\n  a:\n    dialog: d\n    start: s\n    nodes:\n      s: {body: hi}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "assistant_flow.testing.stub", "--assistants", str(broken)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "broken.yaml" in result.stderr
    assert "node 's'" in result.stderr


def test_the_package_imports_without_the_stub_extra() -> None:
    code = (
        "import sys; sys.modules['uvicorn'] = None; import assistant_flow\n"
        "try:\n    import assistant_flow.testing\nexcept ImportError as e:\n    print(e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert "pip install 'assistant-flow[stub]'" in result.stdout


# --- assistant files --------------------------------------------------------------------------

GOOD_NODE = "      s: {body: hi, end: handoff}\n"


@pytest.mark.parametrize(
    ("nodes", "message", "field"),
    [
        ("      s: {body: hi}\n", "node 's': no way on", "assistants.a.nodes.s"),
        (
            "      s: {body: hi, then: t}\n",
            "node 's': `then` names no node: 't'",
            "assistants.a.nodes.s.then",
        ),
        (
            "      s: {body: hi, colour: red, end: handoff}\n",
            "node 's': unknown key `colour`",
            "assistants.a.nodes.s.colour",
        ),
        (
            "      s: {template: carousel, body: hi, end: handoff}\n",
            "node 's': `template` must be one of",
            "assistants.a.nodes.s.template",
        ),
        (
            "      s: {template: quick_replies, body: hi, end: handoff}\n",
            "`quick_replies` must be a non-empty list",
            "assistants.a.nodes.s.quick_replies",
        ),
        (
            "      s:\n        template: quick_replies\n        body: hi\n"
            "        quick_replies: [{displayText: A, value: a}]\n        next: {b: s}\n",
            "`next` has 'b', which the node does not offer",
            "assistants.a.nodes.s.next.b",
        ),
        (
            "      s: {template: deflection, body: hi, articles: [{id: kb}], end: handoff}\n",
            "`version` must be a non-empty string",
            "assistants.a.nodes.s.articles.0.version",
        ),
        (
            "      s: {body: hi, then: t}\n      t: {body: yo, then: s}\n",
            "leads back to itself",
            "assistants.a.nodes.s.then",
        ),
        (
            "      s: {end: handoff}\n",
            "`body` must be a non-empty string",
            "assistants.a.nodes.s.body",
        ),
    ],
)
def test_a_bad_assistant_file_names_the_file_and_the_node(
    tmp_path: Path, nodes: str, message: str, field: str
) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text("assistants:\n  a:\n    dialog: d\n    start: s\n    nodes:\n" + nodes)
    with pytest.raises(InvalidInputError) as caught:
        load_assistants(path)
    assert str(caught.value).startswith(f"{path}: assistant 'a'")
    assert message in str(caught.value)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("assistants: [", "not valid YAML at line"),
        ("hello: 1\n", "`assistants` mapping at the top"),
        (
            "assistants:\n  a:\n    dialog: d\n    start: x\n    nodes:\n" + GOOD_NODE,
            "`start` names no node: 'x'",
        ),
    ],
)
def test_a_malformed_assistant_file_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInputError, match=message):
        load_assistants(path)


def test_a_missing_assistant_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="cannot read the assistant file"):
        KustomerStub(assistants=tmp_path / "absent.yaml")


def test_the_stub_plays_a_custom_assistant(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(
        "assistants:\n  asst_tiny:\n    dialog: dlg_t\n    start: hello\n    nodes:\n"
        "      hello: {body: Hi, default: bye}\n      bye: {body: Bye, end: conversation}\n"
    )
    with KustomerStub(assistants=path, api_key="k") as stub:
        customer = Customer(stub)
        init = customer.init("asst_tiny")
        conversation = customer.session(assistant="asst_tiny")
        assert (
            customer.reply(conversation, "hey", initAssistantPayload=cut(init)).status_code == 201
        )
        names = [event["name"] for event in customer.events(conversation)]
        customer.http.close()
    assert names == ["onMessageReceived", "onAssistantEnded", "onConversationEnded"]


def test_the_stub_runs_in_a_child_process_with_the_same_helpers() -> None:
    with StubProcess(rate_limit=50, faults=[Fault("500", "init")]) as stub:
        auth = {"Authorization": f"Bearer {stub.api_key}"}
        init = f"{stub.url}/v2.1/chat/assistants/asst_support/init"
        failed, served = httpx.get(init, headers=auth), httpx.get(init, headers=auth)
        stub.fault("429", "init", reset=0.1)
        limited = httpx.get(init, headers=auth)
        log = stub.requests()
        stub.reset()
        assert stub.requests() == []
    assert [failed.status_code, served.status_code, limited.status_code] == [500, 200, 429]
    assert served.headers["x-ratelimit-limit"] == "50"
    assert [entry["status"] for entry in log] == [500, 200, 429]
    assert stub.api_key not in repr(stub)


def test_the_child_process_gets_its_key_from_the_environment_not_argv() -> None:
    # Any user of the machine can read a process's command line (ps); not its environment.
    with StubProcess() as stub:
        process = stub._process
        assert process is not None
        argv = Path(f"/proc/{process.pid}/cmdline").read_bytes().decode()
        served = httpx.get(
            f"{stub.url}/v2.1/chat/assistants/asst_support/init",
            headers={"Authorization": f"Bearer {stub.api_key}"},
        )
    assert stub.api_key not in argv
    assert "--api-key" not in argv
    assert served.status_code == 200


def test_a_child_process_that_never_prints_its_url_fails_in_bounded_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("assistant_flow.testing._process._TIMEOUT", 0.5)
    silent = StubProcess()
    silent._command = [sys.executable, "-c", "import time; time.sleep(30)"]
    with pytest.raises(ConfigurationError, match=r"did not print its URL within 0\.5s"):
        silent.start()
    assert silent._process is None  # stopped, not left running


def test_auth_is_checked_before_a_fault_is_injected(customer: Customer) -> None:
    stub = customer.stub
    conversation = customer.session()
    stub.fault("500", "messages")
    body = {"conversationId": conversation, "customerId": "cust_1", "body": "Hi"}
    wrong = customer.post("/v2.1/chat/messages", body, Authorization="Bearer not-the-key")
    assert wrong.status_code == 401  # as Kustomer would, whatever else goes wrong
    # The fault is still queued, for the first authorised request.
    assert customer.post("/v2.1/chat/messages", body).status_code == 500


class RawTransport(Transport):
    """The least a transport does: route by isInAssistantMode, post JSON, read the JSON:API."""

    def __init__(self, stub: KustomerStub) -> None:
        self.http = httpx.Client(
            base_url=stub.url, headers={"Authorization": f"Bearer {stub.api_key}"}
        )

    def send(self, message: SendMessageOptions) -> SentMessage:
        wire = message.to_wire()
        assistant = wire.get("isInAssistantMode") is True
        route = "/v2.1/chat/assistant/messages" if assistant else "/v2.1/chat/messages"
        response = self.http.post(route, json=wire)
        assert response.status_code == 201, response.text
        data = response.json()["data"]
        return SentMessage(message_id=data["id"], **data["attributes"])


def test_what_the_flow_sends_passes_every_strict_check(kustomer_stub: KustomerStub) -> None:
    with StubClient(kustomer_stub.url, kustomer_stub.api_key) as client:
        transport = RawTransport(kustomer_stub)
        flow = Flow(transport)
        session = client.create_session("cust_1", "Help", assistant="asst_support")
        conv = flow.conversation(session["conversationId"])
        conv.start_assistant(client.init_assistant("asst_support"))
        cursor = 0

        def forward() -> None:
            nonlocal cursor
            page = client.events(session["conversationId"], cursor)
            cursor = page.next
            for event in page.events:
                flow.dispatch(event.name, event.payload)

        conv.choose("Can't log in")
        forward()
        conv.visit_article("kb_2fa")
        conv.choose("No, I need a person")
        forward()
        conv.send_message("Hello?")
        transport.http.close()
    assert conv.state == State.ENDED
    assert [body.get("isInAssistantMode") for body in kustomer_stub.sent()] == [True, True, False]


def test_a_reset_during_a_long_poll_answers_it_with_404(customer: Customer, replied: str) -> None:
    customer.events(replied)
    answers: list[httpx.Response] = []
    poller = Customer(customer.stub)

    def poll() -> None:
        url = f"/v2.1/chat/sessions/{replied}/events"
        params = {"after": customer.cursor, "wait": 20}
        answers.append(poller.http.get(url, params=params, headers=poller.auth, timeout=25))

    thread = threading.Thread(target=poll)
    thread.start()
    for _ in range(1000):  # until the poll waits on the server (10 s at most)
        if customer.stub.app._waiters:
            break
        thread.join(timeout=0.01)
    assert customer.stub.app._waiters, "the long poll never started waiting"
    customer.stub.reset()
    thread.join(timeout=25)
    poller.http.close()
    assert answers[0].status_code == 404
