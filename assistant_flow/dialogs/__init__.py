"""Testing dialog paths: payload assertions, YAML dialog scripts and their runner.

``assert_payload`` / ``assert_payloads`` compare wire payloads field by field; a dialog script
(``*.dialog.yaml``, see ``docs/dialog-scripts.md``) describes one conversation path, and
``run_dialog`` plays it against ``MemoryTransport``, the local Kustomer stub or a real org.
The pytest plugin (``assistant_flow.dialogs.pytest_plugin``, loaded by installing the
package) collects the scripts as tests. Importing this package needs only the core
dependencies; reading a script needs PyYAML, the stub target the ``stub`` extra.
"""

from ._compare import (
    ABSENT,
    Difference,
    PayloadMismatchError,
    assert_payload,
    assert_payloads,
    payload_differences,
)
from ._errors import DialogScriptError
from ._runner import (
    TARGETS,
    DialogResult,
    OrgSettings,
    StepFailure,
    StubPool,
    iter_scripts,
    run_dialog,
)
from ._script import DialogScript, Step, is_dialog_script, load_script

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
