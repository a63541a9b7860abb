"""Formerly the stub's pytest fixtures; they now come with the assistant_flow pytest plugin.

Installing assistant-flow registers the plugin (``assistant_flow.dialogs.pytest_plugin``,
through the ``pytest11`` entry point), which gives ``kustomer_stub``, ``kustomer_stub_for``,
``kustomer_stub_server`` and the flow fixtures. This module defines nothing, so a
``conftest.py`` that still says ``pytest_plugins = ["assistant_flow.testing.fixtures"]`` keeps
working (and ``pytest --fixtures`` lists each fixture once); the line can be deleted.
"""
