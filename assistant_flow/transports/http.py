"""HTTPTransport and AsyncHTTPTransport: customer messages to a Kustomer org over httpx.

The shapes on the wire are in ``docs/http-contract.md``; where they rest on inference the
modules say so (:mod:`._wire` for routes and bodies, :mod:`._retry` for rate-limit headers,
:mod:`._attachments` for the upload). The steps of a send (check, announce and
upload each file, post the message, retry each request, one deadline for all) are written
once, as a plan that yields "make this request" and "sleep this long"; the blocking and the
asyncio transports only carry those steps out.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import ClassVar

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
from ._retry import Retry, RetryBudget, retry_after_wait
from ._wire import CustomerId, Routes, check_base_url, message_body, sent_message
from .base import AsyncTransport, Transport

__all__ = ["DEFAULT_TIMEOUT", "AsyncHTTPTransport", "HTTPTransport", "default_idempotency_key"]

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
"""Per request: 5 s to connect, 10 s for each read, write and pool wait."""

# The pool of AsyncHTTPTransport.with_aiohttp unless given: aiohttp's own default of 100
# connections, each kept alive while idle for httpx's 5 s.
_AIOHTTP_LIMITS = httpx.Limits(max_connections=100, keepalive_expiry=5.0)

# A key with whitespace or control characters would split or corrupt the header.
_KEY_SHAPE = re.compile(r"[\x21-\x7e]+")

IdempotencyKey = Callable[[SendMessageOptions], str]


def default_idempotency_key(message: SendMessageOptions) -> str:
    """The ``Idempotency-Key`` of a send: stable for a delivery, random without a scope.

    A message a flow sends carries ``delivery_scope`` (the conversation, its run and the
    record version it was built from); its key is :meth:`SendMessageOptions.idempotency_key`,
    so the kept message a flow delivers again after a lost answer reuses its key, and
    Kustomer answers with what it stored. A message sent without a flow, and so without a
    scope, gets a random key. A replacement must be as deterministic, or a resend after a
    lost answer is processed twice.
    """
    return message.idempotency_key() or uuid.uuid4().hex


class _AuthHeaders(dict[str, str]):
    """Request headers holding the API key; their repr hides it, should anything print them."""

    def __repr__(self) -> str:
        return repr({k: REDACTED if k == "Authorization" else v for k, v in self.items()})


@dataclass(frozen=True, slots=True)
class _Failure:
    """A retryable failure, and the wait the server asked for (a 429's, a 503's)."""

    error: TransportError
    asked: float | None = None


@dataclass(frozen=True, slots=True)
class _Call:
    """A step of a send: make this request, within ``seconds`` (the time left)."""

    request: httpx.Request
    seconds: float
    storage: bool  # a signed storage URL: no client auth may go with it


@dataclass(frozen=True, slots=True)
class _Sleep:
    """A step of a send: wait this long before the next attempt."""

    seconds: float


# What a runner sends back into a plan: the answer to a _Call, or what httpx raised.
_Reply = httpx.Response | httpx.HTTPError | None
_Plan = Generator[_Call | _Sleep, _Reply, SentMessage]
_Exchange = Generator[_Call | _Sleep, _Reply, httpx.Response]


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
        self._timeout = None if timeout is None else httpx.Timeout(timeout)
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

    def _plan(self, client: httpx.Client | httpx.AsyncClient, message: SendMessageOptions) -> _Plan:
        """The whole send of ``message``, as steps for a runner; returns the sent message."""
        # Everything that can refuse the message does so before the first request.
        check_attachments(message.attachments, self.attachment_limits)
        customer_id = self._customer_for(message.conversation_id)
        key = self._new_key(message)
        budget = RetryBudget(self.retry)
        conversation_id = message.conversation_id
        references = []
        for index, file in enumerate(message.attachments or ()):
            # Derived from the message's key, so a retried announce is recognised as one.
            file_key = f"{key}:att{index}"
            announced = yield from self._exchange(
                client,
                budget,
                conversation_id=conversation_id,
                method="POST",
                url=self._attachments_url,
                path=self.routes.attachments,
                headers=_AuthHeaders(self._auth, **{"Idempotency-Key": file_key}),
                json=announce_body(conversation_id, file),
            )
            target = upload_target(announced)
            yield from self._exchange(
                client,
                budget,
                conversation_id=conversation_id,
                method="POST",
                url=target.url,
                path="(upload url)",
                headers={"Idempotency-Key": file_key},
                data=target.fields,
                files=_form_file(file),
                storage=True,
            )
            references.append(reference(target, file))
        path = self.routes.for_message(message)
        url = self._assistant_url if path == self.routes.assistant_messages else self._messages_url
        body = message_body(message, customer_id, references)
        headers = _AuthHeaders(self._auth, **{"Idempotency-Key": key})
        response = yield from self._exchange(
            client,
            budget,
            conversation_id=conversation_id,
            method="POST",
            url=url,
            path=path,
            headers=headers,
            json=body,
        )
        return sent_message(response, message)

    def _exchange(
        self,
        client: httpx.Client | httpx.AsyncClient,
        budget: RetryBudget,
        *,
        conversation_id: str,
        method: str,
        url: str,
        path: str,
        headers: Mapping[str, str],
        json: object = None,
        data: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        storage: bool = False,
    ) -> _Exchange:
        """One request, retried by the policy within the send's deadline.

        Every attempt carries the same headers (and key). Returns the successful answer.
        """
        budget.request()
        while True:
            left = budget.left()
            if left <= 0:
                raise budget.spent(method, path)
            attempt = budget.attempt()
            request = client.build_request(
                method,
                url,
                headers=headers,
                json=json,
                data=data,
                files=files,
                timeout=_capped(self._timeout_for(client), left),
            )
            if storage:
                # A signed storage URL must not see the key, even one the client adds.
                request.headers.pop("Authorization", None)
            reply = yield _Call(request, left, storage)
            if isinstance(reply, httpx.Response):
                outcome = self._checked(reply, method, path)
                if isinstance(outcome, httpx.Response):
                    return outcome
                failure = outcome
            else:
                assert reply is not None, "a runner answers every _Call"
                failure = self._no_answer(reply, method, path)
            wait = budget.wait_after(failure.error, failure.asked)
            self._log_retry(conversation_id, method, path, attempt, failure.error)
            yield _Sleep(wait)

    def _timeout_for(self, client: httpx.Client | httpx.AsyncClient) -> httpx.Timeout:
        """The configured timeout, else the client's own (its default, or the caller's)."""
        return client.timeout if self._timeout is None else self._timeout

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
            # A 503 may say when the service is back; other waits back off.
            return _Failure(error, retry_after_wait(response.headers, self.retry.now()))
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
      every attempt of one message carries the same ``Idempotency-Key`` [I], and each file's
      announce and upload ``<key>:att<i>``. The upload to the storage URL carries no
      ``Authorization`` and no client ``auth``.
    * ``timeout``: per attempt, cut to what is left of ``retry.max_elapsed`` (one deadline
      for the whole send); ``None`` means :data:`DEFAULT_TIMEOUT` on a client the transport
      opens and the client's own setting on yours.
    * ``attachment_limits``: checked before any request (:class:`AttachmentLimits`).
    * ``idempotency_key``: makes the key for a message; by default
      :func:`default_idempotency_key`, stable for the resend of a message that moves the
      conversation and random for a plain reply.

    A send raises :class:`KustomerAPIError` for a 4xx (with ``status_code`` and Kustomer's
    ``errors``), :class:`RateLimitedError` when a 429 asks for a wait past the budget,
    :class:`RetriesExhaustedError` when retrying gave up, and
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
        idempotency_key: IdempotencyKey = default_idempotency_key,
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
        plan = self._plan(self.client, message)
        reply: _Reply = None
        while True:
            try:
                step = plan.send(reply)
            except StopIteration as done:
                sent: SentMessage = done.value
                return sent
            reply = None
            if isinstance(step, _Sleep):
                self.retry.sleep(step.seconds)
                continue
            try:
                reply = _send_within(self.client, step)
            except httpx.HTTPError as exc:
                reply = exc

    def close(self) -> None:
        """Close the httpx client if this transport opened it; a caller's client stays open."""
        if self._owns_client:
            self.client.close()


