"""Testing dialog paths: payload assertions, YAML dialog scripts and their runner.

``assert_payload`` / ``assert_payloads`` compare wire payloads field by field; a dialog script
(``*.dialog.yaml``, see ``docs/dialog-scripts.md``) describes one conversation path, and
``run_dialog`` plays it against ``MemoryTransport``, the local Kustomer stub or a real org.
The pytest plugin (``assistant_flow.dialogs.pytest_plugin``, loaded by installing the
package) collects the scripts as tests. Importing this package needs only the core
dependencies; reading a script needs PyYAML, the stub target the ``stub`` extra.

The names are imported on first use, so that the pytest plugin, which lives in this package,
does not load the runner at every pytest start.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .._exceptions import DialogScriptError
from ._names import TARGETS

if TYPE_CHECKING:
    from ._compare import (
        ABSENT,
        Difference,
        PayloadMismatchError,
        assert_payload,
        assert_payloads,
        payload_differences,
    )
    from ._runner import (
        DialogResult,
        OrgSettings,
        StepFailure,
        StubPool,
        iter_scripts,
        run_dialog,
    )
    from ._script import DialogScript, Step, is_dialog_script, load_script

_HOMES = {
    "ABSENT": "_compare",
    "Difference": "_compare",
    "PayloadMismatchError": "_compare",
    "assert_payload": "_compare",
    "assert_payloads": "_compare",
    "payload_differences": "_compare",
    "DialogResult": "_runner",
    "OrgSettings": "_runner",
    "StepFailure": "_runner",
    "StubPool": "_runner",
    "iter_scripts": "_runner",
    "run_dialog": "_runner",
    "DialogScript": "_script",
    "Step": "_script",
    "is_dialog_script": "_script",
    "load_script": "_script",
}

__all__ = [
    "ABSENT",
    "TARGETS",
    "DialogResult",
    "DialogScript",
    "DialogScriptError",
    "Difference",
    "OrgSettings",
    "PayloadMismatchError",
    "Step",
    "StepFailure",
    "StubPool",
    "assert_payload",
    "assert_payloads",
    "is_dialog_script",
    "iter_scripts",
    "load_script",
    "payload_differences",
    "run_dialog",
]


def __getattr__(name: str) -> Any:  # noqa: ANN401 - a class, a function or ABSENT
    """Import a public name from its module on first use."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value
