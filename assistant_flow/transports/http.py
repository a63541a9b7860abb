"""HTTPTransport and AsyncHTTPTransport: customer messages to a Kustomer org over httpx.

The shapes on the wire are in ``docs/http-contract.md``; where they rest on inference the
modules say so (:mod:`._wire` for routes and bodies, :mod:`._retry` for rate-limit headers,
:mod:`._attachments` for the upload). This module holds the two drivers: one request loop
with retries, written once blocking and once with ``await``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
from pydantic import SecretStr

from .._exceptions import (
    ConfigurationError,
    InvalidInputError,
    KustomerAPIError,
    RateLimitedError,
    TransportError,
)
from .._logging import REDACTED, Logger, get_logger
from .._messages import Attachment, SendMessageOptions, SentMessage
from ._attachments import (
    AttachmentLimits,
    announce_body,
    check_attachments,
    reference,
    upload_target,
)
from ._errors import RETRYABLE_HTTPX_ERRORS, connection_error, status_error
from ._retry import Retry, RetryBudget
from ._wire import CustomerId, Routes, check_base_url, message_body, sent_message
from .base import AsyncTransport, Transport

if TYPE_CHECKING:
    from httpx._client import UseClientDefault

__all__ = ["DEFAULT_TIMEOUT", "AsyncHTTPTransport", "HTTPTransport"]

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
"""Per request: 5 s to connect, 10 s for each read, write and pool wait."""

# A key with whitespace or control characters would split or corrupt the header.
_KEY_SHAPE = re.compile(r"[\x21-\x7e]+")

IdempotencyKey = Callable[[SendMessageOptions], str]


def _random_key(message: SendMessageOptions) -> str:
    return uuid.uuid4().hex


class _AuthHeaders(dict[str, str]):
    """Request headers holding the API key; their repr hides it, should anything print them."""

    def __repr__(self) -> str:
        return repr({k: REDACTED if k == "Authorization" else v for k, v in self.items()})


@dataclass(frozen=True, slots=True)
class _Failure:
    """A retryable failure, and the wait a 429 asked for."""

    error: TransportError
    asked: float | None = None


class _HTTPConfig:
    """What both transports share: checked configuration and the pure request steps."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        customer_id: CustomerId,
        routes: Routes,
        retry: Retry,
        timeout: httpx.Timeout | float | None,
        attachment_limits: AttachmentLimits,
        idempotency_key: IdempotencyKey,
        logger: Logger | None,
    ) -> None:
        self.base_url = check_base_url(base_url)
        if not isinstance(api_key, str) or not _KEY_SHAPE.fullmatch(api_key):
            raise InvalidInputError(
                "`api_key` must be a non-empty str without spaces or control characters: "
                "pass the org's Kustomer API key",
                field="api_key",
            )
        self._api_key = SecretStr(api_key)
        if customer_id is not None and not (isinstance(customer_id, str) or callable(customer_id)):
            raise InvalidInputError(
                "`customer_id` must be a str, a callable conversation_id -> customer id, or None",
                field="customer_id",
            )
        for name, value, kind in (
            ("routes", routes, Routes),
            ("retry", retry, Retry),
            ("attachment_limits", attachment_limits, AttachmentLimits),
        ):
            if not isinstance(value, kind):
                raise ConfigurationError(
                    f"`{name}` must be an assistant_flow {kind.__name__}, "
                    f"got {type(value).__name__}"
                )
        self.routes = routes
        self.retry = retry
        self.attachment_limits = attachment_limits
        self._customer_id = customer_id
        self._new_key = idempotency_key
        self._timeout: httpx.Timeout | UseClientDefault = (
            httpx.USE_CLIENT_DEFAULT if timeout is None else httpx.Timeout(timeout)
        )
        self._log = get_logger() if logger is None else logger
        self._auth = _AuthHeaders(
            {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        )
        self._assistant_url = self.base_url + routes.assistant_messages
        self._messages_url = self.base_url + routes.messages
        self._attachments_url = self.base_url + routes.attachments

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, api_key={REDACTED!r}, "
            f"routes={self.routes!r}, retry={self.retry!r})"
        )

    # --- pure steps ------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        """``text`` with the API key replaced, in case a server or library echoes it."""
        return text.replace(self._api_key.get_secret_value(), REDACTED)

    def _customer_for(self, conversation_id: str) -> str | None:
        source = self._customer_id
        if source is None or isinstance(source, str):
            return source
        found = source(conversation_id)
        if found is not None and not isinstance(found, str):
            raise InvalidInputError(
                f"`customer_id` returned {type(found).__name__}; it must return a str or None",
                field="customer_id",
            )
        return found

    def _message_request(
        self,
        message: SendMessageOptions,
        customer_id: str | None,
        references: list[dict[str, Any]] | None,
    ) -> tuple[str, str, dict[str, Any], _AuthHeaders]:
        """``(url, path, body, headers)`` for ``message``, with a new Idempotency-Key."""
        path = self.routes.for_message(message)
        url = self._assistant_url if path == self.routes.assistant_messages else self._messages_url
        body = message_body(message, customer_id, references)
        key = self._new_key(message)
        return url, path, body, _AuthHeaders(self._auth, **{"Idempotency-Key": key})

    def _checked(
        self, response: httpx.Response, method: str, path: str
    ) -> httpx.Response | _Failure:
        """Return a success; raise a 4xx's error at once; a 429 or 5xx is retryable."""
        if response.is_success:
            return response
        error = status_error(response, method, path, self._scrub, self.retry.now())
        if isinstance(error, RateLimitedError):
            return _Failure(error, error.retry_after)
        if response.status_code >= 500:
            return _Failure(error)
        raise error

    def _no_answer(self, exc: httpx.HTTPError, method: str, path: str) -> _Failure:
        """Wrap a retryable httpx failure; raise any other at once."""
        error = connection_error(exc, method, path, self._scrub)
        if isinstance(exc, RETRYABLE_HTTPX_ERRORS):
            return _Failure(error)
        raise error from exc

    def _log_retry(
        self, conversation_id: str, method: str, path: str, attempt: int, error: TransportError
    ) -> None:
        self._log.warning(
            "http_retry",
            conversation_id=conversation_id,
            method=method,
            path=path,
            attempt=attempt,
            status=error.status_code if isinstance(error, KustomerAPIError) else None,
            error=type(error).__name__,
        )