class AsyncHTTPTransport(_HTTPConfig, AsyncTransport):
    """The asyncio twin of :class:`HTTPTransport`, for ``AsyncFlow``; the same options.

    ``client`` is an ``httpx.AsyncClient``; :meth:`aclose` (or ``async with``) closes the
    client only if the transport opened it. For many concurrent sends, open it with
    :meth:`with_aiohttp` (the ``aiohttp`` extra): the same transport over aiohttp's
    connection pool instead of httpcore's.
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
        idempotency_key: IdempotencyKey = default_idempotency_key,
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

    @classmethod
    def with_aiohttp(
        cls,
        base_url: str,
        api_key: str,
        *,
        limits: httpx.Limits | None = None,
        customer_id: CustomerId = None,
        routes: Routes = Routes(),  # noqa: B008 - frozen, so one shared default is safe
        retry: Retry = Retry(),  # noqa: B008 - frozen, as above
        timeout: httpx.Timeout | float | None = None,
        attachment_limits: AttachmentLimits = AttachmentLimits(),  # noqa: B008 - frozen
        idempotency_key: IdempotencyKey = default_idempotency_key,
        logger: Logger | None = None,
    ) -> AsyncHTTPTransport:
        """The fast path: this transport on an ``httpx.AsyncClient`` backed by aiohttp.

        Needs the ``aiohttp`` extra (``pip install 'assistant-flow[aiohttp]'``: aiohttp and
        httpx-aiohttp). The requests, retries, keys and errors are the same as on the
        default client; only the connection pool underneath changes, aiohttp's instead of
        httpcore's, which stays fast at many concurrent sends (``docs/performance.md``).
        ``limits`` (an ``httpx.Limits``; by default 100 connections, each kept 5 s idle):
        ``max_connections`` caps the open connections, and aiohttp keeps every one of them
        alive for ``keepalive_expiry`` seconds (``max_keepalive_connections`` is not used).
        The transport owns the client: :meth:`aclose` (or ``async with``) closes it. The
        other options are those of the constructor.

        aiohttp's failures reach the retry plan as the httpx errors httpx's own pool would
        raise: a refused connection is ``httpx.ConnectError`` and a server that closes
        before answering ``httpx.RemoteProtocolError`` (``httpx_aiohttp`` alone reports
        both as ``httpx.ConnectTimeout``), a body cut short ``httpx.ReadError``, a read
        past its timeout ``httpx.ReadTimeout``.
        """
        client = _aiohttp_client(limits)  # opens nothing until the first request
        transport = cls(
            base_url,
            api_key,
            client=client,
            customer_id=customer_id,
            routes=routes,
            retry=retry,
            timeout=timeout,
            attachment_limits=attachment_limits,
            idempotency_key=idempotency_key,
            logger=logger,
        )
        transport._owns_client = True
        return transport

    async def asend(self, message: SendMessageOptions) -> SentMessage:
        """Upload ``message``'s files, post it, and return Kustomer's ``callbackResponse``."""
        plan = self._plan(self.client, message)
        reply: _Reply = None
        while True:
            try:
                step = plan.send(reply)
            except StopIteration as done:
                sent: SentMessage = done.value
                return sent
            reply = None
            if isinstance(step, _Sleep):
                await self.retry.async_sleep(step.seconds)
                continue
            try:
                # httpx's timeouts bound each wait for the network; this bounds the whole.
                async with asyncio.timeout(step.seconds):
                    reply = await self.client.send(
                        step.request, auth=None if step.storage else httpx.USE_CLIENT_DEFAULT
                    )
            except httpx.HTTPError as exc:
                reply = exc
            except TimeoutError:
                reply = httpx.TimeoutException(
                    f"no answer within the {step.seconds:.3g}s left of max_elapsed",
                    request=step.request,
                )

    async def aclose(self) -> None:
        """Close the httpx client if this transport opened it; a caller's client stays open."""
        if self._owns_client:
            await self.client.aclose()


