"""The ``assistant-flow`` command line (also ``python -m assistant_flow``).

``run`` plays dialog scripts, ``diagram`` redraws the lifecycle diagrams, ``stub`` serves the
local Kustomer stub and ``schema`` prints the JSON Schema of the wire models. Exit status: 0
when everything passed, 1 when a dialog failed, 2 when a script could not be judged (a mistake
in it, a broken assistant file, or a crash: each is that script's ERROR, its reason indented
under the ERROR line, and the run goes on; ``--traceback`` adds the traceback of a crash) or
for a usage mistake (one line on stderr, after argparse's usage line when argparse caught it).
Every argument is checked before anything runs: a DIALOG that does not exist, an ``--out``
that is no file name, and for ``stub`` a port outside 0-65535, a host that is not loopback, a
number that is not one, an assistant file that is missing or broken: each is a usage mistake,
never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import structlog
from pydantic.json_schema import models_json_schema

from ._exceptions import DialogScriptError, InvalidInputError
from ._messages import (
    InitAssistantPayload,
    InitAssistantResponse,
    ReceivedMessage,
    SendMessageOptions,
    SentMessage,
)
from .dialogs._names import TARGETS

if TYPE_CHECKING:
    from .dialogs import OrgSettings

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "console", "main", "wire_schema"]

EXIT_OK = 0
"""Every dialog passed (or the command did its job)."""
EXIT_FAILED = 1
"""At least one dialog failed a step."""
EXIT_USAGE = 2
"""A usage mistake, a script mistake or a missing tool: nothing was judged."""

_PROG = "assistant-flow"

# Models that go out are described as they serialise; models that come in as they validate.
_SCHEMA_MODELS: list[tuple[type[Any], str]] = [
    (SendMessageOptions, "serialization"),
    (InitAssistantPayload, "serialization"),
    (InitAssistantResponse, "validation"),
    (SentMessage, "validation"),
    (ReceivedMessage, "validation"),
]


class _UsageError(Exception):
    """A mistake the user can fix; reported in one line on stderr, exit status 2."""


def _path_argument(text: str) -> str:
    """An argparse ``type``: a name a file can have (not empty, no NUL character)."""
    if not text or "\0" in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a file name")
    return text


def _dialog_argument(text: str) -> str:
    """An argparse ``type``: an existing file or directory, checked before anything runs."""
    _path_argument(text)
    path = Path(text)
    try:
        found = path.is_file() or path.is_dir()
    except (OSError, ValueError):  # a name too long for the system, say
        found = False
    if not found:
        raise argparse.ArgumentTypeError(f"no such file or directory: {text!r}")
    return text


def wire_schema() -> dict[str, Any]:
    """One JSON Schema document (draft 2020-12) with every wire model under ``$defs``."""
    _, schema = models_json_schema(
        [(model, mode) for model, mode in _SCHEMA_MODELS],  # type: ignore[misc]
        by_alias=True,
        title="assistant_flow wire models",
        description="Kustomer Core SDK shapes, camelCase as on the wire (sendMessage options, "
        "initAssistant answers, sent and received messages).",
    )
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


# --- run -------------------------------------------------------------------------------------


def _status_line(status: str, path: Path, seconds: float, detail: str = "") -> str:
    line = f"{status:<6} {path}  ({seconds:.2f} s)"
    return f"{line}\n{detail}" if detail else line


def _indent(text: str) -> str:
    return "\n".join(f"       {line}" for line in text.splitlines())


def _check_org(options: argparse.Namespace) -> OrgSettings | None:
    """The org settings, checked once before any script runs (a mistake there is usage)."""
    from .dialogs import OrgSettings  # noqa: PLC0415
    from .transports.http import HTTPTransport  # noqa: PLC0415

    if options.target != "org":
        return None
    try:
        org = OrgSettings.from_env()
        HTTPTransport(org.base_url, api_key=org.api_key).close()  # checks the URL
    except DialogScriptError as error:
        raise _UsageError(error.reason) from None
    return org


def _reason(path: Path, error: Exception, options: argparse.Namespace) -> str:
    """Why a script could not be judged, in words; the traceback only when asked for."""
    if isinstance(error, DialogScriptError):
        return str(error)
    lines = [f"{path}: {type(error).__name__}: {error}", *getattr(error, "__notes__", ())]
    if isinstance(error, InvalidInputError) and not isinstance(error, DialogScriptError):
        lines.append("(the target or the assistant file this dialog needs is not usable)")
    if options.traceback:
        lines.append("".join(traceback.format_exception(error)).rstrip())
    return "\n".join(lines)


def _run(options: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .dialogs import StubPool, iter_scripts, run_dialog  # noqa: PLC0415

    paths = list(iter_scripts(options.dialogs))
    if not paths:
        raise _UsageError("no dialog scripts found (files named *.dialog.yaml)")
    org = _check_org(options)
    counts = {"passed": 0, "failed": 0, "errored": 0}
    started = time.perf_counter()
    stubs = StubPool()
    try:
        for path in paths:
            began = time.perf_counter()
            try:
                result = run_dialog(path, target=options.target, stubs=stubs, org=org)
            except ImportError as error:  # the stub target without the `stub` extra
                raise _UsageError(f"{error}") from None
            except Exception as error:
                counts["errored"] += 1
                detail = _indent(_reason(path, error, options))
                print(_status_line("ERROR", path, time.perf_counter() - began, detail), file=out)
                out.flush()
                continue
            if result.passed:
                counts["passed"] += 1
                print(_status_line("PASS", path, result.duration), file=out)
            else:
                assert result.failure is not None  # not passed means a failure
                counts["failed"] += 1
                detail = _indent(result.failure.report(path))
                print(_status_line("FAIL", path, result.duration, detail), file=out)
            out.flush()
    finally:
        stubs.close()
    total = time.perf_counter() - started
    print(file=out)
    print(f"{'dialogs':<10}{'passed':>8}{'failed':>8}{'errored':>9}{'time':>10}", file=out)
    print(
        f"{len(paths):<10}{counts['passed']:>8}{counts['failed']:>8}{counts['errored']:>9}"
        f"{total:>9.2f}s",
        file=out,
    )
    if counts["errored"]:
        return EXIT_USAGE
    return EXIT_FAILED if counts["failed"] else EXIT_OK


# --- the other commands ----------------------------------------------------------------------


def _diagram(options: argparse.Namespace, out: TextIO) -> int:
    from ._machine import write_diagrams  # noqa: PLC0415

    try:
        written = write_diagrams(options.out)
    except FileNotFoundError as error:
        # The Mermaid and DOT files are written before the SVG needs Graphviz: list them.
        for name in ("lifecycle.mmd", "lifecycle.dot"):
            print(Path(options.out) / name, file=out)
        raise _UsageError(
            f"{error} (or brew install graphviz; https://graphviz.org/download/), "
            "then run `assistant-flow diagram` again for lifecycle.svg"
        ) from None
    except subprocess.CalledProcessError as error:
        raise _UsageError(
            f"Graphviz `dot` failed (exit status {error.returncode}) writing lifecycle.svg"
        ) from None
    except OSError as error:
        raise _UsageError(f"cannot write to {options.out}: {error.strerror or error}") from None
    for path in written:
        print(path, file=out)
    return EXIT_OK


def _schema(options: argparse.Namespace, out: TextIO) -> int:
    text = json.dumps(wire_schema(), indent=2, sort_keys=True) + "\n"
    if options.out is None:
        out.write(text)
        return EXIT_OK
    try:
        Path(options.out).write_text(text, encoding="utf-8")
    except OSError as error:
        raise _UsageError(f"cannot write {options.out}: {error.strerror or error}") from None
    print(options.out, file=out)
    return EXIT_OK


def _stub(arguments: list[str], out: TextIO, err: TextIO) -> int:
    try:
        from .testing import stub  # noqa: PLC0415 - the `stub` extra
    except ImportError as error:
        raise _UsageError(str(error)) from None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return stub.main(arguments, prog=f"{_PROG} stub")
    except SystemExit as exit_:  # its parser exits 2 on a usage mistake, 0 for --help
        code = exit_.code
        return EXIT_OK if code is None else code if isinstance(code, int) else EXIT_USAGE


def _package_version() -> str:
    from . import __version__  # noqa: PLC0415 - the package imports this module

    return __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Kustomer conversational assistants: play dialog scripts, draw the "
        "lifecycle, serve a local Kustomer stub, export the wire schema.",
        epilog="Exit status: 0 all passed, 1 a dialog failed, 2 a usage or script mistake.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_package_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = commands.add_parser(
        "run",
        help="play dialog scripts (*.dialog.yaml) and report each",
        description="Play each dialog script, one line per script, then a summary table. "
        "Directories are searched for *.dialog.yaml and *.dialog.yml files.",
        epilog="The org target reads KUSTOMER_BASE_URL, KUSTOMER_API_KEY and, if set, "
        "KUSTOMER_CUSTOMER_ID from the environment. Exit status: 0 all passed, 1 a dialog "
        "failed, 2 a script mistake or bad usage.",
    )
    run.add_argument(
        "dialogs",
        nargs="+",
        metavar="DIALOG",
        type=_dialog_argument,
        help="script files or directories (each must exist)",
    )
    run.add_argument(
        "--target",
        choices=TARGETS,
        default="auto",
        help="where messages go: MemoryTransport, a local stub, or a real org; auto (the "
        "default) uses the stub for scripts whose `assistant` the stub plays, else memory",
    )
    run.add_argument(
        "--traceback",
        action="store_true",
        help="show the traceback of a script that crashed (an ERROR that is not a script mistake)",
    )
    diagram = commands.add_parser(
        "diagram",
        help="redraw the lifecycle diagrams (Mermaid, DOT, SVG)",
        description="Write lifecycle.mmd, lifecycle.dot and lifecycle.svg from the machine. "
        "The SVG needs Graphviz's `dot` on the PATH.",
    )
    diagram.add_argument(
        "--out", default="diagrams", type=_path_argument, help="directory to write to (diagrams)"
    )
    commands.add_parser(
        "stub",
        help="serve the local Kustomer stub (options: assistant-flow stub --help)",
        description="Serve the local Kustomer stub; see `assistant-flow stub --help`.",
        add_help=False,
    )
    schema = commands.add_parser(
        "schema",
        help="print the JSON Schema of the wire models",
        description="The JSON Schema (draft 2020-12) of the wire models, camelCase as on the "
        "wire: SendMessageOptions, InitAssistantPayload, InitAssistantResponse, SentMessage, "
        "ReceivedMessage.",
    )
    schema.add_argument("--out", type=_path_argument, help="write to this file instead of stdout")
    return parser


def main(
    argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run the command line; the exit status (0 passed, 1 a dialog failed, 2 a mistake)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    stdout = out or sys.stdout
    stderr = err or sys.stderr
    try:
        if arguments[:1] == ["stub"]:  # its options are the stub's own parser's
            return _stub(arguments[1:], stdout, stderr)
        parser = _parser()
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                options = parser.parse_args(arguments)
        except SystemExit as exit_:  # argparse exits 2 on a usage mistake, 0 for --help
            return int(exit_.code or 0)
        if options.command == "run":
            return _run(options, stdout, stderr)
        if options.command == "diagram":
            return _diagram(options, stdout)
        return _schema(options, stdout)
    except (_UsageError, InvalidInputError) as error:
        print(f"{_PROG}: error: {error}", file=stderr)
        return EXIT_USAGE


def console() -> None:
    """The ``assistant-flow`` console script: quiet logging, then :func:`main`."""
    # The flow's info events would bury the report; warnings and errors still show.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    sys.exit(main())