class HTTPTransport(_HTTPConfig, Transport):
    """Sends customer messages to a Kustomer org over HTTPS, blocking. Used by ``Flow``.

    ``base_url`` is the org's API root, ``https://{org}.api.kustomerapp.com``, or a regional
    one (``https://api.kustomerapp.com`` US, ``https://api.prod2.kustomerapp.com`` EU,
    ``https://api.prod4.kustomerapp.com`` India) [D]; plain ``http://`` is refused unless the
    host is loopback. ``api_key`` goes in ``Authorization: Bearer …`` [D] and nowhere else:
    not in reprs, logs or errors.

    * ``client``: your own ``httpx.Client`` (shared pool, ``httpx.MockTransport``, respx).
      It is used as given and never closed here; without one, the transport opens its own
      and :meth:`close` (or ``with``) closes it.
    * ``customer_id``: Kustomer's server routes take ``customerId`` [D]; pass one id, or a
      callable ``conversation_id -> customer id`` (or ``None`` to leave it out). Mapping a
      conversation to its customer is your knowledge; adding it to the body is inferred [I].
    * ``routes``: the paths (:class:`Routes`); a message goes to the assistant route while
      ``isInAssistantMode`` is true, else to the messages route [I].
    * ``retry``: 429s, 5xx, dropped connections and timeouts are retried (:class:`Retry`);
      every attempt of one message carries the same ``Idempotency-Key`` [I].
    * ``timeout``: per request; ``None`` means :data:`DEFAULT_TIMEOUT` on a client the
      transport opens and the client's own setting on yours.
    * ``attachment_limits``: checked before any request (:class:`AttachmentLimits`).
    * ``idempotency_key``: makes the key for a message (a random UUID by default).

    A send raises :class:`KustomerAPIError` for a 4xx (with ``status_code`` and Kustomer's
    ``errors``), :class:`RetriesExhaustedError` when retrying gave up, and
    :class:`AttachmentError` for a file Kustomer would refuse.
    """

    async_twin: ClassVar[str | None] = "AsyncHTTPTransport"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        client: httpx.Client | None = None,
        customer_id: CustomerId = None,
        routes: Routes = Routes(),  # noqa: B008 - frozen, so one shared default is safe
        retry: Retry = Retry(),  # noqa: B008 - frozen, as above
        timeout: httpx.Timeout | float | None = None,
        attachment_limits: AttachmentLimits = AttachmentLimits(),  # noqa: B008 - frozen
        idempotency_key: IdempotencyKey = _random_key,
        logger: Logger | None = None,
    ) -> None:
        if client is not None and not isinstance(client, httpx.Client):
            raise ConfigurationError(
                f"HTTPTransport needs an httpx.Client as `client`, got {type(client).__name__}"
                + (": use AsyncHTTPTransport" if isinstance(client, httpx.AsyncClient) else "")
            )
        super().__init__(
            base_url,
            api_key,
            customer_id=customer_id,
            routes=routes,
            retry=retry,
            timeout=timeout,
            attachment_limits=attachment_limits,
            idempotency_key=idempotency_key,
            logger=logger,
        )
        self._owns_client = client is None
        self.client = httpx.Client(timeout=DEFAULT_TIMEOUT) if client is None else client

    def send(self, message: SendMessageOptions) -> SentMessage:
        """Upload ``message``'s files, post it, and return Kustomer's ``callbackResponse``."""
        # Everything that can refuse the message does so before the first request.
        check_attachments(message.attachments, self.attachment_limits)
        customer_id = self._customer_for(message.conversation_id)
        references = None
        if message.attachments:
            references = [self._upload(message, file) for file in message.attachments]
        url, path, body, headers = self._message_request(message, customer_id, references)
        response = self._request("POST", url, path, message.conversation_id, headers, json=body)
        return sent_message(response, message)

    def close(self) -> None:
        """Close the httpx client if this transport opened it; a caller's client stays open."""
        if self._owns_client:
            self.client.close()

    def _upload(self, message: SendMessageOptions, file: Attachment) -> dict[str, Any]:
        conversation_id = message.conversation_id
        routes = self.routes
        announced = self._request(
            "POST",
            self._attachments_url,
            routes.attachments,
            conversation_id,
            self._auth,
            json=announce_body(conversation_id, file),
        )
        target = upload_target(announced)
        self._request(
            "POST",
            target.url,
            "(upload url)",
            conversation_id,
            {},
            data=target.fields,
            files=_form_file(file),
        )
        return reference(target, file)

    def _request(
        self,
        method: str,
        url: str,
        path: str,
        conversation_id: str,
        headers: Mapping[str, str],
        *,
        json: object = None,
        data: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
    ) -> httpx.Response:
        """One request, retried by the policy; the same headers (and key) on every attempt."""
        budget = RetryBudget(self.retry)
        while True:
            attempt = budget.attempt()
            try:
                response = self.client.request(
                    method,
                    url,
                    headers=headers,
                    json=json,
                    data=data,
                    files=files,
                    timeout=self._timeout,
                )
            except httpx.HTTPError as exc:
                failure = self._no_answer(exc, method, path)
            else:
                outcome = self._checked(response, method, path)
                if isinstance(outcome, httpx.Response):
                    return outcome
                failure = outcome
            wait = budget.wait_after(failure.error, failure.asked)
            self._log_retry(conversation_id, method, path, attempt, failure.error)
            self.retry.sleep(wait)


