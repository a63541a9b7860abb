"""Wire models: the exact JSON shapes of Kustomer's Core SDK, as pydantic models.

Python code uses snake_case; the wire uses Kustomer's camelCase, so ``to_wire()`` (or
``model_dump(by_alias=True)``) gives the documented shape. Models that go *out*
(:class:`SendMessageOptions` and what it carries) hold only documented fields and drop the
unset ones. Models that come *in* (:class:`InitAssistantResponse`, :class:`SentMessage`,
:class:`ReceivedMessage`) accept extra fields, because Kustomer adds fields over time.

Source: the ``KustomerCore.sendMessage`` page (options, ``lastDeflection``,
``initAssistantPayload``, ``callbackResponse``) and the ``initAssistant`` page.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_serializer
from pydantic.alias_generators import to_camel

from ._exceptions import AttachmentError, InvalidInputError

__all__ = [
    "Attachment",
    "DeflectionArticle",
    "InitAssistantPayload",
    "InitAssistantResponse",
    "InitialMessage",
    "InitialMessageMeta",
    "LastDeflection",
    "MessageMeta",
    "ReceivedMessage",
    "SendMessageOptions",
    "SentMessage",
]


_ModelT = TypeVar("_ModelT", bound=BaseModel)


def _trusted(
    cls: type[_ModelT], values: dict[str, Any], *, extra: dict[str, Any] | None = None
) -> _ModelT:
    """A model instance holding ``values`` (every field, in order), with no validation.

    What pydantic's ``model_construct`` does, without its per-field defaults and aliases
    loop, which makes it slower than validating. Only for values already known good.
    """
    model = cls.__new__(cls)
    setattr_ = object.__setattr__
    setattr_(model, "__dict__", values)
    setattr_(model, "__pydantic_fields_set__", set(values))
    setattr_(model, "__pydantic_extra__", extra)
    setattr_(model, "__pydantic_private__", None)
    return model


class WireModel(BaseModel):
    """Base of every wire model: camelCase on the wire, snake_case in Python, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid"
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready camelCase dict, with unset (``None``) fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class InboundModel(WireModel):
    """A shape Kustomer sends us: unknown fields are kept, not rejected.

    Validation errors name the fields but not their values: a server may echo anything
    (the message text, or the API key) in them, and errors end up in logs and tracebacks.
    """

    model_config = ConfigDict(extra="allow", hide_input_in_errors=True)


MAX_FILE_BYTES = 5_000_000
"""Kustomer's limit for one chat attachment (5 MB, read as 10**6 bytes each)."""


# --- initAssistant --------------------------------------------------------------------------


class InitialMessageMeta(WireModel):
    """``meta`` of an initial message; only ``template`` travels back to Kustomer."""

    model_config = ConfigDict(extra="ignore")

    template: dict[str, Any] | None = None


class InitialMessage(WireModel):
    """One greeting from ``initAssistant``, cut to the six fields ``initAssistantPayload`` carries.

    Any other field Kustomer sends is dropped on parsing, so the payload sent back holds
    exactly ``meta.template``, ``direction``, ``directionType``, ``importedAt``,
    ``trackingId`` and ``lang``.
    """

    model_config = ConfigDict(extra="ignore")

    meta: InitialMessageMeta | None = None
    direction: str | None = None
    direction_type: str | None = None
    imported_at: str | None = None
    tracking_id: str | None = None
    lang: str | None = None


class InitAssistantPayload(WireModel):
    """``initAssistantPayload``: what the first reply to an assistant must carry."""

    assistant: str = Field(min_length=1)
    dialog: str = Field(min_length=1)
    node: str = Field(min_length=1)
    initial_messages: list[InitialMessage] = Field(default_factory=list)


class InitAssistantResponse(InboundModel):
    """What ``KustomerCore.initAssistant`` returns.

    ``assistant``, ``dialog`` and ``node`` are required. ``initialMessages`` is documented as
    required too, but a response without it is read as "no greetings" rather than refused.
    """

    assistant: str = Field(min_length=1)
    dialog: str = Field(min_length=1)
    node: str = Field(min_length=1)
    initial_messages: list[InitialMessage] = Field(default_factory=list)
    attributes: dict[str, Any] = Field(default_factory=dict)

    def to_init_payload(self) -> InitAssistantPayload:
        """The ``initAssistantPayload`` built from this response (``attributes`` stays out)."""
        return InitAssistantPayload(
            assistant=self.assistant,
            dialog=self.dialog,
            node=self.node,
            initial_messages=self.initial_messages,
        )


# --- sendMessage ----------------------------------------------------------------------------


