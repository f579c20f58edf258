"""From GitHub Copilot's answers to our events: UsageRecords per member-day, the seats snapshot and
the premium-request spend of a day.

Definitions (architecture section 6b, computed by :mod:`koalr_providers.github.definitions`):

- active on a day: a row for the user in the day's ``users-1-day`` report;
- requests: ``max(interactions, Σ models) + CLI requests``; the model breakdown adds
  ``"unattributed"`` for what no model explains, so it adds up to the requests;
- Copilot charges no cents per request: ``charged_cents`` is 0; the day's spend is the premium
  requests (one :class:`~koalr_contracts.DaySpend` per day, 0 included) plus the seats' cost,
  which the metrics service derives from the :class:`~koalr_contracts.SeatsSnapshot`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal

from koalr_contracts import (
    DaySpend,
    MemberRef,
    ModelUsage,
    Plan,
    Seat,
    SeatsSnapshot,
    UsageRecord,
)
from koalr_providers.github.definitions import model_breakdown, requests
from koalr_providers.github.shapes import CopilotSeat, UserDayRow
from koalr_syncer.normalise import Origin


def copilot_member(login: str, user_id: int | None) -> MemberRef:
    return MemberRef(login=login, external_id=None if user_id is None else str(user_id))


def copilot_usage_records(
    origin: Origin, day: date, rows: Iterable[UserDayRow], fetched_at: datetime
) -> list[UsageRecord]:
    """One record per user row of ``day``'s report (a row means the user was active)."""
    records: list[UsageRecord] = []
    for row in sorted(rows, key=lambda r: r.login):
        breakdown = model_breakdown(row)
        records.append(
            UsageRecord(
                org_id=origin.org_id,
                integration_id=origin.integration_id,
                correlation_id=origin.correlation_id,
                provider=origin.provider,
                day=day,
                member=copilot_member(row.login, row.user_id),
                is_active=True,
                requests=requests(row),
                models=tuple(
                    ModelUsage(model=model, requests=count)
                    for model, count in sorted(breakdown.items())
                ),
                charged_cents=Decimal(0),
                fetched_at=fetched_at,
            )
        )
    return records


def premium_day_spend(origin: Origin, day: date, cents: Decimal, fetched_at: datetime) -> DaySpend:
    return DaySpend(
        org_id=origin.org_id,
        integration_id=origin.integration_id,
        correlation_id=origin.correlation_id,
        provider=origin.provider,
        day=day,
        source="premium_requests",
        cents=cents,
        fetched_at=fetched_at,
    )


def seats_snapshot(
    origin: Origin, plan: Plan, seats: Iterable[CopilotSeat], fetched_at: datetime
) -> SeatsSnapshot:
    """Every listed seat, one per login (a login listed twice keeps its last listing)."""
    by_login = {seat.login: seat for seat in seats}
    return SeatsSnapshot(
        org_id=origin.org_id,
        integration_id=origin.integration_id,
        correlation_id=origin.correlation_id,
        provider=origin.provider,
        plan=plan,
        seats=tuple(
            Seat(
                member=copilot_member(seat.login, seat.user_id),
                plan_type=seat.plan_type,
                created_at=seat.created_at,
                pending_cancellation_date=seat.pending_cancellation_date,
                last_activity_at=seat.last_activity_at,
                last_activity_editor=seat.last_activity_editor,
            )
            for _, seat in sorted(by_login.items())
        ),
        fetched_at=fetched_at,
    )
