"""All SQL of the syncer (schema ``settings.db_schema``, reached through the pool's search_path)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeAlias
from uuid import UUID

import asyncpg

from koalr_providers.cursor.shapes import Member
from koalr_syncer.normalise import MemberInfo

RunStatus = Literal["running", "retrying", "blocked", "done", "failed", "cancelled"]
ACTIVE_RUN_STATUSES: tuple[RunStatus, ...] = ("running", "retrying", "blocked")

if TYPE_CHECKING:
    Pool: TypeAlias = asyncpg.Pool[Any]
    Connection: TypeAlias = asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]


@dataclass(frozen=True, slots=True)
class Integration:
    integration_id: UUID
    org_id: str
    provider: str
    external_id: str
    plan: str
    status: str
    status_reason: str | None
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
    run_id: UUID
    integration_id: UUID
    reason: str
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
    provider: str
    correlation_id: UUID
    next_run_at: datetime
    interval_s: float


@dataclass(frozen=True, slots=True)
class DueRetry:
    run: Run
    org_id: str
    provider: str
    retry_at: datetime


def _integration(row: asyncpg.Record) -> Integration:
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


def _run(row: asyncpg.Record) -> Run:
    return Run(
        run_id=row["run_id"],
        integration_id=row["integration_id"],
        reason=row["reason"],
        window_start=row["window_start"],
        window_end=row["window_end"],
        next_day=row["next_day"],
        status=row["status"],
        attempt=row["attempt"],
        members_synced=row["members_synced"],
        correlation_id=row["correlation_id"],
    )


_RUN_COLUMNS = (
    "run_id, integration_id, reason, window_start, window_end, next_day, status, attempt, "
    "members_synced, correlation_id"
)


def lock_key(integration_id: UUID) -> int:
    """A 64-bit advisory-lock key for one integration."""
    return int.from_bytes(integration_id.bytes[:8], "big", signed=True)


class ScheduleClaim:
    """Schedules claimed inside one transaction; rows stay locked until it ends."""

    def __init__(self, conn: Connection, due: list[DueSchedule]) -> None:
        self._conn = conn
        self.due = due

    async def advance(self, integration_id: UUID, job_id: UUID, interval_s: float) -> None:
        await self._conn.execute(
            """
            UPDATE schedules
               SET next_run_at = now() + make_interval(secs => $2),
                   last_job_id = $3, updated_at = now()
             WHERE integration_id = $1
            """,
            integration_id,
            interval_s,
            job_id,
        )


class RetryClaim:
    def __init__(self, conn: Connection, due: list[DueRetry]) -> None:
        self._conn = conn
        self.due = due

    async def requeued(self, run_id: UUID) -> None:
        await self._conn.execute(
            "UPDATE runs SET status = 'running', retry_at = NULL, updated_at = now() "
            "WHERE run_id = $1",
            run_id,
        )


class Repository:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    # --- registry ---------------------------------------------------------------------------

    async def get_integration(self, integration_id: UUID) -> Integration | None:
        row = await self._pool.fetchrow(
            "SELECT * FROM integrations WHERE integration_id = $1", integration_id
        )
        return None if row is None else _integration(row)

    async def connect(
        self,
        *,
        integration_id: UUID,
        org_id: str,
        provider: str,
        external_id: str,
        plan: str,
        status: str,
        status_reason: str | None,
        sealed_credential: str,
        backfill_days: int,
        correlation_id: UUID,
        event_id: UUID,
        event_at: datetime,
        interval_s: float,
        first_run_in_s: float,
    ) -> bool:
        """Register (or re-register) an integration and its schedule; False for a stale event."""
        async with self._pool.acquire() as conn, conn.transaction():
            applied = await conn.fetchval(
                """
                INSERT INTO integrations AS i (
                    integration_id, org_id, provider, external_id, plan, status, status_reason,
                    sealed_credential, backfill_days, correlation_id, last_event_id,
                    last_event_at, connected_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)
                ON CONFLICT (integration_id) DO UPDATE SET
                    org_id = EXCLUDED.org_id, provider = EXCLUDED.provider,
                    external_id = EXCLUDED.external_id, plan = EXCLUDED.plan,
                    status = EXCLUDED.status, status_reason = EXCLUDED.status_reason,
                    sealed_credential = EXCLUDED.sealed_credential,
                    backfill_days = EXCLUDED.backfill_days,
                    correlation_id = EXCLUDED.correlation_id,
                    last_event_id = EXCLUDED.last_event_id,
                    last_event_at = EXCLUDED.last_event_at,
                    connected_at = CASE WHEN i.last_event_id = EXCLUDED.last_event_id
                                        THEN i.connected_at ELSE EXCLUDED.connected_at END,
                    disconnected_at = NULL, updated_at = now()
                 WHERE i.last_event_at <= EXCLUDED.last_event_at
                RETURNING true
                """,
                integration_id,
                org_id,
                provider,
                external_id,
                plan,
                status,
                status_reason,
                sealed_credential,
                backfill_days,
                correlation_id,
                event_id,
                event_at,
            )
            if not applied:
                return False
            await conn.execute(
                """
                INSERT INTO schedules (integration_id, next_run_at, interval_s)
                VALUES ($1, now() + make_interval(secs => $3), $2)
                ON CONFLICT (integration_id) DO UPDATE SET
                    interval_s = EXCLUDED.interval_s, paused = false, updated_at = now(),
                    next_run_at = LEAST(schedules.next_run_at, EXCLUDED.next_run_at)
                """,
                integration_id,
                interval_s,
                first_run_in_s,
            )
            return True

    async def rotate_credential(
        self,
        *,
        integration_id: UUID,
        plan: str,
        status: str,
        status_reason: str | None,
        sealed_credential: str,
        event_id: UUID,
        event_at: datetime,
    ) -> int | None:
        """Store a new credential, unpause the schedule (due at once if it was paused) and make
        the runs a rejected key had blocked due for a retry, which the scheduler loop publishes.
        Returns how many runs were unblocked; None for a stale or unknown event."""
        async with self._pool.acquire() as conn, conn.transaction():
            applied = await conn.fetchval(
                """
                UPDATE integrations SET
                    plan = $2, status = $3, status_reason = $4, sealed_credential = $5,
                    last_event_id = $6, last_event_at = $7, updated_at = now()
                 WHERE integration_id = $1 AND disconnected_at IS NULL
                   AND last_event_at <= $7
                RETURNING true
                """,
                integration_id,
                plan,
                status,
                status_reason,
                sealed_credential,
                event_id,
                event_at,
            )
            if not applied:
                return None
            await conn.execute(
                """
                UPDATE schedules SET
                    next_run_at = CASE WHEN paused THEN now() ELSE next_run_at END,
                    paused = false, updated_at = now()
                 WHERE integration_id = $1
                """,
                integration_id,
            )
            unblocked = await conn.fetchval(
                """
                WITH unblocked AS (
                    UPDATE runs SET status = 'retrying', retry_at = now(), updated_at = now()
                     WHERE integration_id = $1 AND status = 'blocked'
                    RETURNING 1)
                SELECT count(*) FROM unblocked
                """,
                integration_id,
            )
            return int(unblocked or 0)

    async def disconnect(self, integration_id: UUID, event_id: UUID, event_at: datetime) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            applied = await conn.fetchval(
                """
                UPDATE integrations SET
                    disconnected_at = $3, sealed_credential = NULL,
                    last_event_id = $2, last_event_at = $3, updated_at = now()
                 WHERE integration_id = $1 AND last_event_at <= $3
                RETURNING true
                """,
                integration_id,
                event_id,
                event_at,
            )
            if not applied:
                return False
            await conn.execute("DELETE FROM schedules WHERE integration_id = $1", integration_id)
            await conn.execute(
                "UPDATE runs SET status = 'cancelled', finished_at = now(), updated_at = now() "
                "WHERE integration_id = $1 AND status = ANY($2::text[])",
                integration_id,
                list(ACTIVE_RUN_STATUSES),
            )
            return True

    async def fail_integration(self, integration_id: UUID, sealed_used: str, reason: str) -> bool:
        """Mark the integration failed and pause its schedule, unless the credential changed
        since ``sealed_used`` was read (a rotation won the race). True when marked."""
        async with self._pool.acquire() as conn, conn.transaction():
            marked = await conn.fetchval(
                """
                UPDATE integrations SET status = 'failed', status_reason = $3, updated_at = now()
                 WHERE integration_id = $1 AND sealed_credential = $2
                RETURNING true
                """,
                integration_id,
                sealed_used,
                reason,
            )
            if not marked:
                return False
            await conn.execute(
                "UPDATE schedules SET paused = true, updated_at = now() WHERE integration_id = $1",
                integration_id,
            )
            return True

    async def degrade_integration(self, integration_id: UUID, reason: str) -> None:
        await self._pool.execute(
            "UPDATE integrations SET status = 'degraded', status_reason = $2, updated_at = now() "
            "WHERE integration_id = $1 AND status <> 'failed'",
            integration_id,
            reason,
        )

    async def record_success(
        self, integration_id: UUID, data_through: date | None, at: datetime, restore_active: bool
    ) -> Integration | None:
        row = await self._pool.fetchrow(
            """
            UPDATE integrations SET
                data_through = GREATEST(data_through, $2),
                last_success_at = $3,
                status = CASE WHEN $4 AND status = 'degraded' THEN 'active' ELSE status END,
                status_reason = CASE WHEN $4 AND status = 'degraded' THEN NULL
                                     ELSE status_reason END,
                updated_at = now()
             WHERE integration_id = $1
            RETURNING *
            """,
            integration_id,
            data_through,
            at,
            restore_active,
        )
        return None if row is None else _integration(row)

    async def upsert_members(self, integration_id: UUID, members: Sequence[Member]) -> None:
        if not members:
            return
        unique = {m.email: m for m in members}
        await self._pool.execute(
            """
            INSERT INTO members (integration_id, email, name, external_id, role, is_removed)
            SELECT $1, m.email, m.name, m.external_id, m.role, m.is_removed
              FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::boolean[])
                   AS m(email, name, external_id, role, is_removed)
            ON CONFLICT (integration_id, email) DO UPDATE SET
                name = EXCLUDED.name, external_id = EXCLUDED.external_id, role = EXCLUDED.role,
                is_removed = EXCLUDED.is_removed, updated_at = now()
            """,
            integration_id,
            list(unique),
            [m.name for m in unique.values()],
            [m.external_id for m in unique.values()],
            [m.role for m in unique.values()],
            [m.is_removed for m in unique.values()],
        )

    async def member_directory(self, integration_id: UUID) -> dict[str, MemberInfo]:
        rows = await self._pool.fetch(
            "SELECT email, name, external_id FROM members WHERE integration_id = $1",
            integration_id,
        )
        return {r["email"]: MemberInfo(r["name"], r["external_id"]) for r in rows}

    # --- jobs and runs ----------------------------------------------------------------------

    @asynccontextmanager
    async def integration_lock(
        self, integration_id: UUID, timeout_s: float, poll_s: float = 0.2
    ) -> AsyncIterator[bool]:
        """Hold a session advisory lock on the integration while the block runs.

        Yields False when another process kept it for ``timeout_s`` (the lock dies with its
        session, so a killed worker never keeps it).
        """
        key = lock_key(integration_id)
        async with self._pool.acquire() as conn:
            deadline = time.monotonic() + timeout_s
            locked = False
            while not locked:
                locked = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", key))
                if locked or time.monotonic() >= deadline:
                    break
                await asyncio.sleep(poll_s)
            try:
                yield locked
            finally:
                if locked:
                    await conn.execute("SELECT pg_advisory_unlock($1)", key)

    async def start_job(self, job_id: UUID, run_id: UUID, integration_id: UUID) -> str | None:
        """Record a delivery of a job; the status it had before (None when new)."""
        row = await self._pool.fetchrow(
            """
            WITH previous AS (SELECT status FROM jobs WHERE job_id = $1)
            INSERT INTO jobs (job_id, run_id, integration_id, status)
            VALUES ($1, $2, $3, 'running')
            ON CONFLICT (job_id) DO UPDATE SET deliveries = jobs.deliveries + 1
            RETURNING (SELECT status FROM previous) AS previous
            """,
            job_id,
            run_id,
            integration_id,
        )
        return None if row is None else row["previous"]

    async def finish_job(self, job_id: UUID, outcome: str) -> None:
        await self._pool.execute(
            "UPDATE jobs SET status = 'done', outcome = $2, finished_at = now() WHERE job_id = $1",
            job_id,
            outcome,
        )

    async def get_or_create_run(
        self,
        *,
        run_id: UUID,
        integration_id: UUID,
        reason: str,
        window_start: date,
        window_end: date,
        correlation_id: UUID,
    ) -> Run:
        row = await self._pool.fetchrow(
            f"""
            WITH created AS (
                INSERT INTO runs (run_id, integration_id, reason, window_start, window_end,
                                  next_day, status, correlation_id)
                VALUES ($1, $2, $3, $4, $5, $5, 'running', $6)
                ON CONFLICT (run_id) DO NOTHING
                RETURNING {_RUN_COLUMNS}
            )
            SELECT {_RUN_COLUMNS} FROM created
            UNION ALL
            SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = $1
            LIMIT 1
            """,  # noqa: S608 - constant column list
            run_id,
            integration_id,
            reason,
            window_start,
            window_end,
            correlation_id,
        )
        if row is None:  # pragma: no cover - the CTE always yields a row
            raise RuntimeError(f"run {run_id} could not be created")
        return _run(row)

    async def advance_run(self, run_id: UUID, next_day: date) -> Run:
        """Record that every day after ``next_day`` is read and published (never moves back)."""
        row = await self._pool.fetchrow(
            f"""
            UPDATE runs SET next_day = LEAST(next_day, $2), attempt = 0, updated_at = now()
             WHERE run_id = $1
            RETURNING {_RUN_COLUMNS}
            """,  # noqa: S608 - constant column list
            run_id,
            next_day,
        )
        if row is None:
            raise LookupError(f"run {run_id} does not exist")
        return _run(row)

    async def members_synced(self, run_id: UUID) -> None:
        await self._pool.execute(
            "UPDATE runs SET members_synced = true, updated_at = now() WHERE run_id = $1", run_id
        )

    async def set_run_status(
        self,
        run_id: UUID,
        status: RunStatus,
        *,
        error_code: str | None = None,
        error_message: str | None = None,
        retry_in_s: float | None = None,
        attempt: int | None = None,
    ) -> None:
        finished = status in ("done", "failed", "cancelled")
        await self._pool.execute(
            """
            UPDATE runs SET
                status = $2, error_code = $3, error_message = $4,
                retry_at = CASE WHEN $5::double precision IS NULL THEN NULL
                                ELSE now() + make_interval(secs => $5) END,
                attempt = COALESCE($6, attempt),
                finished_at = CASE WHEN $7 THEN now() ELSE NULL END,
                updated_at = now()
             WHERE run_id = $1
            """,
            run_id,
            status,
            error_code,
            error_message,
            retry_in_s,
            attempt,
            finished,
        )

    async def running_runs(
        self, integration_id: UUID, *, exclude: UUID, fresher_than_s: float
    ) -> list[Run]:
        """Other runs of the integration being worked on now (recently touched)."""
        rows = await self._pool.fetch(
            f"""
            SELECT {_RUN_COLUMNS} FROM runs
             WHERE integration_id = $1 AND run_id <> $2 AND status = 'running'
               AND updated_at > now() - make_interval(secs => $3)
            """,  # noqa: S608 - constant column list
            integration_id,
            exclude,
            fresher_than_s,
        )
        return [_run(r) for r in rows]

    # --- scheduler --------------------------------------------------------------------------

    @asynccontextmanager
    async def claim_due_schedules(self, limit: int) -> AsyncIterator[ScheduleClaim]:
        """Lock due schedules of connected, healthy integrations for one transaction; rows other
        processes hold are skipped, so each schedule is claimed by one process at a time."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """
                SELECT s.integration_id, s.next_run_at, s.interval_s,
                       i.org_id, i.provider, i.correlation_id
                  FROM schedules s
                  JOIN integrations i USING (integration_id)
                 WHERE s.next_run_at <= now() AND NOT s.paused
                   AND i.disconnected_at IS NULL AND i.status <> 'failed'
                 ORDER BY s.next_run_at
                 LIMIT $1
                   FOR UPDATE OF s SKIP LOCKED
                """,
                limit,
            )
            yield ScheduleClaim(
                conn,
                [
                    DueSchedule(
                        integration_id=r["integration_id"],
                        org_id=r["org_id"],
                        provider=r["provider"],
                        correlation_id=r["correlation_id"],
                        next_run_at=r["next_run_at"],
                        interval_s=r["interval_s"],
                    )
                    for r in rows
                ],
            )

    @asynccontextmanager
    async def claim_due_retries(self, limit: int) -> AsyncIterator[RetryClaim]:
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"""
                SELECT {", ".join("r." + c for c in _RUN_COLUMNS.split(", "))},
                       r.retry_at, i.org_id, i.provider
                  FROM runs r
                  JOIN integrations i USING (integration_id)
                 WHERE r.status = 'retrying' AND r.retry_at <= now()
                   AND i.disconnected_at IS NULL AND i.status <> 'failed'
                 ORDER BY r.retry_at
                 LIMIT $1
                   FOR UPDATE OF r SKIP LOCKED
                """,  # noqa: S608 - constant column list
                limit,
            )
            yield RetryClaim(
                conn,
                [DueRetry(_run(r), r["org_id"], r["provider"], r["retry_at"]) for r in rows],
            )

    async def forget_finished(self, older_than_s: float) -> int:
        """Delete finished jobs and runs older than ``older_than_s``; returns the jobs deleted."""
        async with self._pool.acquire() as conn, conn.transaction():
            deleted = await conn.fetchval(
                """
                WITH gone AS (
                    DELETE FROM jobs
                     WHERE status = 'done'
                       AND finished_at < now() - make_interval(secs => $1)
                    RETURNING 1)
                SELECT count(*) FROM gone
                """,
                older_than_s,
            )
            await conn.execute(
                "DELETE FROM runs WHERE status IN ('done', 'failed', 'cancelled') "
                "AND finished_at < now() - make_interval(secs => $1)",
                older_than_s,
            )
            return int(deleted or 0)
