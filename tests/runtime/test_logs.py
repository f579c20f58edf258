"""Secrets never reach a log line: key-based and pattern-based redaction, tracebacks included."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest
import structlog

from koalr_runtime.logs import bind_correlation, configure_logging, get_logger, redact_text

CURSOR_KEY = "crsr_" + "0123456789abcdef" * 4
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiJ1MSIsIm9yZ19pZCI6Im8xIiwicm9sZSI6ImFkbWluIn0."
    "c2lnbmF0dXJlc2lnbmF0dXJl"
)


@pytest.fixture
def json_log_output(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    configure_logging("DEBUG", "json", service="test")
    structlog.reset_defaults()
    configure_logging("DEBUG", "json", service="test")
    yield stream
    structlog.contextvars.clear_contextvars()
    logging.getLogger().handlers.clear()
    structlog.reset_defaults()


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_secret_named_fields_are_blanked(json_log_output: io.StringIO) -> None:
    get_logger("t").info("connect", api_key=CURSOR_KEY, headers={"Authorization": "Bearer abc"})
    (line,) = _lines(json_log_output)
    assert line["api_key"] == "[REDACTED]"
    assert line["headers"] == {"Authorization": "[REDACTED]"}
    assert CURSOR_KEY not in json_log_output.getvalue()


def test_secrets_inside_messages_are_masked(json_log_output: io.StringIO) -> None:
    get_logger("t").debug(f"calling provider with {CURSOR_KEY} and Bearer {JWT}")
    text = json_log_output.getvalue()
    assert CURSOR_KEY not in text
    assert JWT not in text
    assert "[REDACTED]" in text


def test_stdlib_logs_and_tracebacks_are_masked(json_log_output: io.StringIO) -> None:
    def fail() -> None:
        raise RuntimeError(f"provider rejected key {CURSOR_KEY}")

    try:
        fail()
    except RuntimeError:
        logging.getLogger("aiokafka.fake").exception("failure with token %s", JWT)
    text = json_log_output.getvalue()
    assert "provider rejected key" in text
    assert CURSOR_KEY not in text
    assert JWT not in text


def test_correlation_id_is_bound_per_task(json_log_output: io.StringIO) -> None:
    bind_correlation("corr-1", topic="koalr.usage-records.v1")
    get_logger("t").info("handled")
    (line,) = _lines(json_log_output)
    assert line["correlation_id"] == "corr-1"
    assert line["topic"] == "koalr.usage-records.v1"
    assert line["service"] == "test"
    assert line["level"] == "info"


@pytest.mark.parametrize(
    "secret",
    [
        CURSOR_KEY,
        "key_" + "ab" * 32,
        "ghp_" + "A1b2C3d4" * 5,
        "github_pat_" + "x" * 30,
        "Bearer abcdefghijkl",
        "Basic a2V5XzEyMzQ1Njc4Og==",
        JWT,
    ],
)
def test_redact_text_patterns(secret: str) -> None:
    assert secret not in redact_text(f"before {secret} after")


def test_passwords_in_urls_are_masked() -> None:
    assert redact_text("postgresql://koalr:hunter2@db:5432/x") == (
        "postgresql://[REDACTED]@db:5432/x"
    )


def test_ordinary_text_is_untouched() -> None:
    text = "synced 30 days for integration 6f1c1f43 in 2.5 s"
    assert redact_text(text) == text
