"""JSON output in which money keeps its exact decimal digits.

The standard encoder turns a ``Decimal`` either into a string or, through ``float``, into a
binary approximation. Our API renders money as JSON *numbers* (the contract's ``"total_cents":
123456.7``) written from the ``Decimal``'s own digits, so ``0.1 + 0.2`` cents leaves as ``0.3``
and never as ``0.30000000000000004``. A client parsing with a decimal type gets the exact value
PostgreSQL summed. Choice and alternatives: docs/decisions/0201-metrics-ingest-and-api.md.
"""

from __future__ import annotations

import json
import re
import secrets
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from fastapi.responses import Response


def decimal_text(value: Decimal) -> str:
    """The shortest plain (non-exponent) decimal text of a finite ``Decimal``."""
    if not value.is_finite():
        raise ValueError(f"{value} cannot be rendered as a JSON number")
    if value.is_zero():
        return "0"
    return format(value.normalize(), "f")


def _datetime_text(value: datetime) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


# The C encoder cannot emit a raw number for a type it does not know, so a Decimal leaves it as a
# marked string ("\x00<token>:<digits>\x00", escaped as \u0000 in the output) that one regular
# expression then unquotes. The token is random per process, so no real string can carry it.
_TOKEN = secrets.token_hex(8)
_MARK = f"\x00{_TOKEN}:"
_MARKED = re.compile(r'"\\u0000' + _TOKEN + r':(-?[0-9]+(?:\.[0-9]+)?)\\u0000"')


def _default(value: object) -> str:
    if isinstance(value, Decimal):
        return f"{_MARK}{decimal_text(value)}\x00"
    if isinstance(value, datetime):
        return _datetime_text(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot render {type(value).__name__} as JSON")


_ENCODER = json.JSONEncoder(
    default=_default, separators=(",", ":"), allow_nan=False, ensure_ascii=True
)


def dumps(value: Any) -> bytes:
    """Compact JSON bytes; ``Decimal`` as exact numbers, dates as ``YYYY-MM-DD``, datetimes as
    ISO 8601 (``Z`` for UTC)."""
    return _MARKED.sub(r"\1", _ENCODER.encode(value)).encode("ascii")


class ExactJSONResponse(Response):
    """A JSON response rendered by :func:`dumps`."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)
