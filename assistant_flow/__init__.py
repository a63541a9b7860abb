"""assistant_flow: Kustomer conversational assistants, with every message right on the wire.

A :class:`Flow` tracks each conversation through the assistant lifecycle (``init``,
``in_assistant``, ``ended``) and fills in what Kustomer's ``sendMessage`` needs:
``isInAssistantMode`` while the assistant runs, ``initAssistantPayload`` on the first reply,
``payload`` for a quick reply and ``lastDeflection`` after a knowledge-base deflection.

    >>> from assistant_flow import Flow, MemoryTransport
    >>> transport = MemoryTransport()
    >>> conv = Flow(transport=transport).conversation("conv_1")
    >>> conv.start_assistant({"assistant": "a1", "dialog": "d1", "node": "n1"})
    >>> conv.send_message(body="Hi").message_id
    'msg_1'
    >>> transport.sent[0]["isInAssistantMode"], "initAssistantPayload" in transport.sent[0]
    (True, True)
"""

from typing import TYPE_CHECKING

from . import stores
from ._conversation import RECORD_FORMAT, ConversationRecord, KeptMessage
from ._events import KUSTOMER_EVENTS
from ._exceptions import (
    AssistantFlowError,
    AttachmentError,
    ConfigurationError,
    ConflictError,
    CorruptRecordError,
    DialogScriptError,
    InvalidInputError,
    KustomerAPIError,
    KustomerConnectionError,
    KustomerErrorDetail,
    KustomerTimeoutError,
    LockLostError,
    LockTimeoutError,
    RateLimitedError,
    RetriesExhaustedError,
    StoreError,
    StoreUnavailableError,
    TransitionError,
    TransportError,
    UnexpectedResponseError,
    UnknownArticleError,
    UnknownChoiceError,
    UnknownEventError,
)
from ._flow import AsyncConversationHandle, AsyncFlow, ConversationHandle, Flow
from ._logging import redact_secrets
from ._machine import State
from ._messages import (
    Attachment,
    DeflectionArticle,
    InitAssistantPayload,
    InitAssistantResponse,
    InitialMessage,
    LastDeflection,
    ReceivedMessage,
    SendMessageOptions,
    SentMessage,
)
from ._templates import (
    Choice,
    DeflectionTemplate,
    MllNode,
    MllTemplate,
    QuickRepliesTemplate,
    QuickReplyAction,
    TextTemplate,
)
from .stores import (
    AsyncSQLiteStore,
    AsyncStore,
    AsyncStoreSession,
    MemoryStore,
    SQLiteStore,
    Store,
    StoreSession,
)
from .transports import (
    DEFAULT_TIMEOUT,
    AsyncHTTPTransport,
    AsyncTransport,
    AttachmentLimits,
    HTTPTransport,
    MemoryTransport,
    Retry,
    Routes,
    Transport,
    default_idempotency_key,
)

__version__ = "0.2.0"

if TYPE_CHECKING:
    from .stores.redis import AsyncRedisStore as AsyncRedisStore
    from .stores.redis import RedisStore as RedisStore

__all__ = [
    "DEFAULT_TIMEOUT",
    "KUSTOMER_EVENTS",
    "RECORD_FORMAT",
    "AssistantFlowError",
    "AsyncConversationHandle",
    "AsyncFlow",
    "AsyncHTTPTransport",
    "AsyncSQLiteStore",
    "AsyncStore",
    "AsyncStoreSession",
    "AsyncTransport",
    "Attachment",
    "AttachmentError",
    "AttachmentLimits",
    "Choice",
    "ConfigurationError",
    "ConflictError",
    "ConversationHandle",
    "ConversationRecord",
    "CorruptRecordError",
    "DeflectionArticle",
    "DeflectionTemplate",
    "DialogScriptError",
    "Flow",
    "HTTPTransport",
    "InitAssistantPayload",
    "InitAssistantResponse",
    "InitialMessage",
    "InvalidInputError",
    "KeptMessage",
    "KustomerAPIError",
    "KustomerConnectionError",
    "KustomerErrorDetail",
    "KustomerTimeoutError",
    "LastDeflection",
    "LockLostError",
    "LockTimeoutError",
    "MemoryStore",
    "MemoryTransport",
    "MllNode",
    "MllTemplate",
    "QuickRepliesTemplate",
    "QuickReplyAction",
    "RateLimitedError",
    "ReceivedMessage",
    "RetriesExhaustedError",
    "Retry",
    "Routes",
    "SQLiteStore",
    "SendMessageOptions",
    "SentMessage",
    "State",
    "Store",
    "StoreError",
    "StoreSession",
    "StoreUnavailableError",
    "TextTemplate",
    "TransitionError",
    "Transport",
    "TransportError",
    "UnexpectedResponseError",
    "UnknownArticleError",
    "UnknownChoiceError",
    "UnknownEventError",
    "__version__",
    "default_idempotency_key",
    "redact_secrets",
]


def __getattr__(name: str) -> type:
    """``RedisStore`` and ``AsyncRedisStore`` import redis-py on first use."""
    if name in ("RedisStore", "AsyncRedisStore"):
        found: type = getattr(stores, name)
        return found
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names, the lazily imported Redis stores included (not in ``__all__``).

    They stay out of ``__all__`` so that ``from assistant_flow import *`` works without redis-py.
    """
    return sorted([*__all__, "AsyncRedisStore", "RedisStore"])
