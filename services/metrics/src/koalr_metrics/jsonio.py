"""JSON output in which money keeps its exact decimal digits.

The standard encoder turns a ``Decimal`` either into a string or, through ``float``, into a
binary approximation. Our API renders money as JSON *numbers* (the contract's ``"total_cents":
123456.7``) written from the ``Decimal``'s own digits, so ``0.1 + 0.2`` cents leaves as ``0.3``
and never as ``0.30000000000000004``. A client parsing with a decimal type gets the exact value
PostgreSQL summed. Choice and alternatives: docs/decisions/0201-metrics-ingest-and-api.md.
"""

from __future__ import annotations

import json
import secrets
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from fastapi.responses import Response


def decimal_text(value: Decimal) -> str:
    """The shortest plain (non-exponent) decimal text of a finite ``Decimal``."""
    if value.is_zero():
        return "0"
    text = str(value)
    if "E" in text or "N" in text or "n" in text:
        # An exponent (a whole number with trailing zeros, or under 1e-6), or NaN/Infinity.
        if not value.is_finite():
            raise ValueError(f"{value} cannot be rendered as a JSON number")
        return format(value.normalize(), "f")
    # Plain digits already (what PostgreSQL's numeric gives): drop the trailing zeros.
    return text.rstrip("0").rstrip(".") if "." in text else text


def _datetime_text(value: datetime) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


# The C encoder cannot emit a raw number for a type it does not know, so a Decimal leaves it as a
# marked string ("\x00<token>:<digits>\x00<token>", the NULs escaped as \u0000 in the output)
# whose quotes and marks two plain replacements then remove. The tokens are random per process,
# so no real string can carry them.
_OPEN = f"\x00{secrets.token_hex(8)}:"
_CLOSE = f"\x00{secrets.token_hex(8)}"
_QUOTED_OPEN = '"' + _OPEN.replace("\x00", "\\u0000")
_QUOTED_CLOSE = _CLOSE.replace("\x00", "\\u0000") + '"'


def _default(value: object) -> str:
    if isinstance(value, Decimal):
        return f"{_OPEN}{decimal_text(value)}{_CLOSE}"
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
    text = _ENCODER.encode(value)
    return text.replace(_QUOTED_OPEN, "").replace(_QUOTED_CLOSE, "").encode("ascii")


class ExactJSONResponse(Response):
    """A JSON response rendered by :func:`dumps`."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)
