"""JSON output in which money keeps its exact decimal digits.

A ``Decimal`` usually leaves a JSON encoder either as a string or, through ``float``, as a binary
approximation. Our API renders money as JSON *numbers* (the contract's ``"total_cents":
123456.7``) written from the ``Decimal``'s own digits, so ``0.1 + 0.2`` cents leave as ``0.3``
and never as ``0.30000000000000004``. A client parsing with a decimal type gets the exact value
PostgreSQL summed.

The encoder is orjson: each ``Decimal`` becomes an ``orjson.Fragment`` of its plain digits
(:func:`decimal_text`), which orjson writes into the output as they are; dates and datetimes it
writes natively (``YYYY-MM-DD``; ISO 8601 with ``Z`` for UTC). The documents are the typed
responses of :mod:`koalr_metrics.schemas`. Choice, alternatives and measurements:
docs/decisions/0201-metrics-ingest-and-api.md.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

import orjson
from fastapi.responses import JSONResponse

_OPTIONS: Final = orjson.OPT_UTC_Z


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


def _default(value: object) -> orjson.Fragment:
    if isinstance(value, Decimal):
        return orjson.Fragment(decimal_text(value))
    raise TypeError(f"cannot render {type(value).__name__} as JSON")


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON: ``Decimal`` as exact numbers, dates as ``YYYY-MM-DD``, datetimes as
    ISO 8601 (``Z`` for UTC). Responses hold no floats (money and shares are ``Decimal``)."""
    return orjson.dumps(value, default=_default, option=_OPTIONS)


class ExactJSONResponse(JSONResponse):
    """A JSON response rendered by :func:`dumps`."""

    def render(self, content: Any) -> bytes:
        return dumps(content)
