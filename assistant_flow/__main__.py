"""``python -m assistant_flow``: the ``assistant-flow`` command line."""

from ._cli import console

console()