class AsyncHTTPTransport(_HTTPConfig, AsyncTransport):
    """The asyncio twin of :class:`HTTPTransport`, for ``AsyncFlow``; the same options.

    ``client`` is an ``httpx.AsyncClient``; :meth:`aclose` (or ``async with``) closes the
    client only if the transport opened it.
    """

    sync_twin: ClassVar[str | None] = "HTTPTransport"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        client: httpx.AsyncClient | None = None,
        customer_id: CustomerId = None,
        routes: Routes = Routes(),  # noqa: B008 - frozen, so one shared default is safe
        retry: Retry = Retry(),  # noqa: B008 - frozen, as above
        timeout: httpx.Timeout | float | None = None,
        attachment_limits: AttachmentLimits = AttachmentLimits(),  # noqa: B008 - frozen
        idempotency_key: IdempotencyKey = _random_key,
        logger: Logger | None = None,
    ) -> None:
        if client is not None and not isinstance(client, httpx.AsyncClient):
            raise ConfigurationError(
                "AsyncHTTPTransport needs an httpx.AsyncClient as `client`, got "
                + type(client).__name__
                + (": use HTTPTransport" if isinstance(client, httpx.Client) else "")
            )
        super().__init__(
            base_url,
            api_key,
            customer_id=customer_id,
            routes=routes,
            retry=retry,
            timeout=timeout,
            attachment_limits=attachment_limits,
            idempotency_key=idempotency_key,
            logger=logger,
        )
        self._owns_client = client is None
        self.client = httpx.AsyncClient(timeout=DEFAULT_TIMEOUT) if client is None else client

    async def asend(self, message: SendMessageOptions) -> SentMessage:
        """Upload ``message``'s files, post it, and return Kustomer's ``callbackResponse``."""
        # Everything that can refuse the message does so before the first request.
        check_attachments(message.attachments, self.attachment_limits)
        customer_id = self._customer_for(message.conversation_id)
        references = None
        if message.attachments:
            references = [await self._upload(message, file) for file in message.attachments]
        url, path, body, headers = self._message_request(message, customer_id, references)
        response = await self._request(
            "POST", url, path, message.conversation_id, headers, json=body
        )
        return sent_message(response, message)

    async def aclose(self) -> None:
        """Close the httpx client if this transport opened it; a caller's client stays open."""
        if self._owns_client:
            await self.client.aclose()

    async def _upload(self, message: SendMessageOptions, file: Attachment) -> dict[str, Any]:
        conversation_id = message.conversation_id
        routes = self.routes
        announced = await self._request(
            "POST",
            self._attachments_url,
            routes.attachments,
            conversation_id,
            self._auth,
            json=announce_body(conversation_id, file),
        )
        target = upload_target(announced)
        await self._request(
            "POST",
            target.url,
            "(upload url)",
            conversation_id,
            {},
            data=target.fields,
            files=_form_file(file),
        )
        return reference(target, file)

    async def _request(
        self,
        method: str,
        url: str,
        path: str,
        conversation_id: str,
        headers: Mapping[str, str],
        *,
        json: object = None,
        data: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
    ) -> httpx.Response:
        """See :meth:`HTTPTransport._request`."""
        budget = RetryBudget(self.retry)
        while True:
            attempt = budget.attempt()
            try:
                response = await self.client.request(
                    method,
                    url,
                    headers=headers,
                    json=json,
                    data=data,
                    files=files,
                    timeout=self._timeout,
                )
            except httpx.HTTPError as exc:
                failure = self._no_answer(exc, method, path)
            else:
                outcome = self._checked(response, method, path)
                if isinstance(outcome, httpx.Response):
                    return outcome
                failure = outcome
            wait = budget.wait_after(failure.error, failure.asked)
            self._log_retry(conversation_id, method, path, attempt, failure.error)
            await self.retry.async_sleep(wait)


def _form_file(file: Attachment) -> dict[str, tuple[str, bytes, str]]:
    # httpx writes the `data` fields before the files, as storage services require.
    return {"file": (file.name, file.content, file.content_type)}
