"""Money leaves the API as exact JSON numbers."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from koalr_metrics.jsonio import decimal_text, dumps


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("0.30000000"), "0.3"),
        (Decimal("123456.70"), "123456.7"),
        (Decimal(100), "100"),
        (Decimal("1E+3"), "1000"),
        (Decimal("0.00000001"), "0.00000001"),
        (Decimal("-0.000"), "0"),
        (Decimal("21.36232"), "21.36232"),
        (Decimal("12345678901234567890.12345678"), "12345678901234567890.12345678"),
    ],
)
def test_decimals_keep_their_exact_digits(value: Decimal, text: str) -> None:
    assert decimal_text(value) == text


def test_sums_do_not_drift_like_floats() -> None:
    cents = sum((Decimal("0.1") for _ in range(10)), Decimal(0)) + Decimal("0.2")
    body = dumps({"total_cents": cents})
    assert body == b'{"total_cents":1.2}'
    assert json.loads(body, parse_float=Decimal)["total_cents"] == Decimal("1.2")


def test_documents_render_like_the_standard_encoder_for_plain_types() -> None:
    document = {
        "s": 'quote " and é',
        "n": None,
        "t": True,
        "f": False,
        "i": 42,
        "l": [1, {"x": "y"}, []],
        "d": date(2026, 11, 25),
        "ts": datetime(2026, 11, 25, 10, 30, tzinfo=UTC),
        "share": 0.25,
    }
    parsed = json.loads(dumps(document))
    assert parsed == {
        "s": 'quote " and é',
        "n": None,
        "t": True,
        "f": False,
        "i": 42,
        "l": [1, {"x": "y"}, []],
        "d": "2026-11-25",
        "ts": "2026-11-25T10:30:00Z",
        "share": 0.25,
    }


@pytest.mark.parametrize("bad", [Decimal("NaN"), Decimal("-Infinity"), object()])
def test_values_that_are_not_json_are_refused(bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        dumps({"x": bad})
