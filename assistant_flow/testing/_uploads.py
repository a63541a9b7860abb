"""Attachments on the stub: announce a file, upload it to the stub itself, reference it.

Kustomer's legacy client protocol, which the contract follows: ``POST`` the file's name, type
and size to the attachment route, get an id and an upload form (``meta.upload``), post the
bytes there as ``multipart/form-data`` without Kustomer's key, then name the id in a message.
"""

from __future__ import annotations

import secrets
from collections.abc import Container
from typing import Any

from ._answers import Answer, Rejected, json_answer
from ._checks import bad

__all__ = ["MAX_FILE", "MAX_MESSAGE", "Uploads", "multipart"]

MAX_FILE = 5 * 1024 * 1024
"""The largest file the stub takes (5 MB, read as MiB: never stricter than a client)."""
MAX_MESSAGE = int(9.5 * 1024 * 1024)
"""The most attachment bytes one message may carry (9.5 MB)."""
_FILE_TYPES = ("image/", "video/", "application/pdf")
_REFERENCE = ("id", "name", "contentType", "contentLength")


class Uploads:
    """The files announced to the stub, whether their bytes arrived, and their checks."""

    def __init__(self) -> None:
        self.files: dict[str, dict[str, Any]] = {}

    def announce(self, raw: object, conversations: Container[str], base_url: str) -> Answer:
        """``POST /v2.1/chat/attachments``: check the file's type and size, hand out a form."""
        if not isinstance(raw, dict):
            raise bad("the request body must be a JSON object", "(body)")
        for name in ("conversationId", "name", "contentType"):
            if not isinstance(raw.get(name), str) or not raw[name]:
                raise bad(f"`{name}` is required, a non-empty string", name)
        length = raw.get("contentLength")
        if not isinstance(length, int) or isinstance(length, bool) or length < 1:
            raise bad("`contentLength` is required, the file's size in bytes", "contentLength")
        if raw["conversationId"] not in conversations:
            raise Rejected(404, "not_found", "no conversation with this id", "conversationId")
        if not raw["contentType"].startswith(_FILE_TYPES):
            raise Rejected(
                415,
                "unsupported_media_type",
                "chat takes image, PDF and video files",
                "contentType",
            )
        if length > MAX_FILE:
            raise Rejected(
                413,
                "payload_too_large",
                f"a file may have at most {MAX_FILE} bytes",
                "contentLength",
            )
        attachment_id = f"att_{secrets.token_hex(8)}"
        record = {
            "id": attachment_id,
            "conversationId": raw["conversationId"],
            "name": raw["name"],
            "contentType": raw["contentType"],
            "contentLength": length,
            "uploaded": False,
            "token": secrets.token_hex(8),
        }
        self.files[attachment_id] = record
        attributes = {
            k: record[k] for k in ("name", "contentType", "contentLength", "conversationId")
        }
        url = f"{base_url}/_stub/uploads/{attachment_id}"  # on the stub itself
        upload = {"url": url, "fields": _fields(record)}
        data = {"type": "attachment", "id": attachment_id, "attributes": attributes}
        return json_answer(201, {"data": data, "meta": {"upload": upload}})

    def upload(
        self, attachment_id: str, headers: dict[str, str], body: bytes, *, strict: bool
    ) -> Answer:
        """``POST {meta.upload.url}``: the form's fields unchanged, then exactly the bytes."""
        record = self.files.get(attachment_id)
        if record is None:
            raise Rejected(404, "not_found", "no attachment with this id", "attachment")
        if strict and "authorization" in headers:
            raise bad(
                "do not send your Kustomer Authorization to the upload URL: it needs none",
                "Authorization",
            )
        parts = multipart(headers.get("content-type", ""), body)
        for name, value in _fields(record).items():
            if parts.get(name) != value.encode():
                raise bad(f"form field `{name}` must be sent as meta.upload.fields gave it", name)
        content = parts.get("file")
        if content is None:
            raise bad("the form needs a `file` part, after the fields", "file")
        if len(content) != record["contentLength"]:
            raise bad(
                f"`file` has {len(content)} bytes; the announce said {record['contentLength']}",
                "file",
            )
        record["uploaded"] = True
        return Answer(204)

    def references(self, files: list[Any], conversation_id: str) -> list[dict[str, Any]]:
        """A message's ``attachments``: uploaded files of this conversation, 9.5 MB at most."""
        total = 0
        for index, item in enumerate(files):
            where = f"attachments.{index}"
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                raise bad(
                    f"`{where}` must be an object with the `id` the attachment route gave", where
                )
            known = self.files.get(item["id"])
            if known is None or known["conversationId"] != conversation_id:
                raise bad(f"`{where}.id` names no attachment of this conversation", f"{where}.id")
            if not known["uploaded"]:
                raise bad(f"`{where}.id`: the file was announced but never uploaded", f"{where}.id")
            total += known["contentLength"]
        if total > MAX_MESSAGE:
            raise bad(
                f"the attachments add up to {total} bytes; a message takes at most {MAX_MESSAGE}",
                "attachments",
            )
        return [{key: self.files[item["id"]][key] for key in _REFERENCE} for item in files]


def _fields(record: dict[str, Any]) -> dict[str, str]:
    """The upload form's fields, as a storage service would ask for them."""
    return {
        "key": f"attachments/{record['id']}/{record['name']}",
        "Content-Type": record["contentType"],
        "x-stub-token": record["token"],
    }


def multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    """The named parts of a ``multipart/form-data`` body (enough for an upload form)."""
    kind, _, params = content_type.partition(";")
    boundary = ""
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    if kind.strip().lower() != "multipart/form-data" or not boundary:
        raise bad("the upload must be multipart/form-data", "Content-Type")
    parts: dict[str, bytes] = {}
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise bad("a form part has no headers", "file")
        name = _part_name(head.decode("latin-1"))
        if name is None:
            raise bad("a form part has no name", "file")
        parts[name] = content.removesuffix(b"\r\n")
    return parts


def _part_name(head: str) -> str | None:
    for line in head.split("\r\n"):
        header, _, value = line.partition(":")
        if header.strip().lower() == "content-disposition":
            for piece in value.split(";"):
                key, _, raw = piece.strip().partition("=")
                if key == "name":
                    return raw.strip('"')
    return None
