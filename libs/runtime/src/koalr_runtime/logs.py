"""One structlog configuration for every service: JSON off a terminal, secrets redacted.

- Standard-library logs (aiokafka, FastStream, uvicorn, asyncpg) go through the same processors.
- :func:`redact_event` blanks the values of secret-looking keys (``api_key``, ``token``,
  ``authorization``, ``password``, ``secret``, ``credential``, ``jwt``, ``cookie``) and
  :func:`redact_text` masks credentials and bearer tokens anywhere in the final line, including
  exception messages and tracebacks, so a secret never reaches a log sink.
- :func:`bind_correlation` binds ``correlation_id`` (and friends) for the current task.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Literal, TextIO

import structlog
import structlog.tracebacks
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "[REDACTED]"

_SECRET_KEY_PARTS = (
    "api_key",
    "apikey",
    "token",
    "authorization",
    "password",
    "passwd",
    "secret",
    "credential",
    "jwt",
    "cookie",
    "sealing_key",
)

_SECRET_PATTERNS: tuple[re.Pattern[str], ...] = (
    # Authorization headers: Bearer / Basic / token schemes.
    re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}"),
    # JSON Web Tokens.
    re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
    # Cursor admin keys (current and legacy formats).
    re.compile(r"\bcrsr_[A-Za-z0-9]{8,}"),
    re.compile(r"\bkey_[A-Fa-f0-9]{32,}"),
    # GitHub tokens.
    re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"),
    # Credentials inside URLs (postgresql://user:password@host).
    re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),
)


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(part in lowered for part in _SECRET_KEY_PARTS)


def redact_text(text: str) -> str:
    """Mask every credential-looking substring of ``text``."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and _is_secret_key(k) else _redact_value(v))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(_redact_value(v) for v in value)
    return value


def redact_event(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: blank secret-named fields, mask secrets inside string values."""
    for key, value in list(event_dict.items()):
        if key in ("exc_info", "_record", "_from_structlog"):
            continue
        if _is_secret_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact_value(value)
    return event_dict


class _RedactingRenderer:
    """Wraps the final renderer and masks secrets in the rendered line (tracebacks included)."""

    def __init__(self, renderer: Processor) -> None:
        self._renderer = renderer

    def __call__(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> str:
        rendered = self._renderer(logger, name, event_dict)
        text = rendered if isinstance(rendered, str) else str(rendered)
        return redact_text(text)


def configure_logging(
    level: str = "INFO",
    log_format: Literal["auto", "json", "console"] = "auto",
    service: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and the standard library once per process (logs to ``stream``,
    standard output unless given)."""
    out = sys.stdout if stream is None else stream
    as_json = log_format == "json" or (log_format == "auto" and not out.isatty())
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        redact_event,
    ]
    if service:
        shared.insert(0, _add_service(service))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    exception_processor: Processor = (
        structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        )
        if as_json
        else structlog.processors.format_exc_info
    )
    final: Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            exception_processor,
            _RedactingRenderer(final),
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "httpx", "httpcore", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def _add_service(service: str) -> Processor:
    def add(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add


def bind_correlation(correlation_id: str | None, **fields: Any) -> None:
    """Bind the correlation id (and e.g. topic, integration_id) to this task's log lines."""
    structlog.contextvars.clear_contextvars()
    values: MutableMapping[str, Any] = {k: v for k, v in fields.items() if v is not None}
    if correlation_id:
        values["correlation_id"] = correlation_id
    structlog.contextvars.bind_contextvars(**values)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