class DeflectionArticle(WireModel):
    """One knowledge-base article of a deflection, and how often the customer opened it.

    Read from the web shape (``meta.articles``: ``id``, ``version``, ``lang``, ``title``,
    ``url``) and from the mobile SDKs' (``KUSKBDeflectResult``: ``articleId``, ``webLink``;
    ``articleUrl`` in some versions), where every field but the id is optional. Taking
    ``articleId`` for ``id`` and ``webLink``/``articleUrl`` for ``url`` is **inferred** from
    the iOS SDK's ``KUSKBDeflectResult`` (developer.kustomer.com/chat-sdk/v2-iOS, "api-structs-
    kuskbdeflectresult"); where both ``id`` and ``articleId`` are present, ``id`` wins. It
    always goes out in the web shape that ``sendMessage`` documents for ``lastDeflection``.
    """

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=256, validation_alias=AliasChoices("id", "articleId"))
    version: str | None = None
    visited: int = Field(default=0, ge=0, le=2**31 - 1)
    lang: str | None = None
    title: str | None = None
    url: str | None = Field(
        default=None, validation_alias=AliasChoices("url", "webLink", "articleUrl")
    )


class LastDeflection(WireModel):
    """``lastDeflection``: the articles of the deflection a message replies to."""

    articles: list[DeflectionArticle]


class Attachment(WireModel):
    """A file sent with a message.

    In the Core SDK an attachment is ``{file: File}``; on the wire this model is
    ``{"file": {"name", "type", "size"}}``, the JSON-visible part of a browser ``File``. The
    bytes themselves are not part of the JSON: a transport that talks to Kustomer uploads them.
    """

    name: str = Field(min_length=1)
    content_type: str = Field(min_length=1)
    content: bytes = Field(repr=False, exclude=True)

    @property
    def size(self) -> int:
        """The size of the content in bytes."""
        return len(self.content)

    @classmethod
    def from_path(
        cls,
        path: str | Path,
        content_type: str | None = None,
        *,
        max_bytes: int = MAX_FILE_BYTES,
    ) -> Attachment:
        """Read a file; the content type is guessed from its name unless given.

        ``max_bytes`` (default: Kustomer's 5 MB a file) is checked against the file's size
        before anything is read, so a huge file is refused without loading it.
        """
        file = Path(path)
        size = file.stat().st_size
        if size > max_bytes:
            raise AttachmentError(
                f"attachment {file.name!r} is {size} bytes, over the {max_bytes} bytes a file "
                "may have: send a smaller file",
                field="path",
                name=file.name,
                limit=f"{max_bytes} bytes a file",
            )
        guessed = content_type or mimetypes.guess_type(file.name)[0]
        return cls(
            name=file.name,
            content_type=guessed or "application/octet-stream",
            content=file.read_bytes(),
        )

    @classmethod
    def from_bytes(cls, content: bytes, name: str, content_type: str | None = None) -> Attachment:
        """Wrap bytes under a file name; the content type is guessed from the name unless given."""
        guessed = content_type or mimetypes.guess_type(name)[0]
        return cls(name=name, content_type=guessed or "application/octet-stream", content=content)

    @classmethod
    def from_file(
        cls, file: BinaryIO, name: str | None = None, content_type: str | None = None
    ) -> Attachment:
        """Read an open binary file object from where it stands to its end.

        The name defaults to the file's own (``open(...)`` objects have one, the final part
        of its path is kept); a file object without a name, such as ``io.BytesIO``, needs
        ``name``. The content type is guessed from the name unless given.
        """
        if name is None:
            own = getattr(file, "name", None)
            if not isinstance(own, str) or not own:
                raise InvalidInputError(
                    "Attachment.from_file: this file object has no name; pass `name`",
                    field="name",
                )
            name = Path(own).name
        content = file.read()
        if not isinstance(content, bytes):
            raise InvalidInputError(
                "Attachment.from_file: the file must be opened in binary mode ('rb'), "
                f"its read() gave {type(content).__name__}",
                field="file",
            )
        return cls.from_bytes(content, name, content_type)

    def to_wire(self) -> dict[str, Any]:
        """``{"file": {"name", "type", "size"}}``."""
        return {"file": {"name": self.name, "type": self.content_type, "size": self.size}}


