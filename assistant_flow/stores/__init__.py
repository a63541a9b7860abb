"""Stores: where conversation records live between messages."""

from .base import AsyncStore, Store
from .memory import MemoryStore

__all__ = ["AsyncStore", "MemoryStore", "Store"]
