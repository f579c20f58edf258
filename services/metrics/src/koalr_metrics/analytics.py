"""What a viewer sees: the summary and members documents, with the privacy rules applied.

Pure functions over what the repository read. The rules (docs/metrics.md, "Privacy"):

- Admins see everything, nothing suppressed.
- Members never see per-member rows, names or emails. A day on which fewer than
  ``min_group_size`` members were active comes back suppressed (``null`` value and
  ``"suppressed": true``) in ``dau``, ``requests`` and, when spend is allowed, ``spend.daily``.
  The model breakdown, the spend total and ``freshness.days_with_data`` are computed from the
  visible days only, so they still add up to what the member sees and a suppressed day reveals
  nothing (not even that someone was active). Spend appears only when the org allows it.
- GitHub Copilot's spend on a day is its premium requests plus the cost of its seats on that day
  (:mod:`koalr_metrics.seats`); its cycle is the calendar month. The seats block is for admins
  only.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final, Literal
from uuid import UUID

from koalr_contracts import ErrorCode, Provider, SyncState
from koalr_metrics.schemas import (
    CycleOut,
    DauPoint,
    MembersOut,
    PolicyOut,
    ProviderSummaryOut,
    ReasonOut,
    RequestsPoint,
    Role,
    SpendOut,
    SpendPoint,
    SummaryOut,
)
from koalr_metrics.seats import NO_SEAT_COST, BilledSeat, SeatCost, SeatCounts

DEFAULT_MIN_GROUP_SIZE: Final = 5
DEFAULT_CURSOR_SEAT_PRICE_CENTS: Final = 4000
"""Cursor Teams list price per seat and month ($40), until an admin sets the org's own."""
DEFAULT_RETENTION_DAYS: Final = 400
SHARE_QUANTUM: Final = Decimal("0.0001")
CURRENCY: Final[Literal["USD"]] = "USD"
ZERO_CENTS: Final = Decimal(0)


@dataclass(frozen=True, slots=True)
class Policy:
    """An org's privacy policy; the defaults apply until an admin sets one."""

    members_can_see_spend: bool = False
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE
    cursor_seat_price_cents: int = DEFAULT_CURSOR_SEAT_PRICE_CENTS
    retention_days: int = DEFAULT_RETENTION_DAYS
    """Member days older than this are deleted by the retention job."""


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

    @property
    def first_spend_day(self) -> date:
        """The first day whose day spend a summary reads: the range's start, or the start of
        the calendar month of its end (the Copilot cycle) when that is earlier."""
        return min(self.start, self.end.replace(day=1))


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
    day_spend: Sequence[tuple[date, Decimal]] = ()
    """Spend outside the member rows (Copilot premium requests) per day, from the earlier of
    the range's start and the Copilot cycle's start through the range's end."""
    seat_cost: SeatCost = NO_SEAT_COST
    seat_counts: SeatCounts | None = None
    """The seats block; None without a seats snapshot."""
    reason: StatusReason | None = None
    """The last sync status's reason; None when it gave none."""


@dataclass(frozen=True, slots=True)
class StatusReason:
    """The reason code and message of the integration's last sync status."""

    code: ErrorCode
    message: str | None


@dataclass(frozen=True, slots=True)
class MemberActivity:
    provider: Provider
    email: str | None
    login: str | None
    name: str | None
    active_days: int
    requests: int
    top_model: str | None
    spend_cents: Decimal
    """Charged cents of the member's days in the range."""
    seat: BilledSeat | None = None
    """The member's seat (Copilot), whose cost over the range adds to ``spend_cents``."""


def visible_threshold(is_admin: bool, policy: Policy) -> int:
    """Fewest active members a day needs to be shown to this viewer (0: every day)."""
    return 0 if is_admin else policy.min_group_size


def share(part: int, total: int) -> Decimal:
    """``part / total`` rounded half-even to 4 decimals; 0 when there is no total."""
    if total <= 0:
        return Decimal(0)
    return (Decimal(part) / Decimal(total)).quantize(SHARE_QUANTUM, rounding=ROUND_HALF_EVEN)


def cycle_start(provider: Provider, day: date) -> date | None:
    """Where the billing cycle containing ``day`` starts when it is known without a provider
    snapshot: GitHub Copilot bills by calendar month. None for Cursor (its spend snapshot says)."""
    return day.replace(day=1) if provider == "github_copilot" else None


