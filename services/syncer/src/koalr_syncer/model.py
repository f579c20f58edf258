"""The syncer's state, typed: integrations, runs and the work the scheduler finds due.

Closed sets are ``Literal`` types from the contracts (provider, plan, status, reason codes) or
:class:`RunStatus`; rows from PostgreSQL become these dataclasses in the repository modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
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


@dataclass(frozen=True, slots=True)
class DueSchedule:
    integration_id: UUID
    org_id: str
    provider: Provider
    correlation_id: UUID
    next_run_at: datetime
    interval_s: float


@dataclass(frozen=True, slots=True)
class DueRetry:
    run: Run
    org_id: str
    provider: Provider
    retry_at: datetime
