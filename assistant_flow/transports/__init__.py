"""Transports: what actually delivers a customer message to Kustomer."""

from .base import AsyncTransport, Transport
from .memory import MemoryTransport

__all__ = ["AsyncTransport", "MemoryTransport", "Transport"]
