"""The public API: every exported name is importable, documented and typed."""

from __future__ import annotations

import doctest
import inspect
import logging
from pathlib import Path

import structlog

import assistant_flow


def test_every_exported_name_exists_and_has_a_docstring() -> None:
    undocumented = []
    for name in assistant_flow.__all__:
        value = getattr(assistant_flow, name)
        if callable(value) and not (inspect.getdoc(value) or "").strip():
            undocumented.append(name)
    assert undocumented == []


def test_public_methods_have_docstrings() -> None:
    missing = []
    for name in assistant_flow.__all__:
        cls = getattr(assistant_flow, name)
        if not inspect.isclass(cls) or issubclass(cls, Exception):
            continue
        for attribute, member in vars(cls).items():
            if attribute.startswith("_") or not callable(member):
                continue
            if not (inspect.getdoc(member) or "").strip():
                missing.append(f"{name}.{attribute}")
    assert missing == []


def test_the_package_ships_its_type_information() -> None:
    assert (Path(assistant_flow.__file__).parent / "py.typed").is_file()


def test_the_package_docstring_example_runs() -> None:
    # Unconfigured, structlog prints every event to stdout, which the doctest would read.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        failures, tried = doctest.testmod(assistant_flow, verbose=False)
    finally:
        structlog.reset_defaults()
    assert tried > 0
    assert failures == 0
