"""The assistant_flow pytest plugin, loaded through the ``pytest11`` entry point.

Installing assistant-flow is enough. It gives:

* fixtures: ``memory_flow`` / ``async_memory_flow`` (a flow on ``MemoryTransport`` and
  ``MemoryStore``), ``kustomer_stub`` (a started local Kustomer stub, reset for each test;
  ``@pytest.mark.kustomer_assistants("bot.yaml")`` makes it play your assistant file),
  ``kustomer_stub_for`` (a stub for any assistant file) and ``kustomer_stub_server``;
* dialog scripts: every ``*.dialog.yaml`` (or ``*.dialog.yml``) file is collected as a test
  and run on ``--dialog-target`` (``auto`` by default);
* ``assert_payload`` / ``assert_payloads`` live in :mod:`assistant_flow.dialogs`.

This module holds hooks, a file-name check and constants only: the flow, the stores and the
runner are imported inside the fixtures and the dialog items that use them, so that every
pytest start stays quick; uvicorn and PyYAML (the ``stub`` extra) are imported only when a
stub fixture or a dialog script is used, so projects without the extra still run pytest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ._names import SUFFIXES, TARGETS

if TYPE_CHECKING:
    from .._flow import AsyncFlow, Flow
    from ..testing import KustomerStub
    from ._runner import DialogResult, StubPool

__all__ = [
    "DialogFile",
    "DialogItem",
    "async_memory_flow",
    "kustomer_stub",
    "kustomer_stub_for",
    "kustomer_stub_server",
    "memory_flow",
]

_POOL = pytest.StashKey["StubPool"]()
_MARKER = "kustomer_assistants"


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--dialog-target``: where collected dialog scripts send their messages."""
    group = parser.getgroup("assistant_flow", "assistant_flow dialog scripts")
    group.addoption(
        "--dialog-target",
        choices=TARGETS,
        default="auto",
        help="run *.dialog.yaml scripts on memory, the local stub, or a real org "
        "(KUSTOMER_BASE_URL / KUSTOMER_API_KEY); auto: the stub for a script whose assistant "
        "the stub plays, else memory (default: auto)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker and the session's pool of stubs."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(path): the kustomer_stub fixture plays this assistant YAML file "
        "(relative to the test file)",
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop every stub the session started."""
    pool = config.stash.get(_POOL, None)
    if pool is not None:
        pool.close()
        del config.stash[_POOL]


def _pool(config: pytest.Config) -> StubPool:
    if _POOL not in config.stash:  # the first test that needs a stub creates the pool
        from ._runner import StubPool  # noqa: PLC0415 - imported when first needed

        config.stash[_POOL] = StubPool()
    return config.stash[_POOL]


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def memory_flow() -> Flow:
    """A ``Flow`` on a fresh ``MemoryTransport`` (a fixed clock) and ``MemoryStore``.

    ``memory_flow.transport.sent`` holds every wire payload in order.
    """
    from .. import Flow, MemoryStore, MemoryTransport  # noqa: PLC0415 - see the docstring
    from ._runner import fixed_clock  # noqa: PLC0415

    return Flow(MemoryTransport(clock=fixed_clock()), MemoryStore())


@pytest.fixture
def async_memory_flow() -> AsyncFlow:
    """An ``AsyncFlow`` on a fresh ``MemoryTransport`` (a fixed clock) and ``MemoryStore``."""
    from .. import AsyncFlow, MemoryStore, MemoryTransport  # noqa: PLC0415
    from ._runner import fixed_clock  # noqa: PLC0415

    return AsyncFlow(MemoryTransport(clock=fixed_clock()), MemoryStore())


@pytest.fixture(scope="session")
def kustomer_stub_server(pytestconfig: pytest.Config) -> KustomerStub:
    """The session's stub with the shipped assistant, on a free loopback port.

    It is stopped when the session ends; prefer ``kustomer_stub``, which resets it.
    """
    return _pool(pytestconfig).get(None)


def _beside_test(request: pytest.FixtureRequest, path: str | Path) -> Path:
    """A relative assistant file is read next to the test's file, wherever pytest runs."""
    found = Path(path)
    return found if found.is_absolute() else Path(request.node.path).parent / found


@pytest.fixture
def kustomer_stub_for(
    request: pytest.FixtureRequest, pytestconfig: pytest.Config
) -> Callable[[str | Path], KustomerStub]:
    """``kustomer_stub_for("bot.yaml")``: a started stub playing that file, reset for you.

    Each file's stub is started once a session; a relative path is read next to the test's
    file, as the ``kustomer_assistants`` marker's is.
    """
    pool = _pool(pytestconfig)

    def get(assistants: str | Path) -> KustomerStub:
        return pool.get(_beside_test(request, assistants))

    return get


@pytest.fixture
def kustomer_stub(request: pytest.FixtureRequest, pytestconfig: pytest.Config) -> KustomerStub:
    """A started stub with nothing in it: sessions, requests and faults cleared for this test.

    It plays the shipped ``support.yaml``, or the file named by
    ``@pytest.mark.kustomer_assistants("path.yaml")`` (relative to the test's file).
    """
    marker = request.node.get_closest_marker(_MARKER)
    if marker is None:
        return _pool(pytestconfig).get(None)
    if len(marker.args) != 1 or not isinstance(marker.args[0], str | Path):
        raise pytest.UsageError(f"@pytest.mark.{_MARKER} takes one path, e.g. ('bot.yaml')")
    return _pool(pytestconfig).get(_beside_test(request, marker.args[0]))


# --- dialog scripts as test items ------------------------------------------------------------


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> DialogFile | None:
    """Collect ``*.dialog.yaml`` and ``*.dialog.yml`` files as dialog tests."""
    if file_path.name.endswith(SUFFIXES):
        collected: DialogFile = DialogFile.from_parent(parent, path=file_path)
        return collected
    return None


class DialogFile(pytest.File):
    """A dialog script file: one test item, the path it describes."""

    def collect(self) -> Iterator[DialogItem]:
        """The script's single item, named by the script's ``name`` (else the file's stem)."""
        from ._script import load_script  # noqa: PLC0415 - see the module docstring

        name = self.path.name
        for suffix in SUFFIXES:
            name = name.removesuffix(suffix)
        script = None
        try:
            script = load_script(self.path)
        except Exception:  # noqa: S110 - the item's run reports the mistake at its line
            pass
        else:
            name = script.name
        yield DialogItem.from_parent(self, name=name)


class DialogFailedError(AssertionError):
    """A dialog step was not as its script says."""

    def __init__(self, result: DialogResult) -> None:
        assert result.failure is not None  # only raised for a failed run
        super().__init__(result.failure.report(result.script.path))
        self.result = result


class DialogCrashedError(Exception):
    """An exception that is not the library's came out of a dialog step; it is the cause."""


class DialogItem(pytest.Item):
    """One dialog script run as a test, on the session's ``--dialog-target``."""

    def runtest(self) -> None:
        """Run the script; fail with the step, its line and the difference."""
        from .._exceptions import AssistantFlowError  # noqa: PLC0415 - see the docstring
        from ._runner import run_dialog  # noqa: PLC0415

        target = self.config.getoption("--dialog-target")
        try:
            result = run_dialog(self.path, target=target, stubs=_pool(self.config))
        except AssistantFlowError:
            raise
        except Exception as error:
            where = "; ".join(getattr(error, "__notes__", ())) or str(self.path)
            raise DialogCrashedError(f"{where}: {type(error).__name__}: {error}") from error
        if not result.passed:
            raise DialogFailedError(result)

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,  # noqa: ANN401 - pytest's own TracebackStyle, private
    ) -> str:
        """The step and the differences for a failed dialog, file:line for a script mistake."""
        from .._exceptions import DialogScriptError, InvalidInputError  # noqa: PLC0415

        error = excinfo.value
        if isinstance(error, DialogFailedError):
            return f"dialog {error.result.script.name!r} failed on {error.result.target}:\n{error}"
        if isinstance(error, DialogCrashedError) and error.__cause__ is not None:
            # A bug, most likely: the step, then where the exception came from.
            import traceback  # noqa: PLC0415

            cause = "".join(traceback.format_exception(error.__cause__)).rstrip()
            return f"dialog {self.name!r} crashed: {error}\n\n{cause}"
        if isinstance(error, DialogScriptError):
            return f"dialog script error: {error}"
        if isinstance(error, InvalidInputError):  # say, the assistant file the stub plays
            return f"dialog {self.path.name} could not start: {error}"
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        """Where pytest says the test lives."""
        return self.path, 0, f"dialog: {self.name}"
