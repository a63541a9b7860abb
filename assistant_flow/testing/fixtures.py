"""Pytest fixtures for the Kustomer stub.

Enable them in ``conftest.py`` with ``pytest_plugins = ["assistant_flow.testing.fixtures"]``.
``kustomer_stub`` is one server for the whole session (stopping uvicorn alone takes about
0.16 s), reset before each test: no sessions, events, requests, idempotency
keys or faults carry over from one test to the next.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._server import KustomerStub

__all__ = ["kustomer_stub", "kustomer_stub_server"]


@pytest.fixture(scope="session")
def kustomer_stub_server() -> Iterator[KustomerStub]:
    """The session's stub server, on a free loopback port; stopped after the last test."""
    with KustomerStub() as stub:
        yield stub


@pytest.fixture
def kustomer_stub(kustomer_stub_server: KustomerStub) -> KustomerStub:
    """A started stub with nothing in it: sessions, requests and faults cleared for this test."""
    kustomer_stub_server.reset()
    return kustomer_stub_server
