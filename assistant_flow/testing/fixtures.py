"""The stub's pytest fixtures, kept for ``pytest_plugins = ["assistant_flow.testing.fixtures"]``.

They now live in the assistant_flow pytest plugin (``assistant_flow.dialogs.pytest_plugin``),
which installing the package loads by itself; this module re-exports the same fixtures, so a
``conftest.py`` that still names it keeps working and gets the very same stub.
"""

from __future__ import annotations

from ..dialogs.pytest_plugin import kustomer_stub, kustomer_stub_server

__all__ = ["kustomer_stub", "kustomer_stub_server"]
