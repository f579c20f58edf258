"""The Copilot definitions of the architecture (section 6b) as pure functions.

For a user row ``r`` of ``users-1-day?day=D``:

- ``models(r)``: ``totals_by_model_feature[].user_initiated_interaction_count`` summed by model;
- ``requests(r) = max(r.user_initiated_interaction_count, Σ models(r)) + totals_by_cli.request_count``;
- ``"unattributed"``: ``requests(r) - Σ models(r)`` when positive, so a row's model breakdown adds
  up to its requests;
- a seat costs on D its list price per month (by its ``plan_type``; ``unknown`` takes the org's
  plan) over the days of D's month, when its ``created_at`` day is on or before D and it has no
  ``pending_cancellation_date`` on or before D.

Money is exact: a day's seat cost is one division, rounded once to :data:`CENT_QUANTUM` (1e-5
cent, half to even).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final, Protocol

from koalr_contracts import Plan
from koalr_providers.github.shapes import UserDayRow

UNATTRIBUTED: Final[str] = "unattributed"
SEAT_PRICE_CENTS: Final[Mapping[str, int]] = {"business": 1900, "enterprise": 3900}
"""List price of a seat per month, by plan."""
CENT_QUANTUM: Final[Decimal] = Decimal("0.00001")


class PricedSeat(Protocol):
    """What seat pricing needs of a seat (a listed seat, or the contracts' ``Seat``)."""

    @property
    def plan_type(self) -> str: ...

    @property
    def created_at(self) -> datetime: ...

    @property
    def pending_cancellation_date(self) -> date | None: ...


def models(row: UserDayRow) -> dict[str, int]:
    """``models(r)``: the row's interactions attributed to a model, by model."""
    return {name: count for name, count in row.model_interactions.items() if count > 0}


def requests(row: UserDayRow) -> int:
    """``requests(r)``: prompts (or, if more, model-attributed interactions) plus CLI requests."""
    return max(row.interactions, sum(models(row).values())) + row.cli_requests


def model_breakdown(row: UserDayRow) -> dict[str, int]:
    """``models(r)`` plus ``"unattributed"`` for what no model explains; adds up to requests."""
    breakdown = models(row)
    rest = requests(row) - sum(breakdown.values())
    if rest > 0:
        breakdown[UNATTRIBUTED] = breakdown.get(UNATTRIBUTED, 0) + rest
    return breakdown


def seat_price_cents(plan_type: str, org_plan: Plan) -> int:
    """A seat's list price per month; ``unknown`` (or any other type) takes the org's plan."""
    price = SEAT_PRICE_CENTS.get(plan_type)
    return SEAT_PRICE_CENTS[org_plan] if price is None else price


def seat_billed_on(seat: PricedSeat, day: date) -> bool:
    """Whether the seat costs on ``day``: granted by then and not cancelled by then."""
    granted = seat.created_at.astimezone(UTC).date()
    cancelled = seat.pending_cancellation_date
    return granted <= day and (cancelled is None or cancelled > day)


def seats_cents(seats: Iterable[PricedSeat], day: date, org_plan: Plan) -> Decimal:
    """What ``seats`` cost together on ``day``, exact to 1e-5 cent."""
    monthly = sum(
        seat_price_cents(seat.plan_type, org_plan) for seat in seats if seat_billed_on(seat, day)
    )
    days_in_month = calendar.monthrange(day.year, day.month)[1]
    return (Decimal(monthly) / days_in_month).quantize(CENT_QUANTUM, rounding=ROUND_HALF_EVEN)


def seat_cents(seat: PricedSeat, day: date, org_plan: Plan) -> Decimal:
    """What one seat costs on ``day``, exact to 1e-5 cent."""
    return seats_cents((seat,), day, org_plan)
