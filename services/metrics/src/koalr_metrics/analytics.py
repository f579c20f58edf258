"""What a viewer sees: the summary and members documents, with the privacy rules applied.

Pure functions over what the repository read. The rules (docs/metrics.md, "Privacy"):

- Admins see everything, nothing suppressed.
- Members never see per-member rows, names or emails. A day on which fewer than
  ``min_group_size`` members were active comes back suppressed (``null`` value and
  ``"suppressed": true``) in ``dau``, ``requests`` and, when spend is allowed, ``spend.daily``.
  The model breakdown, the spend total and ``freshness.days_with_data`` are computed from the
  visible days only, so they still add up to what the member sees and a suppressed day reveals
  nothing (not even that someone was active). Spend appears only when the org allows it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final, Literal
from uuid import UUID

from koalr_contracts import Provider, SyncState
from koalr_metrics.schemas import (
    CycleOut,
    DauPoint,
    MembersOut,
    PolicyOut,
    ProviderSummaryOut,
    RequestsPoint,
    Role,
    SpendPoint,
    SummaryOut,
)

DEFAULT_MIN_GROUP_SIZE: Final = 5
SHARE_QUANTUM: Final = Decimal("0.0001")
CURRENCY: Final[Literal["USD"]] = "USD"


@dataclass(frozen=True, slots=True)
class Policy:
    """An org's privacy policy; the defaults apply until an admin sets one."""

    members_can_see_spend: bool = False
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE


DEFAULT_POLICY: Final = Policy()


@dataclass(frozen=True, slots=True)
class DayRange:
    """Inclusive range of UTC days."""

    start: date
    end: date

    @classmethod
    def ending(cls, end: date, days: int) -> DayRange:
        if days < 1:
            raise ValueError("a range covers at least one day")
        return cls(end - timedelta(days=days - 1), end)

    @property
    def days(self) -> tuple[date, ...]:
        return _days(self.start, self.end)


@functools.lru_cache(maxsize=256)
def _days(start: date, end: date) -> tuple[date, ...]:
    """Every day from ``start`` to ``end`` (the same few ranges are asked for on every request
    of a day, so they are built once)."""
    return tuple(start + timedelta(days=i) for i in range((end - start).days + 1))


@dataclass(frozen=True, slots=True)
class DayRollup:
    day: date
    member_days: int
    active_users: int
    requests: int
    charged_cents: Decimal


@dataclass(frozen=True, slots=True)
class ModelTotal:
    model: str
    requests: int


@dataclass(frozen=True, slots=True)
class ProviderData:
    """One integration's figures over a range, as read from the rollups and projections."""

    integration_id: UUID
    provider: Provider
    state: SyncState | None
    data_through: date | None
    last_success_at: datetime | None
    cycle_start: date | None
    cycle_total_cents: Decimal | None
    cycle_spenders: int | None
    days: Sequence[DayRollup]
    """Only days that have rows, in any order."""
    models: Sequence[ModelTotal]
    """Per-model totals over the days the viewer may see (the query applies the threshold)."""


@dataclass(frozen=True, slots=True)
class MemberActivity:
    provider: Provider
    email: str | None
    name: str | None
    active_days: int
    requests: int
    top_model: str | None
    spend_cents: Decimal


def visible_threshold(is_admin: bool, policy: Policy) -> int:
    """Fewest active members a day needs to be shown to this viewer (0: every day)."""
    return 0 if is_admin else policy.min_group_size


def share(part: int, total: int) -> Decimal:
    """``part / total`` rounded half-even to 4 decimals; 0 when there is no total."""
    if total <= 0:
        return Decimal(0)
    return (Decimal(part) / Decimal(total)).quantize(SHARE_QUANTUM, rounding=ROUND_HALF_EVEN)


