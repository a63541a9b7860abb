"""Attachment rules, checked before any request, and the two-step upload's shapes.

Kustomer's limits for chat attachments [D] (help.kustomer.com, "Chat channel" category; the
Android SDK's KDoc agrees on 5 MB): **5 MB a file** and **9.5 MB a message** (the Android
KDoc says 9 MB; the Help Center's 9.5 MB is used). ``KustomerCore.sendMessage`` takes "an
image, pdf or video" [D], so the default types are ``image/*``, ``application/pdf`` and
``video/*``. MB is read as 10⁶ bytes, the stricter reading, so a file this library passes
is not refused by Kustomer for its size. :class:`AttachmentLimits` changes any of it.

The upload follows the legacy client protocol [S] (KUSUpload.m): announce the file
(``POST`` its name, type and length, with Kustomer auth), receive an attachment id and
``meta.upload`` ``{url, fields}``, then ``POST`` a multipart form of ``fields`` and ``file``
to that URL, which takes no Kustomer auth (it is a signed storage URL).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from .._exceptions import AttachmentError, InvalidInputError, UnexpectedResponseError
from .._messages import Attachment
from ._json import UnreadableJSONError, read_json
from ._wire import is_loopback

__all__ = [
    "AttachmentLimits",
    "UploadTarget",
    "announce_body",
    "check_attachments",
    "reference",
    "upload_target",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class AttachmentLimits:
    """What the HTTP transport lets through, checked before any request.

    ``types`` are MIME types; ``type/*`` matches a whole family. Sizes are in bytes.
    """

    max_file_bytes: int = 5_000_000
    max_message_bytes: int = 9_500_000
    types: tuple[str, ...] = ("image/*", "application/pdf", "video/*")

    def __post_init__(self) -> None:
        for name in ("max_file_bytes", "max_message_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InvalidInputError(
                    f"AttachmentLimits: `{name}` must be a positive int of bytes", field=name
                )

    def allows_type(self, content_type: str) -> bool:
        """Whether ``content_type`` (parameters such as ``; charset`` ignored) is allowed."""
        kind = content_type.split(";", 1)[0].strip().lower()
        family = kind.split("/", 1)[0]
        return any(allowed in (kind, f"{family}/*") for allowed in self.types)


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:g} MB"


def check_attachments(attachments: Sequence[Attachment] | None, limits: AttachmentLimits) -> None:
    """Raise :class:`AttachmentError` naming the first file that breaks a rule, and the rule."""
    if not attachments:
        return
    total = 0
    for index, attachment in enumerate(attachments):
        field = f"attachments.{index}"
        name = attachment.name
        if not limits.allows_type(attachment.content_type):
            allowed = ", ".join(limits.types)
            raise AttachmentError(
                f"attachment {name!r} is {attachment.content_type!r}; Kustomer chat takes "
                f"{allowed}: send one of those types",
                field=field,
                name=name,
                limit=f"types {allowed}",
            )
        size = attachment.size
        if size > limits.max_file_bytes:
            limit = f"{_megabytes(limits.max_file_bytes)} a file"
            raise AttachmentError(
                f"attachment {name!r} is {size} bytes, over Kustomer's {limit} "
                f"({limits.max_file_bytes} bytes): send a smaller file",
                field=field,
                name=name,
                limit=limit,
            )
        total += size
        if total > limits.max_message_bytes:
            limit = f"{_megabytes(limits.max_message_bytes)} a message"
            raise AttachmentError(
                f"attachment {name!r} brings the message to {total} bytes, over Kustomer's "
                f"{limit} ({limits.max_message_bytes} bytes): send the files in several messages",
                field=field,
                name=name,
                limit=limit,
            )


def announce_body(conversation_id: str, attachment: Attachment) -> dict[str, Any]:
    """The JSON that announces one file."""
    return {
        "conversationId": conversation_id,
        "name": attachment.name,
        "contentType": attachment.content_type,
        "contentLength": attachment.size,
    }


@dataclass(frozen=True, slots=True)
class UploadTarget:
    """Where one announced file goes: its attachment id, the upload URL and form fields."""

    attachment_id: str
    url: str
    fields: Mapping[str, str]


def _dig(document: object, *keys: str) -> object:
    """``document[k1][k2]...``; ``KeyError`` when a level is missing or not an object."""
    value = document
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            raise KeyError(key)
        value = value[key]
    return value


def upload_target(response: httpx.Response) -> UploadTarget:
    """Read the announce answer ``{data: {id}, meta: {upload: {url, fields}}}``.

    The upload URL must be https (or http to a loopback host), like the base URL, as the
    file's bytes travel to it.
    """
    status = response.status_code
    try:
        document = read_json(response)
    except UnreadableJSONError as error:
        # Not chained: nothing of the body (which may echo the request) is kept.
        raise UnexpectedResponseError(
            f"the attachment announce answered {status} with a body that {error.reason}",
            status_code=status,
        ) from None
    try:
        attachment_id = _dig(document, "data", "id")
        url = _dig(document, "meta", "upload", "url")
    except KeyError:
        raise UnexpectedResponseError(
            f"the attachment announce answered {status} without data.id and meta.upload.url",
            status_code=status,
        ) from None
    try:
        fields = _dig(document, "meta", "upload", "fields") or {}
    except KeyError:
        fields = {}
    if not isinstance(attachment_id, str) or not isinstance(url, str):
        raise UnexpectedResponseError(
            f"the attachment announce answered {status} with a non-string id or upload url",
            status_code=status,
        )
    if not isinstance(fields, Mapping):
        raise UnexpectedResponseError(
            f"the attachment announce answered {status} with meta.upload.fields not an object",
            status_code=status,
        )
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UnexpectedResponseError(
            f"the attachment announce answered {status} with an upload url that is not a URL",
            status_code=status,
        ) from exc
    secure = target.scheme == "https" or (target.scheme == "http" and is_loopback(target.host))
    if not secure:
        raise UnexpectedResponseError(
            f"the attachment announce answered {status} with an upload url that is not "
            "https (or http to a loopback host); refusing to send the file there",
            status_code=status,
        )
    return UploadTarget(attachment_id, url, {str(k): str(v) for k, v in fields.items()})


def reference(target: UploadTarget, attachment: Attachment) -> dict[str, Any]:
    """How the message body names an uploaded file."""
    return {
        "id": target.attachment_id,
        "name": attachment.name,
        "contentType": attachment.content_type,
        "contentLength": attachment.size,
    }
