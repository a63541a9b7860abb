"""Log events a user can rely on, and what must never reach a log."""

from __future__ import annotations

import pytest
import structlog
from conftest import Harness
from payloads import init_response
from structlog.testing import capture_logs

from assistant_flow import TransportError, redact_secrets
from assistant_flow._logging import REDACTED


async def test_each_transition_and_send_is_logged_with_the_conversation_id(
    harness: Harness,
) -> None:
    with capture_logs() as logs:
        conv = await harness.started("conv_7")
        await conv.send_message("my secret question")
        await conv.end_assistant()
    events = [(log["event"], log["log_level"]) for log in logs]
    assert events == [
        ("transition", "info"),
        ("transition", "info"),
        ("message_sent", "info"),
        ("transition", "info"),
    ]
    assert all(log["conversation_id"] == "conv_7" for log in logs)
    assert [(log["source"], log["dest"]) for log in logs if log["event"] == "transition"] == [
        ("init", "in_assistant.awaiting_first_reply"),
        ("in_assistant.awaiting_first_reply", "in_assistant.conversing"),
        ("in_assistant.conversing", "ended"),
    ]
    sent = next(log for log in logs if log["event"] == "message_sent")
    assert sent["first_reply"] is True
    assert sent["in_assistant_mode"] is True
    assert sent["message_id"] == "msg_1"


async def test_message_text_is_never_logged(harness: Harness) -> None:
    with capture_logs() as logs:
        conv = await harness.started()
        await conv.send_message("my card number is 4111", payload="private-value")
        harness.transport.fail_next()
        with pytest.raises(TransportError):
            await conv.send_message("again 4111")
    text = repr(logs)
    assert "4111" not in text
    assert "private-value" not in text


async def test_a_failed_send_is_logged_as_a_warning_with_the_error_type(harness: Harness) -> None:
    conv = await harness.started()
    harness.transport.fail_next(error=ConnectionError("token=abc123 rejected"))
    with capture_logs() as logs, pytest.raises(TransportError):
        await conv.send_message("Hi")
    [failure] = [log for log in logs if log["event"] == "send_failed"]
    assert failure["log_level"] == "warning"
    assert failure["error"] == "ConnectionError"
    assert "abc123" not in repr(logs)


def test_redact_secrets_masks_secret_keys_at_any_depth() -> None:
    event = {
        "event": "request",
        "api_key": "sk_live_1",
        "headers": {"Authorization": "Bearer sk_live_2", "Accept": "application/json"},
        "attempts": [{"X-Kustomer-Tracking-Token": "t3"}],
        "conversation_id": "conv_1",
    }
    redacted = redact_secrets(None, "info", event)
    assert "sk_live" not in repr(redacted)
    assert "t3" not in repr(redacted)
    assert redacted["headers"] == {"Authorization": REDACTED, "Accept": "application/json"}
    assert redacted["conversation_id"] == "conv_1"


def test_redact_secrets_works_in_a_structlog_chain(capsys: pytest.CaptureFixture[str]) -> None:
    structlog.configure(
        processors=[redact_secrets, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(),
    )
    try:
        structlog.get_logger().info("configured", api_key="sk_live_9", org="acme")
    finally:
        structlog.reset_defaults()
    output = capsys.readouterr().out
    assert "sk_live_9" not in output
    assert '"org": "acme"' in output


def test_a_flow_accepts_its_own_logger() -> None:
    from assistant_flow import Flow, MemoryTransport

    with capture_logs() as logs:
        logger = structlog.get_logger("my_bot").bind(worker=3)
        conv = Flow(MemoryTransport(), logger=logger).conversation("conv_1")
        conv.start_assistant(init_response())
    assert logs[0]["worker"] == 3


# --- quiet by default -------------------------------------------------------------------------


def test_unconfigured_the_library_prints_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    from assistant_flow import Flow, MemoryTransport

    structlog.reset_defaults()
    transport = MemoryTransport()
    conv = Flow(transport).conversation("conv_1")
    conv.start_assistant(init_response())
    conv.send_message("Hi")
    transport.fail_next()  # a warning, which stdlib's last-resort handler would print
    with pytest.raises(TransportError):
        conv.send_message("again")
    printed = capfd.readouterr()
    assert (printed.out, printed.err) == ("", "")


def test_unconfigured_the_events_go_to_the_stdlib_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from assistant_flow import Flow, MemoryTransport

    structlog.reset_defaults()
    with caplog.at_level(logging.INFO, logger="assistant_flow"):
        conv = Flow(MemoryTransport()).conversation("conv_1")
        conv.start_assistant(init_response())
        conv.send_message("my secret question")
    records = [r for r in caplog.records if r.name == "assistant_flow"]
    assert [r.event_name for r in records] == ["transition", "transition", "message_sent"]  # type: ignore[attr-defined]
    sent = records[-1]
    assert sent.levelno == logging.INFO
    assert sent.event_fields["first_reply"] is True  # type: ignore[attr-defined]
    assert sent.getMessage().startswith("message_sent conversation_id='conv_1'")
    assert "secret" not in caplog.text


def test_once_structlog_is_configured_the_events_follow_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from assistant_flow import Flow, MemoryTransport

    # A flow made before the application configures structlog follows it all the same.
    conv = Flow(MemoryTransport()).conversation("conv_1")
    structlog.configure(
        processors=[structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(),
    )
    try:
        conv.start_assistant(init_response())
    finally:
        structlog.reset_defaults()
    assert '"event": "transition"' in capsys.readouterr().out
