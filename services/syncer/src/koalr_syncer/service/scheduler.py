"""The scheduler: publishes due incremental syncs and retries of runs that failed transiently,
claiming them with ``FOR UPDATE SKIP LOCKED`` so every process can run it."""

from __future__ import annotations

import time
from typing import Final

from koalr_contracts import SyncJobRequested, topics
from koalr_runtime.logs import get_logger
from koalr_syncer.jobs import encode_cursor, repair_job_id, retry_job_id, scheduled_job_id
from koalr_syncer.repository import ScheduleRepository
from koalr_syncer.service.common import Clock, Publisher
from koalr_syncer.settings import SyncerSettings

log = get_logger(__name__)

HOUSEKEEPING_RETENTION_S: Final[float] = 7 * 86_400.0
REPAIR_PATIENCE_S: Final[float] = 3600.0
"""A repair job not done after this long (or a run untouched this long) was lost: repair anew."""


class Scheduler:
    """Publishes due incremental syncs and due retries; safe to run in every process."""

    def __init__(
        self,
        *,
        settings: SyncerSettings,
        schedules: ScheduleRepository,
        publisher: Publisher,
        now: Clock,
        batch: int = 100,
    ) -> None:
        self._settings = settings
        self._repo = schedules
        self._publisher = publisher
        self._now = now
        self._batch = batch
        self._last_housekeeping = 0.0

    async def tick(self) -> int:
        """Publish what is due now; returns the number of jobs published."""
        published = await self._schedules() + await self._retries() + await self._repairs()
        if time.monotonic() - self._last_housekeeping > 600:
            self._last_housekeeping = time.monotonic()
            forgotten = await self._repo.forget_finished(HOUSEKEEPING_RETENTION_S)
            if forgotten:
                log.info("scheduler.housekeeping", jobs_forgotten=forgotten)
        return published

    async def _schedules(self) -> int:
        settings = self._settings
        today = self._now().date()
        async with self._repo.claim_due_schedules(self._batch, today) as claim:
            if not claim.due:
                return 0
            jobs = []
            for due in claim.due:
                start, end = due.window(today, settings.incremental_days)
                jobs.append(
                    SyncJobRequested(
                        job_id=scheduled_job_id(due.integration_id, due.next_run_at),
                        org_id=due.org_id,
                        integration_id=due.integration_id,
                        correlation_id=due.correlation_id,
                        provider=due.provider,
                        reason="scheduled",
                        window_start=start,
                        window_end=end,
                    )
                )
            await self._publisher.publish(topics.SYNC_JOBS, jobs)
            for due, job in zip(claim.due, jobs, strict=True):
                await claim.advance(due.integration_id, job.job_id, due.interval_s)
            log.info("scheduler.published", jobs=len(jobs), kind="scheduled")
            return len(jobs)

    async def _retries(self) -> int:
        async with self._repo.claim_due_retries(self._batch) as claim:
            if not claim.due:
                return 0
            jobs = [
                SyncJobRequested(
                    job_id=retry_job_id(due.run.run_id, due.retry_at),
                    org_id=due.org_id,
                    integration_id=due.run.integration_id,
                    correlation_id=due.run.correlation_id,
                    provider=due.provider,
                    reason=due.run.reason,
                    window_start=due.run.window_start,
                    window_end=max(due.run.window_start, due.run.next_day),
                    cursor=encode_cursor(due.run.run_id),
                    attempt=due.run.attempt,
                )
                for due in claim.due
            ]
            await self._publisher.publish(topics.SYNC_JOBS, jobs)
            for due in claim.due:
                await claim.requeued(due.run.run_id)
            log.info("scheduler.published", jobs=len(jobs), kind="retry")
            return len(jobs)

    async def _repairs(self) -> int:
        """Publish a backfill job for the newest incomplete days of each integration whose last
        repair is over, until every day of its backfill window is complete."""
        settings = self._settings
        async with self._repo.claim_due_repairs(self._batch, patience_s=REPAIR_PATIENCE_S) as claim:
            published = 0
            for due in claim.due:
                if due.newest_missing is None:
                    await claim.complete(due.integration_id)
                    continue
                start, end, attempt = due.next_repair(settings.chunk_days)
                job = SyncJobRequested(
                    job_id=repair_job_id(due.integration_id, due.repair_at),
                    org_id=due.org_id,
                    integration_id=due.integration_id,
                    correlation_id=due.correlation_id,
                    provider=due.provider,
                    reason="backfill",
                    window_start=start,
                    window_end=end,
                )
                await self._publisher.publish(topics.SYNC_JOBS, [job])
                wait_s = 0.0 if attempt == 0 else settings.run_retry_delay_s(attempt)
                await claim.published(due.integration_id, job.job_id, end, attempt, wait_s)
                published += 1
                log.info(
                    "scheduler.published",
                    jobs=1,
                    kind="repair",
                    window=f"{start}..{end}",
                    attempt=attempt,
                )
            return published
