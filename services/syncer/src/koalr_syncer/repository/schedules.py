"""SQL of the scheduler: due incremental syncs, retries and repairs of incomplete backfill days,
claimed with ``FOR UPDATE SKIP LOCKED`` so several processes share the work, and housekeeping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from uuid import UUID

from koalr_syncer.model import ACTIVE_RUN_STATUSES, DueRepair, DueRetry, DueSchedule
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


class RepairClaim:
    def __init__(self, conn: Connection, due: list[DueRepair]) -> None:
        self._conn = conn
        self.due = due

    async def published(
        self, integration_id: UUID, job_id: UUID, newest_missing: date, attempt: int, wait_s: float
    ) -> None:
        """A repair job is published: the next one waits until it is done, then ``wait_s``."""
        await self._conn.execute(
            """
            UPDATE schedules
               SET repair_at = now() + make_interval(secs => $5), repair_job_id = $2,
                   repair_published_at = now(), repair_day = $3, repair_attempt = $4,
                   updated_at = now()
             WHERE integration_id = $1
            """,
            integration_id,
            job_id,
            newest_missing,
            attempt,
            wait_s,
        )

    async def complete(self, integration_id: UUID) -> None:
        """Every day of the backfill window is complete: nothing more to repair."""
        await self._conn.execute(
            "UPDATE schedules SET repair_at = NULL, repair_day = NULL, repair_attempt = 0, "
            "updated_at = now() WHERE integration_id = $1",
            integration_id,
        )


class ScheduleRepository:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def claim_due_schedules(self, limit: int, today: date) -> AsyncIterator[ScheduleClaim]:
        """Lock due schedules of connected, healthy integrations for one transaction; rows other
        processes hold are skipped, so each schedule is claimed by one process at a time. Each
        comes with the oldest incomplete day of the last ``backfill_days`` days up to ``today``."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """
                SELECT s.integration_id, s.next_run_at, s.interval_s,
                       i.org_id, i.provider, i.correlation_id,
                       (SELECT min(d)::date
                          FROM generate_series($2::date - (i.backfill_days - 1), $2::date,
                                               interval '1 day') AS d
                         WHERE NOT EXISTS (SELECT 1 FROM complete_days c
                                            WHERE c.integration_id = i.integration_id
                                              AND c.day = d::date)) AS oldest_incomplete
                  FROM schedules s
                  JOIN integrations i USING (integration_id)
                 WHERE s.next_run_at <= now() AND NOT s.paused
                   AND i.disconnected_at IS NULL AND i.status <> 'failed'
                 ORDER BY s.next_run_at
                 LIMIT $1
                   FOR UPDATE OF s SKIP LOCKED
                """,
                limit,
                today,
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
                        oldest_incomplete=r["oldest_incomplete"],
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

    @asynccontextmanager
    async def claim_due_repairs(
        self, limit: int, *, patience_s: float
    ) -> AsyncIterator[RepairClaim]:
        """Lock Cursor integrations with a usage plan whose repair is due: the last repair job
        (the backfill job first) is done, or was published more than ``patience_s`` ago, and no
        run of the integration is being worked on (touched within ``patience_s``)."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """
                SELECT s.integration_id, s.repair_at, s.repair_day, s.repair_attempt,
                       i.org_id, i.provider, i.correlation_id, i.backfill_start,
                       (SELECT max(g.d)::date
                          FROM generate_series(i.backfill_start, i.backfill_end,
                                               interval '1 day') AS g(d)
                         WHERE NOT EXISTS (
                               SELECT 1 FROM complete_days c
                                WHERE c.integration_id = s.integration_id
                                  AND c.day = g.d::date)) AS newest_missing
                  FROM schedules s
                  JOIN integrations i USING (integration_id)
                 WHERE s.repair_at <= now() AND NOT s.paused
                   AND i.disconnected_at IS NULL AND i.status <> 'failed' AND i.plan <> 'team'
                   AND i.provider = 'cursor' AND i.backfill_start IS NOT NULL
                   AND (s.repair_job_id IS NULL
                        OR s.repair_published_at < now() - make_interval(secs => $2)
                        OR EXISTS (SELECT 1 FROM jobs j
                                    WHERE j.job_id = s.repair_job_id AND j.status = 'done'))
                   AND NOT EXISTS (
                       SELECT 1 FROM runs r
                        WHERE r.integration_id = s.integration_id
                          AND r.status = ANY($3::text[])
                          AND r.updated_at > now() - make_interval(secs => $2))
                 ORDER BY s.repair_at
                 LIMIT $1
                   FOR UPDATE OF s SKIP LOCKED
                """,
                limit,
                patience_s,
                [str(s) for s in ACTIVE_RUN_STATUSES],
            )
            yield RepairClaim(
                conn,
                [
                    DueRepair(
                        integration_id=r["integration_id"],
                        org_id=r["org_id"],
                        provider=r["provider"],
                        correlation_id=r["correlation_id"],
                        backfill_start=r["backfill_start"],
                        newest_missing=r["newest_missing"],
                        repair_at=r["repair_at"],
                        repair_day=r["repair_day"],
                        repair_attempt=r["repair_attempt"],
                    )
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
                "DELETE FROM awaited_jobs WHERE first_seen_at < now() - make_interval(secs => $1)",
                older_than_s,
            )
            await conn.execute(
                "DELETE FROM runs WHERE status IN ('done', 'failed', 'cancelled') "
                "AND finished_at < now() - make_interval(secs => $1)",
                older_than_s,
            )
            return int(deleted or 0)
