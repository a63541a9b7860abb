"""``StubClient``: what Kustomer's Core SDK does in the browser, against the stub.

A chatbot backend gets these from the Core SDK in a real deployment (``createConversation``,
``initAssistant``, the events it emits); examples and tests get them from the stub with this
client, so that a whole dialog runs over HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx

from .._exceptions import TransportError

__all__ = ["AsyncStubClient", "EventPage", "StubClient", "StubEvent"]

_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class StubEvent:
    """One Core SDK event: forward it with ``flow.dispatch(event.name, event.payload)``."""

    cursor: int
    name: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EventPage:
    """The events after a cursor, and the cursor to ask after next."""

    events: list[StubEvent]
    next: int


def _session_body(
    customer_id: str, title: str, assistant: str | None, lang: str | None
) -> dict[str, Any]:
    body = {"customerId": customer_id, "title": title}
    if assistant is not None:
        body["assistant"] = assistant
    if lang is not None:
        body["lang"] = lang
    return body


def _events_params(after: int, wait: float) -> dict[str, str]:
    return {"after": str(after), "wait": f"{wait:g}"}


def _checked(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.is_success:
        data: dict[str, Any] = response.json()
        return data
    try:
        errors = response.json()["errors"]
        detail = "; ".join(str(error.get("message")) for error in errors)
    except (ValueError, KeyError, TypeError, AttributeError):
        detail = response.text[:200]
    raise TransportError(f"{what}: the stub answered {response.status_code}: {detail}")


def _page(data: dict[str, Any]) -> EventPage:
    events = [StubEvent(e["cursor"], e["name"], e["payload"]) for e in data["events"]]
    return EventPage(events, data["next"])


class StubClient:
    """Sessions, initAssistant data and events from a stub, over HTTP (sync).

    Pass ``client`` to reuse your own ``httpx.Client`` (it is then yours to close).
    """

    def __init__(self, base_url: str, api_key: str, *, client: httpx.Client | None = None) -> None:
        self._owned = client is None
        self._client = client or httpx.Client(timeout=_TIMEOUT)
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"}

    def create_session(
        self, customer_id: str, title: str, *, assistant: str | None = None, lang: str | None = None
    ) -> dict[str, Any]:
        """``POST /v2.1/chat/sessions``; the session's attributes (``conversationId``, ...)."""
        response = self._client.post(
            f"{self._base}/v2.1/chat/sessions",
            json=_session_body(customer_id, title, assistant, lang),
            headers=self._headers,
        )
        data: dict[str, Any] = _checked(response, "create_session")["data"]["attributes"]
        return data

    def init_assistant(self, assistant_id: str) -> dict[str, Any]:
        """What ``KustomerCore.initAssistant`` returns for ``assistant_id``."""
        response = self._client.get(
            f"{self._base}/v2.1/chat/assistants/{assistant_id}/init", headers=self._headers
        )
        data: dict[str, Any] = _checked(response, "init_assistant")
        return data

    def events(self, conversation_id: str, after: int = 0, wait: float = 0.0) -> EventPage:
        """The conversation's events after ``after``, waiting up to ``wait`` s for a new one."""
        response = self._client.get(
            f"{self._base}/v2.1/chat/sessions/{conversation_id}/events",
            params=_events_params(after, wait),
            headers=self._headers,
            timeout=_TIMEOUT + wait,
        )
        return _page(_checked(response, "events"))

    def close(self) -> None:
        """Close the HTTP client, if this object opened it."""
        if self._owned:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"StubClient({self._base!r})"


class AsyncStubClient:
    """:class:`StubClient` with ``await``, on an ``httpx.AsyncClient``."""

    def __init__(
        self, base_url: str, api_key: str, *, client: httpx.AsyncClient | None = None
    ) -> None:
        self._owned = client is None
        self._client = client or httpx.AsyncClient(timeout=_TIMEOUT)
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"}

    async def create_session(
        self, customer_id: str, title: str, *, assistant: str | None = None, lang: str | None = None
    ) -> dict[str, Any]:
        """``POST /v2.1/chat/sessions``; the session's attributes (``conversationId``, ...)."""
        response = await self._client.post(
            f"{self._base}/v2.1/chat/sessions",
            json=_session_body(customer_id, title, assistant, lang),
            headers=self._headers,
        )
        data: dict[str, Any] = _checked(response, "create_session")["data"]["attributes"]
        return data

    async def init_assistant(self, assistant_id: str) -> dict[str, Any]:
        """What ``KustomerCore.initAssistant`` returns for ``assistant_id``."""
        response = await self._client.get(
            f"{self._base}/v2.1/chat/assistants/{assistant_id}/init", headers=self._headers
        )
        data: dict[str, Any] = _checked(response, "init_assistant")
        return data

    async def events(self, conversation_id: str, after: int = 0, wait: float = 0.0) -> EventPage:
        """The conversation's events after ``after``, waiting up to ``wait`` s for a new one."""
        response = await self._client.get(
            f"{self._base}/v2.1/chat/sessions/{conversation_id}/events",
            params=_events_params(after, wait),
            headers=self._headers,
            timeout=_TIMEOUT + wait,
        )
        return _page(_checked(response, "events"))

    async def aclose(self) -> None:
        """Close the HTTP client, if this object opened it."""
        if self._owned:
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncStubClient({self._base!r})"
