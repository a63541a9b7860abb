"""Every example runs, standalone and imported, and sends what its docstring promises."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_memory_dialog_sets_every_lifecycle_field() -> None:
    first, deflection_answer, to_agent = load("memory_dialog").run().sent
    assert (first["body"], first["payload"]) == ("Can't log in", "login")
    assert first["initAssistantPayload"]["assistant"] == "asst_support"
    assert deflection_answer["payload"] == "handoff"
    assert deflection_answer["isInAssistantMode"] is True
    assert [a["visited"] for a in deflection_answer["lastDeflection"]["articles"]] == [1, 0]
    assert "initAssistantPayload" not in deflection_answer
    assert to_agent["isInAssistantMode"] is False
    assert set(to_agent) == {"conversationId", "body", "isInAssistantMode"}


def test_the_full_dialog_over_http_sends_every_lifecycle_field() -> None:
    example = load("full_dialog")
    lines: list[str] = []
    result = example.run(say=lines.append)
    assert example.problems(result) == []
    first, deflection_answer, to_agent = result.requests
    assert [r["path"] for r in result.requests] == [
        "/v2.1/chat/assistant/messages",
        "/v2.1/chat/assistant/messages",
        "/v2.1/chat/messages",
    ]
    assert [r["status"] for r in result.requests] == [201, 201, 201]
    for request in result.requests:
        assert request["headers"]["idempotency-key"]
        assert "authorization" not in request["headers"]
    conversation = first["body"]["conversationId"]

    body = first["body"]
    assert set(body) == {
        "conversationId",
        "customerId",
        "body",
        "payload",
        "isInAssistantMode",
        "initAssistantPayload",
    }
    assert (body["body"], body["payload"], body["isInAssistantMode"]) == (
        "Can't log in",
        "login",
        True,
    )
    assert body["customerId"] == "cust_demo_1"
    payload = body["initAssistantPayload"]
    assert set(payload) == {"assistant", "dialog", "node", "initialMessages"}
    assert (payload["assistant"], payload["dialog"], payload["node"]) == (
        "asst_support",
        "dlg_welcome",
        "welcome",
    )
    [greeting] = payload["initialMessages"]
    assert set(greeting) == {
        "meta",
        "direction",
        "directionType",
        "importedAt",
        "trackingId",
        "lang",
    }
    assert set(greeting["meta"]) == {"template"}
    assert [a["value"] for a in greeting["meta"]["template"]["actions"]] == [
        "billing",
        "login",
        "human",
    ]

    body = deflection_answer["body"]
    assert set(body) == {
        "conversationId",
        "customerId",
        "body",
        "payload",
        "isInAssistantMode",
        "lastDeflection",
    }
    assert (body["body"], body["payload"], body["isInAssistantMode"]) == (
        "No, I need a person",
        "handoff",
        True,
    )
    assert body["lastDeflection"] == {
        "articles": [
            {
                "id": "kb_reset",
                "version": "4",
                "visited": 1,
                "lang": "en_us",
                "title": "Reset your password",
                "url": "https://help.example.test/en_us/reset-password",
            },
            {
                "id": "kb_2fa",
                "version": "2",
                "visited": 0,
                "lang": "en_us",
                "title": "Two-factor codes not arriving",
                "url": "https://help.example.test/en_us/2fa",
            },
        ]
    }

    assert to_agent["body"] == {
        "conversationId": conversation,
        "customerId": "cust_demo_1",
        "body": "Hi, I still cannot log in after resetting my password.",
        "isInAssistantMode": False,
    }
    assert result.events == [
        "onMessageReceived",
        "onMessageReceived",
        "onMessageReceived",
        "onAssistantEnded",
        "onMessageReceived",
    ]
    assert any("onAssistantEnded" in line for line in lines)


def test_the_full_dialog_reports_what_is_off() -> None:
    example = load("full_dialog")
    result = example.run()
    result.requests[2]["body"]["isInAssistantMode"] = True
    result.requests[0]["route"] = "messages"
    assert example.problems(result) == [
        "messages went to ['messages', 'assistant_messages', 'messages']",
        "isInAssistantMode was [True, True, True]",
    ]


def test_the_quick_reply_example_answers_by_value_and_by_node() -> None:
    lines: list[str] = []
    greeting_answer, node_answer = load("quick_replies").run(say=lines.append).sent
    assert (greeting_answer["body"], greeting_answer["payload"]) == ("Yes, an order", "order")
    assert "initAssistantPayload" in greeting_answer
    assert (node_answer["body"], node_answer["payload"]) == ("OLED", "tv_oled")
    assert any("'Fridges' was not offered" in line for line in lines)


def test_the_deflection_example_reports_visits_once() -> None:
    question, answer, later = asyncio.run(load("deflection").run()).sent
    assert "lastDeflection" not in question
    assert [a["visited"] for a in answer["lastDeflection"]["articles"]] == [2, 0]
    assert "lastDeflection" not in later


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("full_dialog.py", "3 messages sent over HTTP and accepted by the stub"),
        ("memory_dialog.py", "3 messages sent"),
        ("quick_replies.py", '"payload": "tv_oled"'),
        ("deflection.py", '"visited": 2'),
    ],
)
def test_each_example_runs_as_a_script(script: str, expected: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout
    assert result.stderr == ""
