"""What every repository module of the syncer shares: pool types, row mapping, lock keys."""

from __future__ import annotations

from typing import Any, Final, TypeAlias
from uuid import UUID

import asyncpg

from koalr_syncer.model import Integration, Run, RunStatus

Pool: TypeAlias = "asyncpg.Pool[Any]"
Connection: TypeAlias = "asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]"

RUN_COLUMNS: Final[str] = (
    "run_id, integration_id, reason, window_start, window_end, next_day, status, attempt, "
    "members_synced, correlation_id"
)


def integration_from_row(row: asyncpg.Record) -> Integration:
    return Integration(
        integration_id=row["integration_id"],
        org_id=row["org_id"],
        provider=row["provider"],
        external_id=row["external_id"],
        plan=row["plan"],
        status=row["status"],
        status_reason=row["status_reason"],
        sealed_credential=row["sealed_credential"],
        backfill_days=row["backfill_days"],
        correlation_id=row["correlation_id"],
        data_through=row["data_through"],
        last_success_at=row["last_success_at"],
        disconnected_at=row["disconnected_at"],
    )


def run_from_row(row: asyncpg.Record) -> Run:
    return Run(
        run_id=row["run_id"],
        integration_id=row["integration_id"],
        reason=row["reason"],
        window_start=row["window_start"],
        window_end=row["window_end"],
        next_day=row["next_day"],
        status=RunStatus(row["status"]),
        attempt=row["attempt"],
        members_synced=row["members_synced"],
        correlation_id=row["correlation_id"],
    )


def lock_key(integration_id: UUID) -> int:
    """A 64-bit advisory-lock key for one integration."""
    return int.from_bytes(integration_id.bytes[:8], "big", signed=True)
