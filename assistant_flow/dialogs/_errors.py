"""The error a mistake in a dialog script raises."""

from __future__ import annotations

from pathlib import Path

from .._exceptions import InvalidInputError

__all__ = ["DialogScriptError"]


class DialogScriptError(InvalidInputError):
    """A dialog script cannot be run as written: bad YAML, an unknown step, a wrong type.

    ``path`` is the script's file, ``line`` the 1-based line of the mistake (``None`` when it
    concerns the whole file) and ``field`` the script key at fault, as a dotted path
    (``steps.3.expect.isInAssistantMode``). ``str(error)`` starts with ``path:line:``, as
    compilers report, so editors and CI logs link straight to it.
    """

    def __init__(
        self, message: str, *, path: str | Path, line: int | None = None, field: str | None = None
    ) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}", field=field)
        self.path = Path(path)
        self.line = line
        self.reason = message