def provider_summary(
    data: ProviderData, day_range: DayRange, *, is_admin: bool, policy: Policy
) -> ProviderSummaryOut:
    """One entry of ``providers`` in the summary document."""
    threshold = visible_threshold(is_admin, policy)
    days = _days(day_range.start, day_range.end)
    by_day = {d.day: d for d in data.days}
    empty = DayRollup(day_range.start, 0, 0, 0, Decimal(0))
    dau: list[DauPoint] = []
    requests: list[RequestsPoint] = []
    daily_spend: list[SpendPoint] = []
    visible_requests = 0
    visible_cents = Decimal(0)
    days_with_data = 0
    for day in days:
        rollup = by_day.get(day, empty)
        if is_admin:
            dau.append({"date": day, "active_users": rollup.active_users})
            requests.append({"date": day, "requests": rollup.requests})
            daily_spend.append({"date": day, "cents": rollup.charged_cents})
        elif rollup.active_users < threshold:
            dau.append({"date": day, "active_users": None, "suppressed": True})
            requests.append({"date": day, "requests": None, "suppressed": True})
            daily_spend.append({"date": day, "cents": None, "suppressed": True})
            continue
        else:
            dau.append({"date": day, "active_users": rollup.active_users, "suppressed": False})
            requests.append({"date": day, "requests": rollup.requests, "suppressed": False})
            daily_spend.append({"date": day, "cents": rollup.charged_cents, "suppressed": False})
        # Only a day the viewer may see counts: a suppressed day tells a member nothing, not
        # even that someone was active on it.
        if rollup.member_days > 0:
            days_with_data += 1
        visible_requests += rollup.requests
        visible_cents += rollup.charged_cents

    models = sorted(data.models, key=lambda m: (-m.requests, m.model))
    entry: ProviderSummaryOut = {
        "provider": data.provider,
        "integration_id": str(data.integration_id),
        "freshness": {
            "data_through": data.data_through,
            "last_synced_at": data.last_success_at,
            "days_with_data": days_with_data,
            "days_in_range": len(days),
            "state": data.state or "pending",
        },
        "dau": dau,
        "requests": requests,
        "models": [
            {
                "model": m.model,
                "requests": m.requests,
                "share": share(m.requests, visible_requests),
            }
            for m in models
        ],
    }
    if is_admin or policy.members_can_see_spend:
        entry["spend"] = {
            "currency": CURRENCY,
            "total_cents": visible_cents,
            "daily": daily_spend,
            "cycle": _cycle(data, is_admin=is_admin, threshold=threshold),
        }
    return entry


def _cycle(data: ProviderData, *, is_admin: bool, threshold: int) -> CycleOut | None:
    if data.cycle_start is None or data.cycle_total_cents is None:
        return None
    if is_admin:
        return {"start": data.cycle_start, "total_cents": data.cycle_total_cents}
    if (data.cycle_spenders or 0) < threshold:
        return {"start": data.cycle_start, "total_cents": None, "suppressed": True}
    return {"start": data.cycle_start, "total_cents": data.cycle_total_cents, "suppressed": False}


def summary_document(
    org_id: str,
    viewer_role: Role,
    day_range: DayRange,
    providers: Sequence[ProviderData],
    *,
    policy: Policy,
) -> SummaryOut:
    is_admin = viewer_role == "admin"
    return {
        "org_id": org_id,
        "viewer_role": viewer_role,
        "range": {"start": day_range.start, "end": day_range.end},
        "providers": [
            provider_summary(p, day_range, is_admin=is_admin, policy=policy) for p in providers
        ],
    }


def members_document(members: Sequence[MemberActivity]) -> MembersOut:
    ordered = sorted(members, key=lambda m: (-m.requests, m.provider, m.email or "", m.name or ""))
    return {
        "members": [
            {
                "provider": m.provider,
                "email": m.email,
                "name": m.name,
                "active_days": m.active_days,
                "requests": m.requests,
                "top_model": m.top_model,
                "spend_cents": m.spend_cents,
            }
            for m in ordered
        ]
    }


def policy_document(org_id: str, policy: Policy) -> PolicyOut:
    return {
        "org_id": org_id,
        "members_can_see_spend": policy.members_can_see_spend,
        "min_group_size": policy.min_group_size,
    }
