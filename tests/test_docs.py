"""The documentation is true: its code runs, its files load, its scripts play, its links land.

Every Markdown file (README.md and docs/*.md) is read block by block, in order, in a fresh
temporary working directory and a fresh namespace of its own:

* a ```python block runs as written; blocks of one file share one namespace, in order;
* a ```yaml block must start with a comment saying what it is:
  ``# assistant file: NAME.yaml`` is written to NAME.yaml and loaded with
  ``assistant_flow.testing.load_assistants``; ``# dialog script: PATH`` is written to PATH
  and must pass under ``assistant_flow.dialogs.run_dialog``; ``# dialog script (fails): PATH``
  must fail, and every line of its failure report must appear in the next ```text block;
  ``# fragment`` marks a piece of a file that is not meant to load on its own;
* every relative link resolves to a file in the repository, and every ``#anchor`` to a
  heading of the file it points into.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from pathlib import Path

import pytest
import structlog

from assistant_flow.dialogs import run_dialog
from assistant_flow.testing import load_assistants

ROOT = Path(__file__).parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", flags=re.DOTALL | re.MULTILINE)
MARKER = re.compile(
    r"^# (?:(?P<assistant>assistant file): (?P<file>\S+)"
    r"|(?P<dialog>dialog script)(?P<fails> \(fails\))?: (?P<script>\S+)"
    r"|(?P<fragment>fragment)\b)"
)


def ids(path: Path) -> str:
    return str(path.relative_to(ROOT))


def fences(text: str) -> list[tuple[str, str]]:
    return [(info.strip().split(" ")[0], body) for info, body in FENCE.findall(text)]


def run_yaml(block: str, following: list[tuple[str, str]], where: str, cwd: Path) -> None:
    marker = MARKER.match(block)
    assert marker, (
        f"{where}: a yaml block must start with `# assistant file: NAME`, "
        "`# dialog script: PATH`, `# dialog script (fails): PATH` or `# fragment`"
    )
    if marker["fragment"]:
        return
    if marker["assistant"]:
        target = cwd / marker["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block)
        assert load_assistants(target), f"{where}: the assistant file defines no assistant"
        return
    relative = Path(marker["script"])
    script = cwd / relative
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(block)
    result = run_dialog(script)
    if not marker["fails"]:
        report = result.failure.report(relative) if result.failure else ""
        assert result.passed, f"{where}: the dialog script failed:\n{report}"
        return
    assert result.failure is not None, f"{where}: the script shown as failing passed"
    shown = next((body for kind, body in following if kind == "text"), None)
    assert shown is not None, f"{where}: a failing script needs its failure in a ```text block"
    missing = [
        line.strip()
        for line in result.failure.report(relative).splitlines()
        if line.strip() and line.strip() not in shown
    ]
    assert missing == [], f"{where}: the failure shown is not the one printed"


@pytest.mark.parametrize("doc", DOCS, ids=ids)
def test_every_block_of_the_doc_runs_as_shown(
    doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    namespace: dict[str, object] = {"__name__": f"doc_{doc.stem}"}
    blocks = fences(doc.read_text())
    # A block may set up stdlib logging, as the README shows; the other tests must not see it.
    root_handlers, root_level = logging.root.handlers[:], logging.root.level
    try:
        for index, (kind, body) in enumerate(blocks):
            where = f"{ids(doc)} block {index} ({kind})"
            if kind == "python":
                try:
                    exec(compile(body, where, "exec"), namespace)
                except Exception as error:  # pragma: no cover - the message is the point
                    pytest.fail(f"{where} failed: {error!r}")
            elif kind in ("yaml", "yml"):
                run_yaml(body, blocks[index + 1 :], where, tmp_path)
    finally:
        structlog.reset_defaults()
        logging.root.handlers[:] = root_handlers
        logging.root.setLevel(root_level)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    kept = "".join(char for char in text if char in " -_" or unicodedata.category(char)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE):
        base = slug(heading)
        name, n = base, 0
        while name in found:
            n += 1
            name = f"{base}-{n}"
        found.add(name)
    return found


@pytest.mark.parametrize("doc", DOCS, ids=ids)
def test_every_relative_link_and_anchor_lands_in_the_repository(doc: Path) -> None:
    text = re.sub(r"`[^`\n]*`", "", FENCE.sub("", doc.read_text()))
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (doc.parent / path_part).resolve() if path_part else doc
        inside = ROOT.resolve() in (resolved, *resolved.parents) and resolved.exists()
        lands = not anchor or (resolved.suffix == ".md" and anchor in anchors(resolved))
        if not (inside and lands):
            broken.append(target)
    assert broken == []


def test_the_docs_index_is_the_docs_folder() -> None:
    readme = (ROOT / "README.md").read_text()
    listed = set(re.findall(r"\]\((docs/[\w.-]+\.md)\)", readme))
    assert listed == {f"docs/{doc.name}" for doc in DOCS[1:]}
