"""What the stub answers: status, headers and a JSON body, in Kustomer's shapes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["Answer", "Rejected", "json_answer", "kustomer_time", "rejected"]

_JSON = (b"content-type", b"application/json")


@dataclass(slots=True)
class Answer:
    """One HTTP answer, ready for the ASGI layer."""

    status: int
    body: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    poll: tuple[str, int, float] | None = None
    """For the events route when nothing is new: (conversation, after, wait) to long-poll."""


class Rejected(Exception):
    """A request refused with a Kustomer error body; carries the answer to send."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def answer(self) -> Answer:
        """``{"errors": [{"code", "message", "meta"}]}`` with the status."""
        return rejected(self.status, self.code, self.message, self.field)


def json_answer(status: int, data: object) -> Answer:
    """A JSON answer."""
    return Answer(status, json.dumps(data, separators=(",", ":")).encode(), [_JSON])


def rejected(status: int, code: str, message: str, field: str | None = None) -> Answer:
    """Kustomer's error body; ``meta.field`` names the offending field when there is one."""
    meta: dict[str, Any] = {} if field is None else {"field": field}
    return json_answer(status, {"errors": [{"code": code, "message": message, "meta": meta}]})


def kustomer_time(moment: datetime | None = None) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z``, as Kustomer writes timestamps."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
