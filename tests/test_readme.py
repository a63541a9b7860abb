"""The README's code runs as written, and its diagram is the machine's."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import structlog

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.DOTALL | re.MULTILINE)


def test_the_readme_opens_with_the_two_commands() -> None:
    first = blocks("sh")[0]
    commands = [line.split("#")[0].strip() for line in first.splitlines() if line.strip()]
    assert commands == ["make run", "make test"]
    assert README.index("```sh") < README.index("```python")


def test_every_python_block_in_the_readme_runs() -> None:
    python = blocks("python")
    assert len(python) >= 4
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    namespace: dict[str, object] = {}
    try:
        for index, code in enumerate(python):
            try:
                exec(compile(code, f"README.md python block {index}", "exec"), namespace)
            except Exception as error:  # pragma: no cover - the message is the point
                pytest.fail(f"README python block {index} failed: {error!r}")
    finally:
        structlog.reset_defaults()


def test_the_readme_diagram_is_the_committed_one() -> None:
    [mermaid] = blocks("mermaid")
    assert mermaid == (ROOT / "diagrams" / "lifecycle.mmd").read_text()