def provider_summary(
    data: ProviderData, day_range: DayRange, *, is_admin: bool, policy: Policy
) -> ProviderSummaryOut:
    """One entry of ``providers`` in the summary document."""
    threshold = visible_threshold(is_admin, policy)
    days = _days(day_range.start, day_range.end)
    by_day = {d.day: d for d in data.days}
    extra = dict(data.day_spend)
    seat_cost = data.seat_cost
    empty = DayRollup(day_range.start, 0, 0, 0, Decimal(0))
    dau: list[DauPoint] = []
    requests: list[RequestsPoint] = []
    daily_spend: list[SpendPoint] = []
    visible_requests = 0
    visible_cents = Decimal(0)
    days_with_data = 0
    for day in days:
        rollup = by_day.get(day, empty)
        cents = rollup.charged_cents
        if extra or seat_cost.starts:
            cents += extra.get(day, ZERO_CENTS) + seat_cost.on(day)
        if is_admin:
            dau.append({"date": day, "active_users": rollup.active_users})
            requests.append({"date": day, "requests": rollup.requests})
            daily_spend.append({"date": day, "cents": cents})
        elif rollup.active_users < threshold:
            dau.append({"date": day, "active_users": None, "suppressed": True})
            requests.append({"date": day, "requests": None, "suppressed": True})
            daily_spend.append({"date": day, "cents": None, "suppressed": True})
            continue
        else:
            dau.append({"date": day, "active_users": rollup.active_users, "suppressed": False})
            requests.append({"date": day, "requests": rollup.requests, "suppressed": False})
            daily_spend.append({"date": day, "cents": cents, "suppressed": False})
        # Only a day the viewer may see counts: a suppressed day tells a member nothing, not
        # even that someone was active on it.
        if rollup.member_days > 0:
            days_with_data += 1
        visible_requests += rollup.requests
        visible_cents += cents

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
            "reason": _reason(data),
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
        spend: SpendOut = {
            "currency": CURRENCY,
            "total_cents": visible_cents,
            "daily": daily_spend,
            "cycle": _cycle(data, day_range.end, is_admin=is_admin, threshold=threshold),
        }
        if is_admin and data.seat_counts is not None:
            counts = data.seat_counts
            spend["seats"] = {
                "total": counts.total,
                "never_used": counts.never_used,
                "active_30d": counts.active_30d,
                "monthly_cents": counts.monthly_cents,
            }
        entry["spend"] = spend
    return entry


def _reason(data: ProviderData) -> ReasonOut | None:
    """Why the integration is in error; None in any other state (a reason a later status did not
    clear says nothing about a sync that is not failing)."""
    if data.state != "error" or data.reason is None:
        return None
    return {"code": data.reason.code, "message": data.reason.message}


def _cycle(data: ProviderData, end: date, *, is_admin: bool, threshold: int) -> CycleOut | None:
    start = cycle_start(data.provider, end)
    if start is not None:
        # Copilot: the calendar month through the range's end, from the day spend and the seats
        # (section 6b's spend of a day); a member needs min_group_size seats behind the total.
        total = sum(
            (cents for day, cents in data.day_spend if start <= day <= end), Decimal(0)
        ) + sum((data.seat_cost.on(day) for day in _days(start, end)), Decimal(0))
        spenders = data.seat_counts.total if data.seat_counts is not None else 0
    elif data.cycle_start is None or data.cycle_total_cents is None:
        return None
    else:
        start, total, spenders = data.cycle_start, data.cycle_total_cents, data.cycle_spenders or 0
    if is_admin:
        return {"start": start, "total_cents": total}
    if spenders < threshold:
        return {"start": start, "total_cents": None, "suppressed": True}
    return {"start": start, "total_cents": total, "suppressed": False}


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


def member_spend_cents(member: MemberActivity, day_range: DayRange) -> Decimal:
    """The member's charged cents plus their seat's cost over the range (section 6b)."""
    if member.seat is None:
        return member.spend_cents
    return member.spend_cents + member.seat.cost(day_range.start, day_range.end)


def members_document(members: Sequence[MemberActivity], day_range: DayRange) -> MembersOut:
    ordered = sorted(
        members,
        key=lambda m: (-m.requests, m.provider, m.email or "", m.login or "", m.name or ""),
    )
    return {
        "members": [
            {
                "provider": m.provider,
                "email": m.email,
                "login": m.login,
                "name": m.name,
                "active_days": m.active_days,
                "requests": m.requests,
                "top_model": m.top_model,
                "spend_cents": member_spend_cents(m, day_range),
            }
            for m in ordered
        ]
    }


def policy_document(org_id: str, policy: Policy) -> PolicyOut:
    return {
        "org_id": org_id,
        "members_can_see_spend": policy.members_can_see_spend,
        "min_group_size": policy.min_group_size,
        "cursor_seat_price_cents": policy.cursor_seat_price_cents,
        "retention_days": policy.retention_days,
    }
