"""Where a message goes and what its request and response look like (docs/http-contract.md).

The routes and base URLs are documented [D]; which route a message takes and what goes in
its body are inferred [I], as no public text shows a server-side ``sendMessage``. So every
route is a field of :class:`Routes`, to match a real org without a new release.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError

from .._exceptions import InvalidInputError, UnexpectedResponseError
from .._messages import SendMessageOptions, SentMessage
from ._json import UnreadableJSONError, read_json

__all__ = ["Routes", "check_base_url", "is_loopback", "message_body", "sent_message"]

CustomerId = str | Callable[[str], str | None] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Routes:
    """The paths the HTTP transport posts to, below the base URL.

    * ``assistant_messages``: a customer message while ``isInAssistantMode`` is true (the
      first reply, with ``initAssistantPayload``, included). Kustomer documents this route as
      the customer's line in the assistant flow [D]; sending assistant-mode messages there is
      our reading [I].
    * ``messages``: any other customer message (no assistant, or after ``onAssistantEnded``)
      [D] route, [I] choice.
    * ``attachments``: announce a file and learn where to upload it [I], after the legacy
      client's ``/c/v1/chat/attachments`` [S].
    """

    assistant_messages: str = "/v2.1/chat/assistant/messages"
    messages: str = "/v2.1/chat/messages"
    attachments: str = "/v2.1/chat/attachments"

    def __post_init__(self) -> None:
        for name in ("assistant_messages", "messages", "attachments"):
            path = getattr(self, name)
            if not isinstance(path, str) or not path.startswith("/"):
                raise InvalidInputError(
                    f"Routes: `{name}` must be a path starting with '/', below the base URL",
                    field=name,
                )

    def for_message(self, message: SendMessageOptions) -> str:
        """The route for ``message``: the assistant line while in assistant mode."""
        return self.assistant_messages if message.is_in_assistant_mode else self.messages


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine: ``localhost``, ``127.0.0.0/8`` or ``::1``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: object, field: str = "base_url") -> str:
    """The base URL without a trailing slash; refuse anything but https (or http to loopback).

    Plain ``http://`` would carry the API key in clear text, so it is allowed only for a
    host on this machine (the local stub).
    """
    if not isinstance(base_url, str | httpx.URL):
        raise InvalidInputError(
            f"`{field}` must be a str such as 'https://{{org}}.api.kustomerapp.com', "
            f"got {type(base_url).__name__}",
            field=field,
        )
    try:
        url = httpx.URL(str(base_url))
    except httpx.InvalidURL as exc:
        raise InvalidInputError(
            f"`{field}` is not a URL; pass one such as 'https://{{org}}.api.kustomerapp.com'",
            field=field,
        ) from exc
    if url.scheme not in ("https", "http") or not url.host:
        raise InvalidInputError(
            f"`{field}` must be an absolute https:// URL such as "
            "'https://{org}.api.kustomerapp.com'",
            field=field,
        )
    if url.scheme == "http" and not is_loopback(url.host):
        raise InvalidInputError(
            f"`{field}` uses plain http:// for {url.host!r}, which would send the API key in "
            "clear text: use https:// (http:// is accepted only for loopback hosts such as "
            "127.0.0.1, ::1 or localhost)",
            field=field,
        )
    if url.userinfo or url.query or url.fragment:
        raise InvalidInputError(
            f"`{field}` must hold no credentials, query or fragment: pass the key as `api_key`",
            field=field,
        )
    root = str(url).rstrip("/")
    if root.endswith("/v2.1"):
        # The routes start with /v2.1 already; a root ending in it would double it silently.
        raise InvalidInputError(
            f"`{field}` ends in /v2.1, which every route already starts with: pass the org's "
            "root, such as 'https://{org}.api.kustomerapp.com'",
            field=field,
        )
    return root


def message_body(
    message: SendMessageOptions,
    customer_id: str | None,
    attachments: Sequence[Mapping[str, Any]] | None,
) -> dict[str, Any]:
    """The JSON body for ``message``: its wire shape, with ``customerId`` and uploaded files.

    ``attachments`` replaces the ``{file: …}`` objects with the uploaded files' references
    ``{"id", "name", "contentType", "contentLength"}``, as JSON cannot carry a file [I].
    """
    body = message.to_wire()
    if customer_id is not None:
        body["customerId"] = customer_id
    if attachments:
        body["attachments"] = list(attachments)
    else:
        body.pop("attachments", None)
    return body


def sent_message(response: httpx.Response, message: SendMessageOptions) -> SentMessage:
    """Read a message POST's answer: JSON:API ``data`` or a flat ``callbackResponse``.

    In JSON:API the message id is ``data.id`` and the rest ``data.attributes``. A missing
    ``conversationId`` is taken from the message sent. Anything else is an
    :class:`UnexpectedResponseError`; its text names what is missing, never a value. So is
    a body past the reader's limits (:mod:`._json`: 1 MiB, 64 levels deep).
    """
    status = response.status_code
    try:
        document = read_json(response)
    except UnreadableJSONError as error:
        # Not chained: the reason says all there is to say, and nothing of the body (which
        # may echo anything the request carried) is kept.
        raise UnexpectedResponseError(
            f"Kustomer answered {status} with a body that {error.reason}", status_code=status
        ) from None
    if not isinstance(document, dict):
        raise UnexpectedResponseError(
            f"Kustomer answered {status} with JSON that is not an object", status_code=status
        )
    data = document.get("data")
    if isinstance(data, dict):
        attributes = data.get("attributes")
        fields = dict(attributes) if isinstance(attributes, dict) else {}
        if "id" in data:
            fields.setdefault("messageId", data["id"])
    else:
        fields = document
    fields.setdefault("conversationId", message.conversation_id)
    try:
        return SentMessage.model_validate(fields)
    except ValidationError as exc:
        missing = ", ".join(
            ".".join(str(part) for part in error["loc"]) for error in exc.errors()[:5]
        )
        raise UnexpectedResponseError(
            f"Kustomer answered {status} but the message in it lacks or mistypes: {missing}",
            status_code=status,
        ) from exc
