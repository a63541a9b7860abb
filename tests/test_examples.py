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
    spec.loader.exec_module(module)
    return module


def test_the_full_dialog_sets_every_lifecycle_field() -> None:
    first, deflection_answer, to_agent = load("full_dialog").run().sent
    assert (first["body"], first["payload"]) == ("Can't log in", "login")
    assert first["initAssistantPayload"]["assistant"] == "asst_support"
    assert deflection_answer["payload"] == "handoff"
    assert deflection_answer["isInAssistantMode"] is True
    assert [a["visited"] for a in deflection_answer["lastDeflection"]["articles"]] == [1, 0]
    assert "initAssistantPayload" not in deflection_answer
    assert to_agent["isInAssistantMode"] is False
    assert set(to_agent) == {"conversationId", "body", "isInAssistantMode"}


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
        ("full_dialog.py", "3 messages sent"),
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