def _aiohttp_client(limits: httpx.Limits | None) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose requests go through aiohttp (``httpx_aiohttp``)."""
    try:
        from httpx_aiohttp import AiohttpTransport  # noqa: PLC0415 - the optional extra
    except ImportError as missing:
        raise ImportError(
            "AsyncHTTPTransport.with_aiohttp needs the `aiohttp` extra: "
            "pip install 'assistant-flow[aiohttp]'"
        ) from missing
    if limits is None:
        limits = _AIOHTTP_LIMITS
    if not isinstance(limits, httpx.Limits):
        raise ConfigurationError(f"`limits` must be an httpx.Limits, got {type(limits).__name__}")
    return httpx.AsyncClient(
        transport=_AiohttpErrors(AiohttpTransport(limits=limits)), timeout=DEFAULT_TIMEOUT
    )


class _AiohttpErrors(httpx.AsyncBaseTransport):
    """``httpx_aiohttp``'s transport, with aiohttp's failures named as httpcore names them.

    httpx_aiohttp maps every ``aiohttp.ClientConnectionError`` that is no timeout to
    ``httpx.ConnectTimeout`` (a refused connection, a server that closed the connection
    before answering, a reset), so the transport would report a timeout where no time ran
    out, and it lets an answer aiohttp cannot parse through as aiohttp's own error, which
    the retry plan does not know. Here each becomes the httpx error httpx's own pool raises
    for it (:func:`_httpx_error_for`), in the head and in the body of an answer.

    The cause kept under each is aiohttp's error as text (:class:`AiohttpError`): aiohttp's
    parser errors quote the bytes the server sent, in attributes no scrubber reaches, and a
    server could echo the API key there; as text, the transport scrubs it like any other.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        import aiohttp  # noqa: PLC0415 - the optional extra, there once httpx_aiohttp is

        self._inner = inner
        self._aiohttp = aiohttp

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self._inner.handle_async_request(request)
        except (httpx.TransportError, self._aiohttp.ClientError, TimeoutError) as exc:
            renamed = _renamed(exc, request, self._aiohttp)
            raise renamed from renamed.__cause__
        inner = response.stream
        assert isinstance(inner, httpx.AsyncByteStream)
        response.stream = _AiohttpBody(inner, request, self._aiohttp)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class _AiohttpBody(httpx.AsyncByteStream):
    """An answer's body from aiohttp, its failures renamed as in :class:`_AiohttpErrors`."""

    def __init__(
        self, inner: httpx.AsyncByteStream, request: httpx.Request, aiohttp: ModuleType
    ) -> None:
        self._inner = inner
        self._request = request
        self._aiohttp = aiohttp

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except (httpx.TransportError, self._aiohttp.ClientError, TimeoutError) as exc:
            renamed = _renamed(exc, self._request, self._aiohttp)
            raise renamed from renamed.__cause__

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        except (httpx.TransportError, self._aiohttp.ClientError, TimeoutError) as exc:
            renamed = _renamed(exc, self._request, self._aiohttp)
            raise renamed from renamed.__cause__


