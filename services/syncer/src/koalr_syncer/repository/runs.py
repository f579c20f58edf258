"""SQL of the job runner: the integration lock, job deliveries and the progress of runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import date, timedelta
from uuid import UUID

from koalr_contracts import ErrorCode, SyncReason
from koalr_syncer.model import FINISHED_RUN_STATUSES, JobStatus, Run, RunStatus
from koalr_syncer.repository.rows import RUN_COLUMNS, Pool, lock_key, run_from_row


class RunRepository:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

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

    async def start_job(self, job_id: UUID, run_id: UUID, integration_id: UUID) -> JobStatus | None:
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
        reason: SyncReason,
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
                RETURNING {RUN_COLUMNS}
            )
            SELECT {RUN_COLUMNS} FROM created
            UNION ALL
            SELECT {RUN_COLUMNS} FROM runs WHERE run_id = $1
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
        return run_from_row(row)

    async def advance_run(
        self, run_id: UUID, read_from: date, complete_days: Sequence[date]
    ) -> Run:
        """Record that the run read and published its days back to ``read_from`` (it continues
        before it, never moves back) and that ``complete_days`` among them are complete."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"""
                UPDATE runs SET next_day = LEAST(next_day, $2), attempt = 0, updated_at = now()
                 WHERE run_id = $1
                RETURNING {RUN_COLUMNS}
                """,  # noqa: S608 - constant column list
                run_id,
                read_from - timedelta(days=1),
            )
            if row is None:
                raise LookupError(f"run {run_id} does not exist")
            await conn.execute(
                """
                INSERT INTO complete_days (integration_id, day)
                SELECT $1, d FROM unnest($2::date[]) AS d
                ON CONFLICT (integration_id, day) DO UPDATE SET completed_at = now()
                """,
                row["integration_id"],
                sorted(set(complete_days)),
            )
            return run_from_row(row)

    async def newest_complete_day(self, integration_id: UUID) -> date | None:
        day: date | None = await self._pool.fetchval(
            "SELECT max(day) FROM complete_days WHERE integration_id = $1", integration_id
        )
        return day

    async def backfill_progress(self, integration_id: UUID) -> tuple[int, int] | None:
        """Complete and total days of the integration's backfill window (None: not tracked)."""
        row = await self._pool.fetchrow(
            """
            SELECT (i.backfill_end - i.backfill_start) + 1 AS total,
                   (SELECT count(*) FROM complete_days c
                     WHERE c.integration_id = i.integration_id
                       AND c.day BETWEEN i.backfill_start AND i.backfill_end) AS complete
              FROM integrations i
             WHERE i.integration_id = $1 AND i.backfill_start IS NOT NULL
            """,
            integration_id,
        )
        return None if row is None else (int(row["complete"]), int(row["total"]))

    async def awaited_for_s(self, job_id: UUID, integration_id: UUID) -> float:
        """Seconds since the first delivery of a job whose integration is not registered (the
        database's clock only, so several processes agree)."""
        waited = await self._pool.fetchval(
            """
            WITH seen AS (
                INSERT INTO awaited_jobs (job_id, integration_id) VALUES ($1, $2)
                ON CONFLICT (job_id) DO NOTHING
                RETURNING first_seen_at)
            SELECT extract(epoch FROM now() - COALESCE(
                (SELECT first_seen_at FROM seen),
                (SELECT first_seen_at FROM awaited_jobs WHERE job_id = $1)))
            """,
            job_id,
            integration_id,
        )
        return float(waited)

    async def members_synced(self, run_id: UUID) -> None:
        await self._pool.execute(
            "UPDATE runs SET members_synced = true, updated_at = now() WHERE run_id = $1", run_id
        )

    async def set_run_status(
        self,
        run_id: UUID,
        status: RunStatus,
        *,
        error_code: ErrorCode | None = None,
        error_message: str | None = None,
        retry_in_s: float | None = None,
        attempt: int | None = None,
    ) -> None:
        finished = status in FINISHED_RUN_STATUSES
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
            str(status),
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
            SELECT {RUN_COLUMNS} FROM runs
             WHERE integration_id = $1 AND run_id <> $2 AND status = 'running'
               AND updated_at > now() - make_interval(secs => $3)
            """,  # noqa: S608 - constant column list
            integration_id,
            exclude,
            fresher_than_s,
        )
        return [run_from_row(r) for r in rows]
