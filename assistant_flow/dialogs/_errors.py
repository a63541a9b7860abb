"""The error a mistake in a dialog script raises; it lives in the library's error tree."""

from __future__ import annotations

from .._exceptions import DialogScriptError

__all__ = ["DialogScriptError"]
