"""SQL of the scheduler: due incremental syncs and retries, claimed with ``FOR UPDATE SKIP
LOCKED`` so several processes share the work, and housekeeping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

from koalr_syncer.model import DueRetry, DueSchedule
from koalr_syncer.repository.rows import RUN_COLUMNS, Connection, Pool, run_from_row


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


class ScheduleRepository:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

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
                SELECT {", ".join("r." + c for c in RUN_COLUMNS.split(", "))},
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
                [
                    DueRetry(run_from_row(r), r["org_id"], r["provider"], r["retry_at"])
                    for r in rows
                ],
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
