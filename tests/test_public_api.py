"""The public API: every exported name is importable, documented and typed."""

from __future__ import annotations

import doctest
import inspect
import logging
from pathlib import Path

import pytest
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


def test_the_redis_stores_are_listed_by_dir_but_not_star_exported() -> None:
    assert "RedisStore" not in assistant_flow.__all__
    assert {"RedisStore", "AsyncRedisStore", "Flow"} <= set(dir(assistant_flow))


def test_the_names_the_readme_gives_for_http_defaults_are_top_level() -> None:
    from assistant_flow.transports import http

    assert assistant_flow.DEFAULT_TIMEOUT is http.DEFAULT_TIMEOUT
    assert assistant_flow.default_idempotency_key is http.default_idempotency_key


def test_fail_next_with_a_bad_count_names_count() -> None:
    transport = assistant_flow.MemoryTransport()
    with pytest.raises(assistant_flow.InvalidInputError, match="`count`") as raised:
        transport.fail_next(0)
    assert raised.value.field == "count"
    conv = assistant_flow.Flow(transport).conversation("c")
    conv.send_message("Hi")  # nothing was queued to fail
    assert len(transport.sent) == 1
