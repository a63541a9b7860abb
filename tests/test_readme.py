"""The README opens with its two commands, and its diagram is the machine's.

That its code runs, its scripts play and its links land: tests/test_docs.py.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.DOTALL | re.MULTILINE)


def test_the_readme_opens_with_the_two_commands() -> None:
    first = blocks("sh")[0]
    commands = [line.split("#")[0].strip() for line in first.splitlines() if line.strip()]
    assert commands == ["make run", "make test"]
    assert README.index("```sh") < README.index("```python")


def test_the_readme_diagram_is_the_committed_one() -> None:
    [mermaid] = blocks("mermaid")
    assert mermaid == (ROOT / "diagrams" / "lifecycle.mmd").read_text()
