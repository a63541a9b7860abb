"""Transports: what actually delivers a customer message to Kustomer."""

from ._attachments import AttachmentLimits
from ._retry import Retry
from ._wire import Routes
from .base import AsyncTransport, Transport
from .http import DEFAULT_TIMEOUT, AsyncHTTPTransport, HTTPTransport, default_idempotency_key
from .memory import MemoryTransport

__all__ = [
    "DEFAULT_TIMEOUT",
    "AsyncHTTPTransport",
    "AsyncTransport",
    "AttachmentLimits",
    "HTTPTransport",
    "MemoryTransport",
    "Retry",
    "Routes",
    "Transport",
    "default_idempotency_key",
]
