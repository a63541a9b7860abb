r"""Run the Kustomer stub from the command line.

    python -m assistant_flow.testing.stub --port 0 --assistants FILE --api-key KEY \\
        --fault 429@assistant_messages,count=2,reset=1

It prints the base URL on the first line of stdout, then serves until interrupted (Ctrl-C or
SIGTERM). The API key comes from ``--api-key``, else the ``ASSISTANT_FLOW_STUB_API_KEY``
environment variable (which ``ps`` does not show, unlike the command line), else
``stub-api-key``; it is never printed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .._exceptions import InvalidInputError
from ._faults import Fault, parse_fault
from ._server import KustomerStub

__all__ = ["API_KEY_VARIABLE", "DEFAULT_CLI_API_KEY", "main"]

DEFAULT_CLI_API_KEY = "stub-api-key"
"""The API key of a stub started from the command line without ``--api-key`` or the variable."""

API_KEY_VARIABLE = "ASSISTANT_FLOW_STUB_API_KEY"
"""The environment variable that gives the stub its API key when ``--api-key`` is absent."""


def _parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog or "python -m assistant_flow.testing.stub",
        description="A local stand-in for a Kustomer org, for development and tests.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (0)")
    parser.add_argument("--assistants", help="assistant YAML file (the shipped support.yaml)")
    parser.add_argument(
        "--api-key",
        default=None,
        help=f"the Bearer key clients send (${API_KEY_VARIABLE}, else {DEFAULT_CLI_API_KEY})",
    )
    parser.add_argument(
        "--rate-limit", type=int, default=1000, help="requests a minute before 429s (1000)"
    )
    parser.add_argument("--lenient", action="store_true", help="skip the assistant-protocol checks")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND[@ROUTE][,key=value...]",
        help="inject a fault: KIND is 429, 500, slow or drop; e.g. 429@messages,count=2,reset=1",
    )
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Start the stub, print its URL, serve until SIGINT or SIGTERM; the exit status.

    ``prog`` is the name ``--help`` and usage errors show (``assistant-flow stub`` wraps it).
    """
    parser = _parser(prog)
    options = parser.parse_args(argv)
    try:
        faults: list[Fault] = [parse_fault(spec) for spec in options.fault]
        stub = KustomerStub(
            host=options.host,
            port=options.port,
            api_key=options.api_key or os.environ.get(API_KEY_VARIABLE) or DEFAULT_CLI_API_KEY,
            assistants=options.assistants,
            strict=not options.lenient,
            rate_limit=options.rate_limit,
            faults=faults,
        )
    except InvalidInputError as error:
        parser.error(str(error))
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    with stub:
        print(stub.url, flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
