"""Names the dialog tools share, kept free of imports so the pytest plugin loads quickly."""

__all__ = ["SUFFIXES", "TARGETS"]

SUFFIXES = (".dialog.yaml", ".dialog.yml")
"""The file name endings of a dialog script."""

TARGETS = ("auto", "memory", "stub", "org")
"""Where a dialog's messages go. ``auto``: the stub for a played script, else memory."""