class SendMessageOptions(WireModel):
    """The ``options`` of ``KustomerCore.sendMessage``: one customer message on the wire.

    A flow fills ``is_in_assistant_mode``, ``init_assistant_payload`` and ``last_deflection``
    from the conversation's state; callers set the rest.

    ``delivery_scope`` never goes on the wire (``to_wire()`` leaves it out). The flow sets it
    on every message it sends to ``"{conversation_id}@{run}@{version}"``, the record the
    message was built from: each delivery has its own, and a kept message delivered again
    after a lost answer has the one it first had. :meth:`idempotency_key` is derived from it.
    """

    conversation_id: str = Field(min_length=1)
    body: str | None = None
    payload: str | None = Field(default=None, min_length=1)
    attachments: list[Attachment] | None = None
    last_deflection: LastDeflection | None = None
    is_in_assistant_mode: bool | None = None
    init_assistant_payload: InitAssistantPayload | None = None
    lang: str | None = Field(default=None, min_length=1)
    delivery_scope: str | None = Field(default=None, exclude=True)

    @classmethod
    def checked(
        cls,
        conversation_id: str,
        *,
        body: str | None,
        payload: str | None,
        attachments: list[Attachment] | None,
        last_deflection: LastDeflection | None,
        is_in_assistant_mode: bool | None,
        init_assistant_payload: InitAssistantPayload | None,
        lang: str | None,
        delivery_scope: str | None,
    ) -> SendMessageOptions:
        """A message from values already checked, built without validating them again.

        For the flow's step, whose inputs were validated where the caller handed them over
        (and whose record parts were validated as they came in): validating the finished
        message once more would cost a third of a send. Everything else builds messages with
        the validating constructor.
        """
        return _trusted(
            cls,
            {
                "conversation_id": conversation_id,
                "body": body,
                "payload": payload,
                "attachments": attachments,
                "last_deflection": last_deflection,
                "is_in_assistant_mode": is_in_assistant_mode,
                "init_assistant_payload": init_assistant_payload,
                "lang": lang,
                "delivery_scope": delivery_scope,
            },
        )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready camelCase dict, unset fields left out (pydantic's dump, by hand).

        Written out because it runs on every send; a test holds it to
        ``model_dump(mode="json", by_alias=True, exclude_none=True)``.
        """
        wire: dict[str, Any] = {"conversationId": self.conversation_id}
        if self.body is not None:
            wire["body"] = self.body
        if self.payload is not None:
            wire["payload"] = self.payload
        if self.attachments is not None:
            wire["attachments"] = [attachment.to_wire() for attachment in self.attachments]
        if self.last_deflection is not None:
            wire["lastDeflection"] = self.last_deflection.to_wire()
        if self.is_in_assistant_mode is not None:
            wire["isInAssistantMode"] = self.is_in_assistant_mode
        if self.init_assistant_payload is not None:
            wire["initAssistantPayload"] = self.init_assistant_payload.to_wire()
        if self.lang is not None:
            wire["lang"] = self.lang
        return wire

    def idempotency_key(self) -> str | None:
        """The ``Idempotency-Key`` of this delivery, or ``None`` when it has no scope.

        A hash of ``delivery_scope`` and of the message itself (its wire JSON and each
        file's bytes): the same for every send of one delivery, different for any other
        message, even one with the same scope.
        """
        if self.delivery_scope is None:
            return None
        digest = hashlib.sha256(self.delivery_scope.encode())
        wire = json.dumps(self.to_wire(), sort_keys=True, separators=(",", ":"))
        digest.update(b"\0" + wire.encode())
        for attachment in self.attachments or ():
            digest.update(hashlib.sha256(attachment.content).digest())
        return digest.hexdigest()[:32]

    def same_delivery(self, other: SendMessageOptions) -> bool:
        """Whether ``other`` says exactly what this message says (its scope aside)."""
        return self.to_wire() == other.to_wire() and [
            attachment.content for attachment in self.attachments or ()
        ] == [attachment.content for attachment in other.attachments or ()]

    @field_serializer("attachments")
    def _attachments_on_the_wire(
        self, attachments: list[Attachment] | None
    ) -> list[dict[str, Any]] | None:
        if attachments is None:
            return None
        return [attachment.to_wire() for attachment in attachments]


class SentMessage(InboundModel):
    """The ``callbackResponse`` of ``sendMessage``: the message as Kustomer stored it."""

    @classmethod
    def checked(
        cls,
        *,
        message_id: str,
        body: str | None,
        created_at: str,
        direction: str,
        conversation_id: str,
        attachments: list[dict[str, Any]] | None,
    ) -> SentMessage:
        """An answer made in this process (an in-memory transport's), not validated again.

        Answers from a server are read with ``model_validate``.
        """
        return _trusted(
            cls,
            {
                "message_id": message_id,
                "body": body,
                "created_at": created_at,
                "direction": direction,
                "conversation_id": conversation_id,
                "attachments": attachments,
            },
            extra={},
        )

    message_id: str
    body: str | None = None
    created_at: str
    direction: str
    conversation_id: str
    attachments: list[dict[str, Any]] | None = None


# --- messages the assistant (or an agent) sends ---------------------------------------------


class MessageMeta(InboundModel):
    """``meta`` of a received message: the assistant template and any deflection articles."""

    template: dict[str, Any] | None = None
    articles: list[DeflectionArticle] | None = None


class ReceivedMessage(InboundModel):
    """A message as ``onMessageReceived`` delivers it (every field optional on the way in)."""

    message_id: str | None = None
    body: str | None = None
    created_at: str | None = None
    direction: str | None = None
    conversation_id: str | None = None
    attachments: list[dict[str, Any]] | None = None
    meta: MessageMeta | None = None
    sent_by: dict[str, Any] | None = None