class AiohttpError(Exception):
    """What aiohttp raised, as text: the ``__cause__`` of the httpx error it became."""


def _renamed(exc: Exception, request: httpx.Request, aiohttp: ModuleType) -> Exception:
    """The httpx error for ``exc``, with aiohttp's own error (if any) as text under it.

    Raised ``from`` that text, so the aiohttp error itself (the context) is not printed.
    """
    original = exc.__cause__ if isinstance(exc, httpx.HTTPError) else exc
    if not isinstance(original, aiohttp.ClientError | TimeoutError):
        return exc  # an httpx error of httpx's own making: as it is
    kind = _httpx_error_for(original, exc, aiohttp)
    renamed = kind(str(original), request=request)
    name = f"{type(original).__module__}.{type(original).__qualname__}"
    renamed.__cause__ = AiohttpError(f"{name}: {original}")
    return renamed


def _httpx_error_for(
    original: BaseException, mapped: Exception, aiohttp: ModuleType
) -> type[httpx.TransportError]:
    """The error httpx's own pool (httpcore) raises where aiohttp raised ``original``.

    ``mapped`` is what httpx_aiohttp made of it (or ``original`` itself, left unmapped).
    """
    if isinstance(original, TimeoutError):
        # httpx_aiohttp names these right: ReadTimeout for a read, ConnectTimeout else.
        timeout = isinstance(mapped, httpx.TimeoutException)
        return type(mapped) if timeout else httpx.TimeoutException  # type: ignore[return-value]
    # The first match wins: proxies before connecting, connecting before the rest.
    for aiohttp_errors, httpx_error in (
        ((aiohttp.ClientProxyConnectionError, aiohttp.ClientHttpProxyError), httpx.ProxyError),
        # refused, unreachable, a failed TLS handshake
        ((aiohttp.ClientConnectorError,), httpx.ConnectError),
        # closed before answering; an answer that is not HTTP
        ((aiohttp.ServerDisconnectedError, aiohttp.ClientResponseError), httpx.RemoteProtocolError),
        # a reset, a body cut short
        ((aiohttp.ClientConnectionError, aiohttp.ClientPayloadError), httpx.ReadError),
    ):
        if isinstance(original, aiohttp_errors):
            return httpx_error
    if isinstance(mapped, httpx.TransportError):
        return type(mapped)  # e.g. httpx.UnsupportedProtocol for a URL aiohttp refuses
    return httpx.TransportError


