"""The insights document: cost per active user, idle seats, seat activation and spend anomalies.

Pure functions over what the repository read (docs/metrics.md, "Insights"; why these
definitions: docs/decisions/0204-insights-and-alerts.md):

- **Spend** of a day is the summary's (:func:`koalr_metrics.analytics.provider_summary`, admin
  view): Cursor charged cents; GitHub Copilot premium requests plus the seat cost of the day.
- **Cost per active user**: spend over the range / distinct members active in the range,
  rounded once to 1e-5 cent (half-even); null when nobody was active.
- **Idle seats**: GitHub Copilot seats of the newest seats snapshot that are not counted in the
  summary's ``active_30d`` (no ``last_activity_at`` within the 30 days before the snapshot was
  read), at their list price; Cursor members known in the 30 days ending at ``data_through``
  (a member-day row, active or not, or a line of the newest spend snapshot) with no active day
  in those 30 days, at the org's ``cursor_seat_price_cents``.
- **Seat activation**: days from the seat (Copilot: the seat's ``created_at`` day; Cursor: the
  member's first day in our data, the only assignment date Cursor gives us) to the first
  active day on or after it, for seats assigned within the data we hold (a Copilot seat created
  on or after the first day of data, a Cursor member first seen after it); the median over
  those, and the seats never used. Seats assigned before our history are counted apart.
- **Spend anomalies**: a day (on or before ``data_through``) whose spend exceeds the median of
  the 28 days before it by more than ``k`` median absolute deviations *and* by at least a
  minimum amount; evaluated only once 28 days of data precede it.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final
from uuid import UUID

from koalr_contracts import Provider
from koalr_metrics.analytics import (
    CURRENCY,
    DEFAULT_POLICY,
    DayRange,
    ProviderData,
    provider_summary,
)
from koalr_metrics.schemas import (
    ActivationOut,
    AnomalyOut,
    IdleSeatsOut,
    InsightsOut,
    ProviderInsightsOut,
    SeatHolderOut,
)

BASELINE_DAYS: Final = 28
"""Trailing days a day's spend is compared with."""
IDLE_DAYS: Final = 30
"""A seat without activity for this many days is idle."""
CENTS_QUANTUM: Final = Decimal("0.00001")


@dataclass(frozen=True, slots=True)
class AnomalyRule:
    """When a day's spend is anomalous: above median + ``k``·MAD of its baseline and above the
    median by at least ``min_delta_cents`` (so cents of noise on a tiny spend never alert)."""

    k: Decimal
    min_delta_cents: Decimal


@dataclass(frozen=True, slots=True)
class SeatHolder:
    """A Copilot seat or a Cursor member, as the insights need it."""

    member_key: str
    email: str | None
    login: str | None
    name: str | None
    seat_since: date | None
    """Copilot: the seat's ``created_at`` day; Cursor: the member's first day in our data."""
    first_active: date | None
    """First active day on or after ``seat_since`` (None: none observed)."""
    last_active: date | None
    """Copilot: ``last_activity_at``'s day; Cursor: the last active day in our data."""
    active_recently: bool
    """Active within the 30-day idle window."""
    never_used: bool
    """Copilot: no ``last_activity_at``; Cursor: no active day in our data."""
    monthly_cents: int

    @property
    def idle_since(self) -> date | None:
        """The first day the holder counts as idle (30 days after the last activity, or after
        the seat was assigned when never used); None when unknown."""
        start = self.last_active or self.seat_since
        return None if start is None else start + timedelta(days=IDLE_DAYS)


@dataclass(frozen=True, slots=True)
class InsightsData:
    """One integration's inputs to the insights, beside its :class:`ProviderData` (read over
    the range extended by the 28 baseline days)."""

    integration_id: UUID
    provider: Provider
    active_members: int
    """Distinct members active in the range."""
    holders: Sequence[SeatHolder]
    first_data_day: date | None
    """The first day with any usage or day spend (earlier days are not a baseline)."""


@dataclass(frozen=True, slots=True)
class Anomaly:
    day: date
    spend_cents: Decimal
    median_cents: Decimal
    mad_cents: Decimal
    threshold_cents: Decimal


def baseline_range(day_range: DayRange) -> DayRange:
    """The range to read so that every day of ``day_range`` has its 28 baseline days."""
    return DayRange(day_range.start - timedelta(days=BASELINE_DAYS), day_range.end)


def daily_spend(data: ProviderData, day_range: DayRange) -> dict[date, Decimal]:
    """Spend per day exactly as the admin summary shows it (same code path)."""
    summary = provider_summary(data, day_range, is_admin=True, policy=DEFAULT_POLICY)
    spend = summary.get("spend")
    if spend is None:  # pragma: no cover - admins always get spend
        return {}
    return {p["date"]: p["cents"] or Decimal(0) for p in spend["daily"]}


def exact_ratio(numerator: Decimal, denominator: int) -> Decimal:
    """``numerator / denominator`` cents rounded half-even to 1e-5 cent."""
    return (numerator / Decimal(denominator)).quantize(CENTS_QUANTUM, rounding=ROUND_HALF_EVEN)


def median(values: Sequence[Decimal]) -> Decimal:
    """The median, exact for decimals (the mean of the two middle values for an even count)."""
    result: Decimal = statistics.median(values)
    return result


