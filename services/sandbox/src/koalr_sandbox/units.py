"""Days, epoch milliseconds and money units.

Days are proleptic Gregorian ordinals (``date.toordinal()``) of UTC days. Money is held as integers
of 1e-5 cent ("units"), so every cent value has at most five decimal places and sums are exact.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Final

DAY_MS: Final[int] = 86_400_000
EPOCH_ORDINAL: Final[int] = date(1970, 1, 1).toordinal()
UNITS_PER_CENT: Final[int] = 100_000


def day_start_ms(day: int) -> int:
    """Epoch milliseconds at 00:00 UTC of ``day``."""
    return (day - EPOCH_ORDINAL) * DAY_MS


def day_of_ms(epoch_ms: int) -> int:
    """The UTC day that contains ``epoch_ms``."""
    return epoch_ms // DAY_MS + EPOCH_ORDINAL


def day_of_s(epoch_s: float) -> int:
    return day_of_ms(int(epoch_s * 1000))


def iso_day(day: int) -> str:
    return date.fromordinal(day).isoformat()


def parse_iso_day(text: str) -> int:
    return date.fromisoformat(text).toordinal()


def iso_instant(epoch_s: float) -> str:
    """``2026-03-18T15:04:05.123Z``."""
    moment = datetime.fromtimestamp(epoch_s, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cents_float(units: int) -> float:
    """A JSON number for an amount in units: the float nearest to the exact decimal.

    Amounts stay far below 2**53 units, so the division is exact before rounding and the float's
    shortest representation is the decimal itself.
    """
    return units / UNITS_PER_CENT


def cents_str(units: int) -> str:
    """The exact decimal string of an amount in units, without trailing zeros (``"12.5"``)."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), UNITS_PER_CENT)
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:05d}".rstrip("0")
