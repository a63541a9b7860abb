"""Faults the stub can inject: rate limits, server errors, slow answers, dropped connections.

A fault applies to the next ``count`` requests of one route (or of any route with ``*``).
The command line spells one as ``KIND[@ROUTE][,key=value...]``, for example
``429@assistant_messages,count=2,reset=0.5,retry_after=1`` or ``drop,count=1``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

from .._exceptions import InvalidInputError

__all__ = ["FAULT_KINDS", "ROUTES", "Fault", "parse_fault"]

FaultKind = Literal["429", "500", "slow", "drop"]
FAULT_KINDS: tuple[FaultKind, ...] = ("429", "500", "slow", "drop")

ROUTES = (
    "sessions",
    "init",
    "assistant_messages",
    "messages",
    "attachments",
    "upload",
    "events",
)
"""Route names a fault can target; ``*`` targets every one of them."""


@dataclass(slots=True)
class Fault:
    """One injected fault.

    * ``429``: answer 429 with ``x-ratelimit-reset`` = ``reset`` seconds from now, and
      ``Retry-After`` when ``retry_after`` is set. The request is not processed.
    * ``500``: answer ``status`` (500 unless set, any 5xx) with a Kustomer error body; not
      processed.
    * ``slow``: wait ``delay`` seconds, then process and answer normally.
    * ``drop``: send the status line and headers, then close the connection mid-body, so the
      client sees a connection error. Not processed, unless ``after_processing`` is true (the
      message is stored and the answer lost: what idempotency keys are for).
    """

    kind: FaultKind
    route: str = "*"
    count: int = 1
    reset: float = 1.0
    retry_after: float | None = None
    status: int = 500
    delay: float = 1.0
    after_processing: bool = False

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise InvalidInputError(
                f"fault `kind` must be one of {', '.join(FAULT_KINDS)}", field="kind"
            )
        if self.route != "*" and self.route not in ROUTES:
            raise InvalidInputError(
                f"fault `route` must be * or one of {', '.join(ROUTES)}", field="route"
            )
        if self.count < 1:
            raise InvalidInputError("fault `count` must be at least 1", field="count")
        if not 500 <= self.status <= 599:
            raise InvalidInputError("fault `status` must be a 5xx code", field="status")
        for name in ("reset", "delay"):
            if getattr(self, name) < 0:
                raise InvalidInputError(f"fault `{name}` must not be negative", field=name)
        if self.retry_after is not None and self.retry_after < 0:
            raise InvalidInputError("fault `retry_after` must not be negative", field="retry_after")

    def matches(self, route: str) -> bool:
        """Whether this fault applies to a request of ``route``."""
        return self.route in ("*", route)

    def to_json(self) -> dict[str, Any]:
        """The fault as the control route lists it."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> Fault:
        """A fault from the control route's JSON (the same keys as the constructor)."""
        if not isinstance(data, dict):
            raise InvalidInputError("a fault is a JSON object", field="fault")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise InvalidInputError(f"unknown fault key `{unknown[0]}`", field=unknown[0])
        if "kind" not in data:
            raise InvalidInputError("a fault needs `kind`", field="kind")
        values = dict(data)
        values["kind"] = str(values["kind"])
        expected: dict[str, tuple[type, ...]] = {
            "route": (str,),
            "count": (int,),
            "reset": (int, float),
            "retry_after": (int, float, type(None)),
            "status": (int,),
            "delay": (int, float),
            "after_processing": (bool,),
        }
        for key, types in expected.items():
            value = values.get(key)
            if key in values and (
                not isinstance(value, types) or (isinstance(value, bool) and bool not in types)
            ):
                raise InvalidInputError(f"fault `{key}` has the wrong type", field=key)
        return cls(**values)


def parse_fault(spec: str) -> Fault:
    """Parse ``KIND[@ROUTE][,key=value...]`` (the ``--fault`` option of the command line)."""
    head, *options = spec.split(",")
    kind, _, route = head.partition("@")
    values: dict[str, Any] = {"kind": kind.strip(), "route": route.strip() or "*"}
    for option in options:
        key, sep, raw = option.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidInputError(
                f"fault {spec!r}: expected key=value after a comma", field="fault"
            )
        values[key] = _option_value(key, raw.strip(), spec)
    return Fault.from_json(values)


def _option_value(key: str, raw: str, spec: str) -> object:
    try:
        if key in ("count", "status"):
            return int(raw)
        if key in ("reset", "delay", "retry_after"):
            return float(raw)
    except ValueError as error:
        raise InvalidInputError(f"fault {spec!r}: `{key}` must be a number", field=key) from error
    if key == "after_processing":
        if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise InvalidInputError(f"fault {spec!r}: `{key}` must be true or false", field=key)
        return raw.lower() in ("true", "1", "yes")
    return cast(object, raw)
