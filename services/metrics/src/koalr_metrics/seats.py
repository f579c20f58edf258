"""GitHub Copilot seat cost (architecture section 6b), as pure functions.

A seat costs its list price per month (by ``plan_type``: business 1900 cents, enterprise 3900;
``unknown`` takes the organisation's plan) over the days of the month: on day D it costs
``price / days in D's month`` when its ``created_at`` UTC day is on or before D and it has no
``pending_cancellation_date`` on or before D.

Amounts are exact fractions, rounded once to 1e-5 cent (half-even; with months of 28 to 31 days a
tie cannot occur). What a day costs depends only on the sum of the prices of the seats billed
that day, which changes only where a seat starts or stops: a snapshot is reduced at ingest to
that step function (:class:`SeatCost`), so the summary never reads the seats themselves.
"""

from __future__ import annotations

import calendar
import functools
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Final

from koalr_contracts import Plan, Seat, SeatPlanType

SEAT_PRICE_CENTS: Final[dict[str, int]] = {"business": 1900, "enterprise": 3900}
"""List price of a Copilot seat per month, in cents, by plan."""
UNITS_PER_CENT: Final = 100_000
"""Seat costs are rounded to 1e-5 cent."""
ACTIVE_WINDOW: Final = timedelta(days=30)


class UnpricedSeatError(ValueError):
    """A seat whose plan has no Copilot list price (an ``unknown`` seat of a non-Copilot plan)."""


def seat_price_cents(plan_type: SeatPlanType, org_plan: Plan) -> int:
    """The seat's list price per month: by its plan type, ``unknown`` at the org's plan."""
    plan = org_plan if plan_type == "unknown" else plan_type
    price = SEAT_PRICE_CENTS.get(plan)
    if price is None:
        msg = (
            f"a seat of plan type {plan_type!r} in an organisation on the {org_plan!r} plan has "
            "no Copilot list price (expected business or enterprise)"
        )
        raise UnpricedSeatError(msg)
    return price


def days_in_month(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def _next_month(day: date) -> date:
    return date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)


def exact_cents(value: Fraction) -> Decimal:
    """``value`` cents rounded half-even to 1e-5 cent, as an exact decimal."""
    return Decimal(round(value * UNITS_PER_CENT)).scaleb(-5)


@functools.lru_cache(maxsize=4096)
def _day_share(monthly_cents: int, year: int, month: int) -> Decimal:
    """``monthly_cents`` over the days of the month, rounded half-even to 1e-5 cent. The same
    few values come on every summary (the seat sum changes rarely): computed once."""
    return exact_cents(Fraction(monthly_cents, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True, slots=True)
class BilledSeat:
    """What a seat's cost depends on: its monthly price and the days it is billed."""

    price_cents: int
    first_day: date
    """The ``created_at`` UTC day."""
    ends: date | None
    """The ``pending_cancellation_date`` (not billed from that day on), or None."""

    @classmethod
    def of(cls, seat: Seat, org_plan: Plan) -> BilledSeat:
        return cls(
            seat_price_cents(seat.plan_type, org_plan),
            seat.created_at.date(),
            seat.pending_cancellation_date,
        )

    def cost(self, start: date, end: date) -> Decimal:
        """The seat's cost over the inclusive range, exact, rounded once."""
        first = max(start, self.first_day)
        last = end if self.ends is None else min(end, self.ends - timedelta(days=1))
        total = Fraction(0)
        while first <= last:
            month_last = min(last, _next_month(first) - timedelta(days=1))
            billed = (month_last - first).days + 1
            total += Fraction(self.price_cents * billed, days_in_month(first))
            first = month_last + timedelta(days=1)
        return exact_cents(total)


@dataclass(frozen=True, slots=True)
class SeatCost:
    """The sum of the monthly prices of the seats billed on each day, as a step function:
    ``monthly_cents[i]`` from ``starts[i]`` (inclusive) until the next start; 0 before the
    first."""

    starts: Sequence[date]
    monthly_cents: Sequence[int]

    @classmethod
    def of(cls, seats: Iterable[BilledSeat]) -> SeatCost:
        deltas: dict[date, int] = {}
        for seat in seats:
            if seat.ends is not None and seat.ends <= seat.first_day:
                continue  # cancelled before it ever cost
            deltas[seat.first_day] = deltas.get(seat.first_day, 0) + seat.price_cents
            if seat.ends is not None:
                deltas[seat.ends] = deltas.get(seat.ends, 0) - seat.price_cents
        starts: list[date] = []
        monthly: list[int] = []
        running = 0
        for day in sorted(deltas):
            running += deltas[day]
            starts.append(day)
            monthly.append(running)
        return cls(starts, monthly)

    def monthly_on(self, day: date) -> int:
        index = bisect_right(self.starts, day)
        return self.monthly_cents[index - 1] if index else 0

    def on(self, day: date) -> Decimal:
        """What every seat together costs on ``day``, rounded once to 1e-5 cent."""
        monthly = self.monthly_on(day)
        if monthly == 0:
            return Decimal(0)
        return _day_share(monthly, day.year, day.month)


NO_SEAT_COST: Final = SeatCost((), ())


@dataclass(frozen=True, slots=True)
class SeatCounts:
    """The ``spend.seats`` block of a Copilot summary."""

    total: int
    never_used: int
    active_30d: int
    monthly_cents: int


def seat_counts(seats: Sequence[Seat], prices: Sequence[int], fetched_at: datetime) -> SeatCounts:
    """Seats listed, never used (no ``last_activity_at``), used within the 30 days before
    ``fetched_at`` (the instant the snapshot describes), and the sum of their monthly prices."""
    since = fetched_at - ACTIVE_WINDOW
    return SeatCounts(
        total=len(seats),
        never_used=sum(1 for s in seats if s.last_activity_at is None),
        active_30d=sum(
            1 for s in seats if s.last_activity_at is not None and s.last_activity_at >= since
        ),
        monthly_cents=sum(prices),
    )
