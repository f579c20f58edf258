"""GitHub Copilot seat cost (section 6b): prices by plan, proration by the days of each month,
pending cancellations, and the seats block; expectations worked out by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from koalr_contracts import Seat, SeatsSnapshot
from koalr_metrics.ingest import seats_rows
from koalr_metrics.seats import BilledSeat, SeatCost, UnpricedSeatError, seat_price_cents
from tests.metrics.support import new_id

FETCHED = datetime(2026, 2, 3, 12, tzinfo=UTC)


def _seat(login: str, created: str, **fields: Any) -> Seat:
    return Seat.model_validate(
        {"member": {"login": login}, "created_at": f"{created}T10:00:00Z", **fields}
    )


def test_prices_by_plan_type_and_unknown_at_the_orgs_plan() -> None:
    assert seat_price_cents("business", "enterprise") == 1900
    assert seat_price_cents("enterprise", "business") == 3900
    assert seat_price_cents("unknown", "business") == 1900
    assert seat_price_cents("unknown", "enterprise") == 3900
    with pytest.raises(UnpricedSeatError, match="no Copilot list price"):
        seat_price_cents("unknown", "team")


def test_a_seat_is_prorated_by_the_days_of_each_month_across_a_boundary() -> None:
    seat = BilledSeat.of(_seat("ann", "2026-01-30"), "business")
    # Jan 30 and 31 at 1900/31, Feb 1 and 2 at 1900/28: 3800/31 + 3800/28 = 258.2949308...
    assert seat.cost(date(2026, 1, 29), date(2026, 2, 2)) == Decimal("258.29493")
    # Only days on or after its created_at day cost: Jan 29 is free.
    assert seat.cost(date(2026, 1, 29), date(2026, 1, 29)) == 0
    # A whole month costs the list price.
    assert seat.cost(date(2026, 2, 1), date(2026, 2, 28)) == 1900


def test_a_pending_cancellation_stops_the_cost_on_its_day() -> None:
    seat = BilledSeat.of(
        _seat("bob", "2026-01-30", pending_cancellation_date="2026-02-01"), "business"
    )
    # Billed Jan 30 and 31 only: 3800/31 = 122.5806451...
    assert seat.cost(date(2026, 1, 1), date(2026, 2, 28)) == Decimal("122.58065")


def test_the_days_cost_sums_the_seats_billed_that_day_rounded_once() -> None:
    plain = BilledSeat.of(_seat("ann", "2026-01-30", plan_type="business"), "enterprise")
    unknown = BilledSeat.of(_seat("cy", "2026-01-31", plan_type="unknown"), "enterprise")
    leaving = BilledSeat.of(
        _seat("bob", "2026-01-01", plan_type="business", pending_cancellation_date="2026-02-02"),
        "enterprise",
    )
    never = BilledSeat.of(
        _seat("dee", "2026-02-05", pending_cancellation_date="2026-02-05"), "business"
    )
    cost = SeatCost.of([plain, unknown, leaving, never])
    assert cost.on(date(2025, 12, 31)) == 0
    assert cost.on(date(2026, 1, 29)) == Decimal("61.29032")  # 1900 / 31 = 61.2903225...
    assert cost.on(date(2026, 1, 30)) == Decimal("122.58065")  # 3800 / 31 = 122.5806451...
    assert cost.on(date(2026, 1, 31)) == Decimal("248.3871")  # 7700 / 31 = 248.3870967...
    assert cost.on(date(2026, 2, 1)) == 275  # 7700 / 28
    assert cost.on(date(2026, 2, 2)) == Decimal("207.14286")  # 5800 / 28 = 207.1428571...
    assert cost.on(date(2026, 2, 5)) == Decimal("207.14286")  # "dee" never costs
    assert cost.on(date(2026, 3, 1)) == Decimal("187.09677")  # 5800 / 31 = 187.0967741...


def test_the_seats_block_counts_use_within_30_days_of_the_fetch() -> None:
    snapshot = SeatsSnapshot.model_validate(
        {
            "org_id": "o",
            "integration_id": new_id(),
            "provider": "github_copilot",
            "plan": "business",
            "fetched_at": FETCHED,
            "seats": [
                _seat("ann", "2026-01-01", last_activity_at=FETCHED - timedelta(days=30)),
                _seat(
                    "bob",
                    "2026-01-01",
                    plan_type="enterprise",
                    last_activity_at=FETCHED - timedelta(days=30, microseconds=1),
                ),
                _seat("cy", "2026-01-01", plan_type="unknown"),
            ],
        }
    )
    rows = seats_rows(snapshot)
    assert (rows.counts.total, rows.counts.never_used, rows.counts.active_30d) == (3, 1, 1)
    assert rows.counts.monthly_cents == 1900 + 3900 + 1900
    assert [(s[0], s[5]) for s in rows.seats] == [
        ("github:ann", 1900),
        ("github:bob", 3900),
        ("github:cy", 1900),
    ]
    assert list(rows.cost.starts) == [date(2026, 1, 1)]
    assert list(rows.cost.monthly_cents) == [7700]