def spend_anomalies(
    spend: Mapping[date, Decimal],
    days: Sequence[date],
    *,
    last_day: date | None,
    first_data_day: date | None,
    rule: AnomalyRule,
) -> list[Anomaly]:
    """The days of ``days`` whose spend exceeds median + k·MAD of the 28 days before them and
    the median by at least the rule's minimum. A day after ``last_day`` (not complete) or
    without 28 days of data before it is not judged."""
    if last_day is None or first_data_day is None:
        return []
    found: list[Anomaly] = []
    for day in days:
        first_baseline = day - timedelta(days=BASELINE_DAYS)
        if day > last_day or first_baseline < first_data_day:
            continue
        baseline = [
            spend.get(first_baseline + timedelta(days=i), Decimal(0)) for i in range(BASELINE_DAYS)
        ]
        mid = median(baseline)
        mad = median([abs(x - mid) for x in baseline])
        threshold = mid + rule.k * mad
        cents = spend.get(day, Decimal(0))
        if cents > threshold and cents - mid >= rule.min_delta_cents:
            found.append(Anomaly(day, cents, mid, mad, threshold))
    return found


def idle_holders(holders: Sequence[SeatHolder]) -> list[SeatHolder]:
    return sorted(
        (h for h in holders if not h.active_recently),
        key=lambda h: (h.last_active or date.min, h.login or "", h.email or ""),
    )


def _holder_out(holder: SeatHolder) -> SeatHolderOut:
    return {
        "email": holder.email,
        "login": holder.login,
        "name": holder.name,
        "last_active": holder.last_active,
        "seat_since": holder.seat_since,
    }


def _idle_seats(holders: Sequence[SeatHolder]) -> IdleSeatsOut:
    idle = idle_holders(holders)
    return {
        "count": len(idle),
        "monthly_cents": sum(h.monthly_cents for h in idle),
        "seats": [_holder_out(h) for h in idle],
    }


def observed_wait(
    holder: SeatHolder, provider: Provider, first_data_day: date | None
) -> int | None:
    """Days from the seat to its first use, when both lie in the data we hold: a Copilot seat
    created on or after the first day of data, a Cursor member who first appears after it (one
    present on that day may have been there long before). None otherwise."""
    if holder.never_used or holder.first_active is None or holder.seat_since is None:
        return None
    if first_data_day is None or holder.seat_since < first_data_day:
        return None
    if provider == "cursor" and holder.seat_since == first_data_day:
        return None
    return (holder.first_active - holder.seat_since).days


def _activation(
    holders: Sequence[SeatHolder], provider: Provider, first_data_day: date | None
) -> ActivationOut:
    observed = [observed_wait(h, provider, first_data_day) for h in holders]
    waits = [w for w in observed if w is not None]
    never = sorted(
        (h for h in holders if h.never_used), key=lambda h: (h.login or "", h.email or "")
    )
    return {
        "median_days": median([Decimal(w) for w in waits]) if waits else None,
        "activated": len(waits),
        "never_used": {"count": len(never), "seats": [_holder_out(h) for h in never]},
        "first_use_unobserved": sum(
            1 for h, w in zip(holders, observed, strict=True) if not h.never_used and w is None
        ),
    }


def _anomaly_out(anomaly: Anomaly) -> AnomalyOut:
    return {
        "date": anomaly.day,
        "spend_cents": anomaly.spend_cents,
        "baseline_median_cents": anomaly.median_cents,
        "baseline_mad_cents": anomaly.mad_cents,
        "threshold_cents": anomaly.threshold_cents,
    }


def integration_anomalies(
    data: ProviderData, inputs: InsightsData, day_range: DayRange, rule: AnomalyRule
) -> tuple[dict[date, Decimal], list[Anomaly]]:
    """The integration's daily spend over :func:`baseline_range` (``data`` covers it) and the
    anomalies among ``day_range``'s days: what the insights show and the alerts publish."""
    spend = daily_spend(data, baseline_range(day_range))
    anomalies = spend_anomalies(
        spend,
        day_range.days,
        last_day=data.data_through,
        first_data_day=inputs.first_data_day,
        rule=rule,
    )
    return spend, anomalies


def provider_insights(
    data: ProviderData, inputs: InsightsData, day_range: DayRange, rule: AnomalyRule
) -> ProviderInsightsOut:
    """One provider's insights over ``day_range``; ``data`` covers :func:`baseline_range`."""
    spend, anomalies = integration_anomalies(data, inputs, day_range, rule)
    spend_in_range = sum((spend.get(d, Decimal(0)) for d in day_range.days), Decimal(0))
    return {
        "provider": data.provider,
        "integration_id": str(data.integration_id),
        "data_through": data.data_through,
        "cost_per_active_user": exact_ratio(spend_in_range, inputs.active_members)
        if inputs.active_members
        else None,
        "spend_cents": spend_in_range,
        "active_members": inputs.active_members,
        "idle_seats": _idle_seats(inputs.holders),
        "seat_activation": _activation(inputs.holders, data.provider, inputs.first_data_day),
        "spend_anomalies": {
            "k": rule.k,
            "min_delta_cents": rule.min_delta_cents,
            "days": [_anomaly_out(a) for a in anomalies],
        },
    }


def insights_document(
    org_id: str,
    day_range: DayRange,
    providers: Sequence[tuple[ProviderData, InsightsData]],
    rule: AnomalyRule,
) -> InsightsOut:
    return {
        "org_id": org_id,
        "range": {"start": day_range.start, "end": day_range.end},
        "currency": CURRENCY,
        "providers": [
            provider_insights(data, inputs, day_range, rule) for data, inputs in providers
        ],
    }
