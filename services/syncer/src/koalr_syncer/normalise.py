"""From Cursor's answers to our events: UsageRecords per member-day and cycle spend snapshots.

Definitions (architecture section 6, kept in docs/syncer.md):

- active on a day: ``isActive`` of the member's ``/teams/daily-usage-data`` row; a member with
  usage events that day but no row is active;
- requests on a day: the number of usage events that UTC day (``/teams/filtered-usage-events``);
- model breakdown: those events grouped by ``model``; charged cents: the sum of their
  ``chargedCents`` (older shape: ``tokenUsage.totalCents + cursorTokenFee``);
- per-kind counts, lines and tabs: the daily-usage counters;
- cycle spend: ``/teams/spend`` per member, ``overallSpendCents`` (older shape ``spendCents``).

Money is ``Decimal`` from parsing to publishing; sums are exact.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

from koalr_contracts import (
    CycleSpendSnapshot,
    MemberRef,
    MemberSpend,
    ModelUsage,
    Provider,
    UsageRecord,
)
from koalr_providers.cursor.shapes import DailyUsageRow, SpendRow, UsageEvent


@dataclass(frozen=True, slots=True)
class Origin:
    """Who the derived events belong to; copied onto every event."""

    org_id: str
    integration_id: UUID
    correlation_id: UUID
    provider: Provider = "cursor"


@dataclass(frozen=True, slots=True)
class MemberInfo:
    name: str | None
    external_id: str | None


class _ModelTally:
    __slots__ = ("cents", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.cents = Decimal(0)


class EventTally:
    """Usage events counted per UTC day, member and model."""

    def __init__(self) -> None:
        self._days: dict[date, dict[str, dict[str, _ModelTally]]] = defaultdict(
            lambda: defaultdict(dict)
        )
        self.events = 0
        self.without_email = 0

    def add(self, event: UsageEvent) -> None:
        if event.email is None:
            self.without_email += 1
            return
        models = self._days[event.day][event.email]
        tally = models.get(event.model)
        if tally is None:
            tally = models[event.model] = _ModelTally()
        tally.requests += 1
        tally.cents += event.charged_cents
        self.events += 1

    def add_all(self, events: Iterable[UsageEvent]) -> None:
        for event in events:
            self.add(event)

    def drop_days_before(self, day: date) -> None:
        """Forget everything counted for days before ``day`` (they were not fetched whole)."""
        for old in [d for d in self._days if d < day]:
            del self._days[old]

    def members_on(self, day: date) -> set[str]:
        return set(self._days.get(day, {}))

    def models(self, email: str, day: date) -> tuple[ModelUsage, ...]:
        cells = self._days.get(day, {}).get(email, {})
        return tuple(
            ModelUsage(model=model, requests=t.requests, charged_cents=t.cents)
            for model, t in sorted(cells.items())
        )


def usage_records(
    origin: Origin,
    *,
    days: Sequence[date],
    rows: Iterable[DailyUsageRow],
    tally: EventTally,
    directory: Mapping[str, MemberInfo],
    fetched_at: datetime,
) -> list[UsageRecord]:
    """One record per member and day of ``days`` for every member with a daily-usage row or
    usage events that day (inactive rows included, so a re-sync can replace an active day)."""
    wanted = set(days)
    rows_by_day: dict[date, dict[str, DailyUsageRow]] = defaultdict(dict)
    for daily in rows:
        if daily.day in wanted:
            rows_by_day[daily.day][daily.email] = daily
    records: list[UsageRecord] = []
    for day in sorted(wanted):
        day_rows = rows_by_day.get(day, {})
        for email in sorted(set(day_rows) | tally.members_on(day)):
            row = day_rows.get(email)
            models = tally.models(email, day)
            info = directory.get(email)
            external_id = info.external_id if info else None
            if external_id is None and row is not None:
                external_id = row.user_id
            fields: dict[str, object] = {}
            if row is not None:
                fields = {
                    "requests_by_kind": {
                        "chat": row.chat,
                        "agent": row.agent,
                        "composer": row.composer,
                        "cmdk": row.cmdk,
                    },
                    "lines_added": row.lines_added,
                    "lines_accepted": row.lines_accepted,
                    "tabs_shown": row.tabs_shown,
                    "tabs_accepted": row.tabs_accepted,
                }
            records.append(
                UsageRecord.model_validate(
                    {
                        "org_id": origin.org_id,
                        "integration_id": origin.integration_id,
                        "correlation_id": origin.correlation_id,
                        "provider": origin.provider,
                        "day": day,
                        "member": MemberRef(
                            email=email,
                            name=info.name if info else None,
                            external_id=external_id,
                        ),
                        "is_active": row.is_active if row is not None else True,
                        "requests": sum(m.requests for m in models),
                        "models": models,
                        "charged_cents": sum((m.charged_cents for m in models), Decimal(0)),
                        "fetched_at": fetched_at,
                        **fields,
                    }
                )
            )
    return records


def cycle_spend_snapshot(
    origin: Origin,
    rows: Iterable[SpendRow],
    cycle_start: date | None,
    fetched_at: datetime,
) -> CycleSpendSnapshot:
    """The current billing cycle's spend per member; the total is the sum of the members'."""
    by_email: dict[str, SpendRow] = {}
    for row in rows:
        by_email[row.email] = row
    members = tuple(
        MemberSpend(
            member=MemberRef(email=row.email, name=row.name, external_id=row.external_id),
            spend_cents=row.spend_cents,
            overall_spend_cents=row.overall_spend_cents,
        )
        for _, row in sorted(by_email.items())
    )
    if cycle_start is None:
        # The older API reported the current calendar month.
        today = fetched_at.astimezone(UTC).date()
        cycle_start = today.replace(day=1)
    return CycleSpendSnapshot(
        org_id=origin.org_id,
        integration_id=origin.integration_id,
        correlation_id=origin.correlation_id,
        provider=origin.provider,
        cycle_start=cycle_start,
        members=members,
        total_cents=sum((m.overall_spend_cents for m in members), Decimal(0)),
        fetched_at=fetched_at,
    )
