"""The insights' pure rules: the robust spend baseline, idle seats, activation, exact ratios."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest
from pydantic import ValidationError

from koalr_contracts import Alert, IdleSeatDetails, MemberRef, alert_key, decode_event, topics
from koalr_metrics.alerts import event_cents
from koalr_metrics.insights import (
    AnomalyRule,
    SeatHolder,
    exact_ratio,
    idle_holders,
    median,
    observed_wait,
    spend_anomalies,
)

RULE = AnomalyRule(k=Decimal("3.5"), min_delta_cents=Decimal(1000))
START = date(2026, 1, 1)


def _series(values: list[str]) -> dict[date, Decimal]:
    return {START + timedelta(days=i): Decimal(v) for i, v in enumerate(values)}


def test_a_day_above_median_plus_k_mads_is_an_anomaly() -> None:
    # 28 baseline days alternating 1000 and 1200 cents: median 1100, MAD 100, threshold 1450.
    baseline = ["1000", "1200"] * 14
    spend = _series([*baseline, "2100", "1450", "2200"])
    days = [START + timedelta(days=28 + i) for i in range(3)]
    found = spend_anomalies(spend, days, last_day=days[-1], first_data_day=START, rule=RULE)
    # Day 1: 2100 > 1450. Day 2: exactly the threshold, not above it. Day 3: its baseline
    # (13 x 1000, 13 x 1200, 2100, 1450) has median 1200 and MAD 200, threshold 1900; 2200 is
    # above it and 1000 over the median (the minimum).
    assert [
        (a.day, a.spend_cents, a.median_cents, a.mad_cents, a.threshold_cents) for a in found
    ] == [
        (days[0], Decimal(2100), Decimal(1100), Decimal(100), Decimal(1450)),
        (days[2], Decimal(2200), Decimal(1200), Decimal(200), Decimal(1900)),
    ]


def test_small_spend_noise_never_alerts_and_days_need_28_days_of_history() -> None:
    spend = _series(["1"] * 28 + ["500"])  # MAD 0: any rise is "above", but below the minimum
    day = START + timedelta(days=28)
    assert spend_anomalies(spend, [day], last_day=day, first_data_day=START, rule=RULE) == []
    spend = _series(["1"] * 28 + ["1100"])
    assert [
        a.day for a in spend_anomalies(spend, [day], last_day=day, first_data_day=START, rule=RULE)
    ] == [day]
    # Not judged: history starting later than the baseline's first day, or an incomplete day.
    later = START + timedelta(days=1)
    assert spend_anomalies(spend, [day], last_day=day, first_data_day=later, rule=RULE) == []
    assert (
        spend_anomalies(
            spend, [day], last_day=day - timedelta(days=1), first_data_day=START, rule=RULE
        )
        == []
    )


def test_median_is_exact_for_decimals() -> None:
    assert median([Decimal("0.1"), Decimal("0.2")]) == Decimal("0.15")
    assert median([Decimal(3), Decimal(1), Decimal(2)]) == Decimal(2)
    assert exact_ratio(Decimal(100), 3) == Decimal("33.33333")
    assert exact_ratio(Decimal("0.000025"), 1) == Decimal("0.00002")  # half-even


def _holder(key: str, *, last: date | None, active: bool, since: date) -> SeatHolder:
    return SeatHolder(
        member_key=key,
        email=None,
        login=key,
        name=None,
        seat_since=since,
        first_active=last,
        last_active=last,
        active_recently=active,
        never_used=last is None,
        monthly_cents=1900,
    )


def test_idle_holders_and_their_first_idle_day() -> None:
    since = date(2026, 1, 1)
    a = _holder("a", last=date(2026, 2, 1), active=False, since=since)
    b = _holder("b", last=None, active=False, since=since)
    c = _holder("c", last=date(2026, 3, 1), active=True, since=since)
    assert idle_holders([a, b, c]) == [b, a]  # never used first, then by last activity
    assert a.idle_since == date(2026, 3, 3)
    assert b.idle_since == date(2026, 1, 31)


def test_alert_keys_are_deterministic_and_details_match_the_kind() -> None:
    integration = uuid4()
    key = alert_key("idle_seat", "org", integration, "github:ann\x1f2026-01-31")
    assert key == alert_key("idle_seat", "org", integration, "github:ann\x1f2026-01-31")
    assert key != alert_key("idle_seat", "org", integration, "github:ann\x1f2026-02-01")
    assert key != alert_key("spend_anomaly", "org", integration, "github:ann\x1f2026-01-31")
    alert = Alert(
        alert_key=key,
        org_id="org",
        integration_id=integration,
        kind="idle_seat",
        provider="github_copilot",
        day=date(2026, 1, 31),
        details=IdleSeatDetails(
            member=MemberRef(login="ann"), last_active=None, monthly_cents=Decimal(1900)
        ),
    )
    assert decode_event(topics.ALERTS, alert.model_dump_json()) == alert
    with pytest.raises(ValidationError, match="carries details of kind 'idle_seat'"):
        Alert.model_validate({**alert.model_dump(), "kind": "spend_anomaly"})


def test_alert_amounts_fit_the_contract_cents() -> None:
    assert str(event_cents(Decimal(1100))) == "1100"  # unchanged when it fits
    assert str(event_cents(Decimal("0.123456785"))) == "0.12345678"  # half-even to 8 decimals
    assert str(event_cents(Decimal("0.123456795"))) == "0.12345680"


def test_activation_is_observed_only_for_seats_assigned_within_the_data() -> None:
    first = date(2026, 1, 1)
    seat = _holder("a", last=date(2026, 1, 9), active=True, since=date(2026, 1, 4))
    assert observed_wait(seat, "github_copilot", first) == 5
    early = _holder("b", last=date(2026, 1, 9), active=True, since=date(2025, 12, 1))
    assert observed_wait(early, "github_copilot", first) is None  # assigned before our history
    from_start = _holder("c", last=date(2026, 1, 1), active=True, since=first)
    assert observed_wait(from_start, "github_copilot", first) == 0  # Copilot's date is real
    assert observed_wait(from_start, "cursor", first) is None  # Cursor's is our first day
    never = _holder("d", last=None, active=False, since=date(2026, 1, 4))
    assert observed_wait(never, "github_copilot", first) is None
