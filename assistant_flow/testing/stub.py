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
import math
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from types import FrameType

from .._exceptions import ConfigurationError, InvalidInputError
from ..transports._wire import is_loopback
from ._faults import Fault, parse_fault
from ._server import KustomerStub

__all__ = ["API_KEY_VARIABLE", "DEFAULT_CLI_API_KEY", "main"]

DEFAULT_CLI_API_KEY = "stub-api-key"
"""The API key of a stub started from the command line without ``--api-key`` or the variable."""

API_KEY_VARIABLE = "ASSISTANT_FLOW_STUB_API_KEY"
"""The environment variable that gives the stub its API key when ``--api-key`` is absent."""

# The keys a client can send: HTTPTransport refuses any other (a space would split the header).
_KEY_SHAPE = re.compile(r"[\x21-\x7e]+")
_KEY_RULE = "must be printable ASCII without spaces (the key clients send)"


# --- argparse types: a mistake is argparse's one-line error and exit status 2 -----------------


def _whole_number(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:  # also a number of more than 4,300 digits
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number ({what})") from None


def _port(text: str) -> int:
    port = _whole_number(text, "a port, 0 to 65535")
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"{port} is not a port: use 0 to 65535 (0 picks a free one)"
        )
    return port


def _rate_limit(text: str) -> int:
    limit = _whole_number(text, "requests a minute")
    if limit < 1:
        raise argparse.ArgumentTypeError(
            f"{limit} is not a rate limit: use 1 request a minute or more"
        )
    return limit


def _host(text: str) -> str:
    if not is_loopback(text):
        raise argparse.ArgumentTypeError(
            f"{text[:60]!r}: the stub listens on loopback only: use 127.0.0.1, ::1 or localhost"
        )
    return text


def _assistant_file(text: str) -> str:
    try:
        found = bool(text) and Path(text).is_file()
    except (OSError, ValueError):  # a name too long, or with a NUL in it
        found = False
    if not found:
        raise argparse.ArgumentTypeError(f"no such file: {text[:200]!r}")
    return text


def _api_key(text: str) -> str:
    if not _KEY_SHAPE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"the key {_KEY_RULE}")  # never the key itself
    return text


def _fault(spec: str) -> Fault:
    try:
        fault = parse_fault(spec)
    except (InvalidInputError, TypeError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    for field in fields(fault):
        value = getattr(fault, field.name)
        # `reset=nan` or `delay=inf` would reach the stub's clock and sleep as they are.
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(
                f"fault {spec[:60]!r}: `{field.name}` must be a finite number of seconds"
            )
    return fault


def _parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog or "python -m assistant_flow.testing.stub",
        description="A local stand-in for a Kustomer org, for development and tests.",
        epilog="Exit status: 0 after Ctrl-C or SIGTERM, 2 for a mistake in the options "
        "(a port outside 0-65535, a host that is not loopback, a missing assistant file, a "
        "port already taken, ...).",
    )
    parser.add_argument(
        "--host", type=_host, default="127.0.0.1", help="loopback address (127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=_port, default=0, help="port, 0 to 65535; 0 picks a free one (0)"
    )
    parser.add_argument(
        "--assistants",
        type=_assistant_file,
        help="assistant YAML file (the shipped support.yaml)",
    )
    parser.add_argument(
        "--api-key",
        type=_api_key,
        default=None,
        help=f"the Bearer key clients send (${API_KEY_VARIABLE}, else {DEFAULT_CLI_API_KEY})",
    )
    parser.add_argument(
        "--rate-limit",
        type=_rate_limit,
        default=1000,
        help="requests a minute before 429s, 1 or more (1000)",
    )
    parser.add_argument("--lenient", action="store_true", help="skip the assistant-protocol checks")
    parser.add_argument(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        metavar="KIND[@ROUTE][,key=value...]",
        help="inject a fault: KIND is 429, 500, slow or drop; e.g. 429@messages,count=2,reset=1",
    )
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Start the stub, print its URL, serve until SIGINT or SIGTERM; the exit status.

    ``prog`` is the name ``--help`` and usage errors show (``assistant-flow stub`` wraps it).
    A mistake in the options (or a port that cannot be bound) is argparse's error: one line
    on stderr after the usage line, and ``SystemExit(2)``.
    """
    parser = _parser(prog)
    options = parser.parse_args(argv)
    api_key = options.api_key or os.environ.get(API_KEY_VARIABLE) or DEFAULT_CLI_API_KEY
    if not _KEY_SHAPE.fullmatch(api_key):
        parser.error(f"${API_KEY_VARIABLE} {_KEY_RULE}")
    try:
        stub = KustomerStub(
            host=options.host,
            port=options.port,
            api_key=api_key,
            assistants=options.assistants,
            strict=not options.lenient,
            rate_limit=options.rate_limit,
            faults=options.fault,
        )
    except InvalidInputError as error:
        parser.error(str(error))
    return _serve(stub, parser)


def _serve(stub: KustomerStub, parser: argparse.ArgumentParser) -> int:
    """Bind, print the URL, serve until SIGINT or SIGTERM; 0 when stopped by one."""
    try:
        stub.start()
    except OSError as error:  # the port is taken, or the address is not on this machine
        parser.error(f"cannot listen on {stub.host} port {stub.port}: {error.strerror or error}")
    except ConfigurationError as error:
        parser.error(str(error))
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, on_signal)
        print(stub.url, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        stub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
