"""A local Kustomer stand-in for development and tests (needs the ``stub`` extra).

``pip install 'assistant-flow[stub]'`` brings uvicorn and PyYAML. Then::

    from assistant_flow.testing import KustomerStub, StubClient

    with KustomerStub() as stub:                      # http://127.0.0.1:<free port>
        client = StubClient(stub.url, stub.api_key)
        init = client.init_assistant("asst_support")  # initAssistant's answer
        ...

Tests get a started stub from the ``kustomer_stub`` fixture, which the assistant_flow pytest
plugin provides once the package is installed (no ``conftest.py`` line needed). From a shell:
``python -m assistant_flow.testing.stub --port 0``.
"""

from __future__ import annotations

try:
    import uvicorn  # noqa: F401 - checked here so that the hint below is what users see
    import yaml  # noqa: F401
except ImportError as missing:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "assistant_flow.testing needs the `stub` extra: pip install 'assistant-flow[stub]'"
    ) from missing

from ._assistants import DEFAULT_ASSISTANTS, Assistant, Node, load_assistants
from ._client import AsyncStubClient, EventPage, StubClient, StubEvent
from ._faults import FAULT_KINDS, ROUTES, Fault, parse_fault
from ._process import StubProcess
from ._server import KustomerStub

__all__ = [
    "DEFAULT_ASSISTANTS",
    "FAULT_KINDS",
    "ROUTES",
    "Assistant",
    "AsyncStubClient",
    "EventPage",
    "Fault",
    "KustomerStub",
    "Node",
    "StubClient",
    "StubEvent",
    "StubProcess",
    "load_assistants",
    "parse_fault",
]