def _send_within(client: httpx.Client, step: _Call) -> httpx.Response:
    """Make ``step``'s request and read the whole answer, within the time it has left.

    httpx's read timeout bounds each read, not the body: a server trickling bytes, each in
    time, would hold the send for as long as it trickles. Streaming the body lets the deadline
    be checked between its chunks; only one read (itself bounded) can then run past it.
    """
    deadline = time.monotonic() + step.seconds
    auth = None if step.storage else httpx.USE_CLIENT_DEFAULT
    response = client.send(step.request, auth=auth, stream=True)
    if response.is_stream_consumed:  # already read whole (an httpx.MockTransport answer)
        return response
    try:
        raw = []
        for chunk in response.iter_raw():
            raw.append(chunk)
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout(
                    f"no whole answer within the {step.seconds:.3g}s left of max_elapsed",
                    request=step.request,
                )
    finally:
        response.close()
    # The body as it came (still encoded), decoded by the new response like any other.
    return httpx.Response(
        response.status_code,
        headers=response.headers,
        content=b"".join(raw),
        request=step.request,
        extensions=response.extensions,
    )


def _form_file(file: Attachment) -> dict[str, tuple[str, bytes, str]]:
    # httpx writes the `data` fields before the files, as storage services require.
    return {"file": (file.name, file.content, file.content_type)}


def _capped(timeout: httpx.Timeout, left: float) -> httpx.Timeout:
    """``timeout`` with each of its limits cut to the ``left`` seconds of the send's budget."""

    def cut(limit: float | None) -> float:
        return left if limit is None else min(limit, left)

    return httpx.Timeout(
        connect=cut(timeout.connect),
        read=cut(timeout.read),
        write=cut(timeout.write),
        pool=cut(timeout.pool),
    )
