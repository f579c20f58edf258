"""The syncer's state, typed: integrations, runs and the work the scheduler finds due.

Closed sets are ``Literal`` types from the contracts (provider, plan, status, reason codes) or
:class:`RunStatus`; rows from PostgreSQL become these dataclasses in the repository modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Final, Literal
from uuid import UUID

from koalr_contracts import ErrorCode, IntegrationStatus, Plan, Provider, SyncReason


class RunStatus(StrEnum):
    RUNNING = "running"
    RETRYING = "retrying"
    BLOCKED = "blocked"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


JobStatus = Literal["running", "done"]
"""A job delivery being worked on, or done (a redelivery of a done job is skipped)."""

ACTIVE_RUN_STATUSES: Final = (RunStatus.RUNNING, RunStatus.RETRYING, RunStatus.BLOCKED)
FINISHED_RUN_STATUSES: Final = (RunStatus.DONE, RunStatus.FAILED, RunStatus.CANCELLED)


class EventOrder(StrEnum):
    """Where an integration event stands against the last one applied to its integration."""

    NEW = "new"
    """The integration is not registered yet."""
    NEXT = "next"
    """Comes after the last applied event: apply it."""
    REDELIVERED = "redelivered"
    """The last applied event itself, delivered again."""
    STALE = "stale"
    """An older event (or an equal sequence from another event): skip it."""

    @property
    def applies(self) -> bool:
        return self in (EventOrder.NEW, EventOrder.NEXT)


def order_of(event_id: UUID, sequence: int, last_event_id: UUID, last_sequence: int) -> EventOrder:
    """The ordering rule of integration events: apply iff ``sequence > last``, or both are 0 (an
    unordered event of schema version 1, applied in arrival order). Clocks are never compared."""
    if event_id == last_event_id:
        return EventOrder.REDELIVERED
    if sequence > last_sequence or sequence == last_sequence == 0:
        return EventOrder.NEXT
    return EventOrder.STALE


@dataclass(frozen=True, slots=True)
class Integration:
    integration_id: UUID
    org_id: str
    provider: Provider
    external_id: str
    plan: Plan
    status: IntegrationStatus
    status_reason: ErrorCode | None
    sealed_credential: str | None
    backfill_days: int
    correlation_id: UUID
    data_through: date | None
    last_success_at: datetime | None
    disconnected_at: datetime | None

    @property
    def connected(self) -> bool:
        return self.disconnected_at is None


@dataclass(frozen=True, slots=True)
class Run:
    """One window of days being synced, newest day first; ``next_day`` is the newest day not
    read yet."""

    run_id: UUID
    integration_id: UUID
    reason: SyncReason
    window_start: date
    window_end: date
    next_day: date
    status: RunStatus
    attempt: int
    members_synced: bool
    correlation_id: UUID

    @property
    def total_days(self) -> int:
        return (self.window_end - self.window_start).days + 1

    @property
    def done_days(self) -> int:
        return min(self.total_days, (self.window_end - self.next_day).days)

    @property
    def finished_reading(self) -> bool:
        return self.next_day < self.window_start


REREADS_INCOMPLETE_DAYS: Final[frozenset[Provider]] = frozenset({"github_copilot"})
"""Providers whose days become readable only later (GitHub publishes a Copilot report about
two days after the day): their scheduled syncs also re-read every incomplete day of the last
``backfill_days`` days, so a day is read once it is published. Cursor's days are readable at
once; days a Cursor run failed to read are repaired instead."""


@dataclass(frozen=True, slots=True)
class DueSchedule:
    integration_id: UUID
    org_id: str
    provider: Provider
    correlation_id: UUID
    next_run_at: datetime
    interval_s: float
    oldest_incomplete: date | None = None
    """The oldest incomplete day of the last ``backfill_days`` days."""

    def window(self, today: date, incremental_days: int) -> tuple[date, date]:
        """The days a scheduled sync reads: the last ``incremental_days`` (today included), and
        back to the oldest incomplete day for a provider that publishes days late."""
        start = today - timedelta(days=incremental_days - 1)
        if self.provider in REREADS_INCOMPLETE_DAYS and self.oldest_incomplete is not None:
            start = min(start, self.oldest_incomplete)
        return start, today


@dataclass(frozen=True, slots=True)
class DueRetry:
    run: Run
    org_id: str
    provider: Provider
    retry_at: datetime


@dataclass(frozen=True, slots=True)
class DueRepair:
    """An integration whose backfill window may have incomplete days, none being read now."""

    integration_id: UUID
    org_id: str
    provider: Provider
    correlation_id: UUID
    backfill_start: date
    newest_missing: date | None
    """The newest incomplete day of the backfill window; None when every day is complete."""
    repair_at: datetime
    repair_day: date | None
    """The newest incomplete day when the last repair was published."""
    repair_attempt: int

    def next_repair(self, chunk_days: int) -> tuple[date, date, int]:
        """The window of the next repair and its attempt: each repair of the same newest
        incomplete day reads half the days of the previous one (at least one); progress starts
        over at ``chunk_days``."""
        if self.newest_missing is None:
            raise ValueError("nothing to repair")
        attempt = self.repair_attempt + 1 if self.repair_day == self.newest_missing else 0
        size = max(1, chunk_days >> attempt)
        start = max(self.backfill_start, self.newest_missing - timedelta(days=size - 1))
        return start, self.newest_missing, attempt
