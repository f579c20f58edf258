"""The job runner: runs one ``SyncJobRequested``, one bounded chunk of a run, newest days first;
publishes the records, records the progress and publishes the continuation."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Final

from prometheus_client import Counter

from koalr_contracts import ErrorCode, SyncJobRequested, topics
from koalr_providers.errors import InsufficientPlanError, InvalidApiKeyError, ProviderError
from koalr_runtime.logs import get_logger
from koalr_runtime.sealing import Sealer, SealingError
from koalr_syncer.jobs import InvalidCursorError, continuation_job_id, encode_cursor, run_id_of
from koalr_syncer.model import FINISHED_RUN_STATUSES, Integration, Run, RunStatus
from koalr_syncer.normalise import Origin
from koalr_syncer.repository import IntegrationRepository, RunRepository
from koalr_syncer.service.common import (
    METRICS_DISABLED_MESSAGE,
    TEAM_PLAN_MESSAGE,
    UNKNOWN_INTEGRATION_MESSAGE,
    UNREADABLE_CREDENTIAL_MESSAGE,
    BadMessageError,
    Clock,
    IntegrationBusyError,
    IntegrationNotRegisteredYetError,
    Publisher,
    invalid_credential_message,
    origin_of,
)
from koalr_syncer.service.readers import DayReader, FinishedRun, Readers
from koalr_syncer.service.status import StatusReporter
from koalr_syncer.settings import SyncerSettings

log = get_logger(__name__)

JOBS = Counter("koalr_syncer_jobs_total", "Sync jobs handled, by outcome", ["outcome"])
RECORDS = Counter("koalr_syncer_usage_records_total", "UsageRecords published")

RUNNING_RUN_FRESHNESS_S: Final[float] = 3600.0
STANDING_REASONS: Final[Mapping[ErrorCode, str]] = {"metrics_disabled": METRICS_DISABLED_MESSAGE}
"""Degradations that hold while a run goes on (part of the data stays refused), with what the
user must do: the run's statuses carry them, so the integration stays degraded until a run
shows them lifted; a run that ends with one reports it as an ``error``."""
RESTORED_BY_SUCCESS: Final[frozenset[ErrorCode]] = frozenset({"insufficient_plan"})
"""Degradations a run that read everything lifts."""


class IntegrationPurgedError(LookupError):
    """The job's integration was disconnected with purge=true."""


class JobRunner:
    """Runs one sync job: a bounded chunk of a run."""

    def __init__(
        self,
        *,
        settings: SyncerSettings,
        integrations: IntegrationRepository,
        runs: RunRepository,
        readers: Readers,
        publisher: Publisher,
        status: StatusReporter,
        sealer: Sealer,
        now: Clock,
    ) -> None:
        self._settings = settings
        self._integrations = integrations
        self._runs = runs
        self._readers = readers
        self._publisher = publisher
        self._status = status
        self._sealer = sealer
        self._now = now

    async def run(self, job: SyncJobRequested) -> str:
        try:
            outcome = await self._run(job)
        except IntegrationPurgedError:
            # Its data was purged: nothing to sync, nothing to record (no row may name it).
            outcome = "skipped_purged"
        JOBS.labels(outcome).inc()
        return outcome

    async def give_up(self, job: SyncJobRequested, error: BaseException) -> None:
        """The job kept failing unexpectedly and goes to the dead-letter topic: end its run and
        say so in the integration's status, so the failure is visible and not silent."""
        JOBS.labels("dead_lettered").inc()
        integration = await self._integrations.get(job.integration_id)
        if integration is None:
            return
        try:
            run_id = run_id_of(job)
        except InvalidCursorError:
            return
        await self._runs.start_job(job.job_id, run_id, integration.integration_id)
        await self._runs.finish_job(job.job_id, "dead_lettered")
        await self._runs.set_run_status(
            run_id,
            RunStatus.FAILED,
            error_code="internal_error",
            error_message=f"{type(error).__name__}: {error}"[:1000],
        )
        await self._status.publish(
            origin_of(integration),
            "error",
            reason_code="internal_error",
            message=(
                "The sync failed repeatedly on our side and was set aside for the operators; "
                "the next scheduled sync or a manual resync will try again."
            ),
            job_id=job.job_id,
        )

    async def _integration(self, job: SyncJobRequested) -> Integration:
        """The job's integration. A job that overtook its integration's registration (a manual
        resync right after connecting) is retried for ``unknown_integration_wait_s`` from its
        first delivery; after that it cannot run, and its status says why."""
        integration = await self._integrations.get(job.integration_id)
        if integration is not None:
            return integration
        if await self._integrations.is_purged(job.integration_id):
            raise IntegrationPurgedError(job.integration_id)
        waited_s = await self._runs.awaited_for_s(job.job_id, job.integration_id)
        if waited_s < self._settings.unknown_integration_wait_s:
            JOBS.labels("awaiting_integration").inc()
            raise IntegrationNotRegisteredYetError(
                f"integration {job.integration_id} is not registered yet; "
                f"the job is retried (waited {waited_s:.1f} s)"
            )
        await self._status.publish(
            origin_of(job),
            "error",
            reason_code="internal_error",
            message=UNKNOWN_INTEGRATION_MESSAGE,
            job_id=job.job_id,
        )
        raise BadMessageError(
            f"integration {job.integration_id} is not registered with the syncer "
            "(never connected, or its IntegrationConnected was not processed)"
        )

    async def _run(self, job: SyncJobRequested) -> str:
        try:
            run_id = run_id_of(job)
        except InvalidCursorError as exc:
            raise BadMessageError(str(exc)) from exc
        integration = await self._integration(job)
        if integration.org_id != job.org_id:
            raise BadMessageError(
                f"the job names org {job.org_id!r}, but integration {job.integration_id} "
                "belongs to another organisation"
            )
        if not integration.connected:
            return "skipped_disconnected"
        origin = origin_of(integration)
        lock_timeout = self._settings.consumer_max_poll_interval_ms / 1000 / 3
        async with self._runs.integration_lock(integration.integration_id, lock_timeout) as locked:
            if not locked:
                raise IntegrationBusyError(
                    f"integration {integration.integration_id} is locked by another worker"
                )
            # Re-read under the lock: a job that ran meanwhile may have changed it.
            integration = await self._integration(job)
            if not integration.connected:
                return "skipped_disconnected"
            previous = await self._runs.start_job(job.job_id, run_id, integration.integration_id)
            if previous == "done":
                return "duplicate"
            run = await self._runs.get_or_create_run(
                run_id=run_id,
                integration_id=integration.integration_id,
                reason=job.reason,
                window_start=job.window_start,
                window_end=job.window_end,
                correlation_id=integration.correlation_id,
            )
            outcome = await self._work(integration, run, job, origin)
            await self._runs.finish_job(job.job_id, outcome)
            return outcome

    async def _work(
        self, integration: Integration, run: Run, job: SyncJobRequested, origin: Origin
    ) -> str:
        settled = await self._settled(integration, run, job, origin)
        if settled is not None:
            return settled
        sealed = integration.sealed_credential
        if sealed is None:
            return "skipped_disconnected"
        try:
            credential = self._sealer.open(sealed, context=str(integration.integration_id))
        except SealingError:
            await self._status.publish(
                origin,
                "error",
                reason_code="internal_error",
                message=UNREADABLE_CREDENTIAL_MESSAGE,
                job_id=job.job_id,
            )
            await self._runs.set_run_status(
                run.run_id, RunStatus.FAILED, error_code="internal_error"
            )
            return "credential_unreadable"
        reader = self._readers.open(integration, credential)
        del credential
        try:
            if not run.members_synced:
                await reader.sync_members()
                await self._runs.members_synced(run.run_id)
            if integration.plan == "team":
                await self._status.publish(
                    origin,
                    "error",
                    reason_code="insufficient_plan",
                    message=TEAM_PLAN_MESSAGE,
                    job_id=job.job_id,
                )
                await self._runs.set_run_status(run.run_id, RunStatus.DONE)
                return "members_only"
            return await self._chunk(integration, run, job, origin, reader)
        except ProviderError as exc:
            return await self._provider_failed(
                integration, run=run, job=job, origin=origin, exc=exc, sealed_used=sealed
            )

    async def _settled(
        self, integration: Integration, run: Run, job: SyncJobRequested, origin: Origin
    ) -> str | None:
        """The outcome when the run needs no provider call now, else None."""
        if run.status in FINISHED_RUN_STATUSES:
            return f"run_{run.status}"
        if run.status is RunStatus.BLOCKED:
            return "blocked"
        if integration.status == "failed":
            await self._status.publish(
                origin,
                "error",
                reason_code="invalid_api_key",
                message=invalid_credential_message(integration.provider),
                job_id=job.job_id,
            )
            await self._runs.set_run_status(
                run.run_id,
                RunStatus.BLOCKED,
                error_code=integration.status_reason or "invalid_api_key",
                error_message="waiting for a new credential",
            )
            return "blocked"
        if run.status is RunStatus.RETRYING:
            await self._runs.set_run_status(run.run_id, RunStatus.RUNNING, attempt=run.attempt)
        return None

    async def _chunk(
        self,
        integration: Integration,
        run: Run,
        job: SyncJobRequested,
        origin: Origin,
        reader: DayReader,
    ) -> str:
        """Read chunks of the run, newest first, each published and recorded on its own.

        After ``job_max_chunks`` chunks (1 by default), or once the job's time or page budget is
        spent, the rest continues in a new job. A job delivered again resumes after the last
        recorded chunk, whichever job read it.
        """
        settings = self._settings
        started = time.monotonic()

        def out_of_time() -> bool:
            return time.monotonic() - started >= settings.job_time_budget_s

        standing = self._standing_reason(integration)
        pages = 0
        for number in range(1, settings.job_max_chunks + 1):
            now = self._now()
            last = min(run.next_day, now.date())
            if last < run.window_start:
                return await self._finish(integration, run, job, origin, reader)
            first = max(run.window_start, last - timedelta(days=settings.chunk_days - 1))
            if run.done_days == 0:
                await self._status.publish(
                    origin,
                    "syncing",
                    reason_code=standing,
                    progress=await self._progress(run),
                    job_id=job.job_id,
                )
            chunk = await reader.read(origin, first, last, now, out_of_time)
            await self._publisher.publish(topics.USAGE_RECORDS, chunk.events)
            RECORDS.inc(sum(1 for e in chunk.events if e.event_type == "UsageRecord"))
            log.info(
                "job.chunk_published",
                days=f"{chunk.read_from}..{last}",
                complete_days=len(chunk.complete_days),
                events_published=len(chunk.events),
                **chunk.log_fields,
            )
            if chunk.refused is not None:
                await self._integrations.degrade(integration.integration_id, chunk.refused.code)
                standing = chunk.refused.code
            elif chunk.lifted is not None and integration.status_reason == chunk.lifted:
                await self._integrations.restore(integration.integration_id, chunk.lifted)
                standing = None
            run = await self._runs.advance_run(run.run_id, chunk.read_from, chunk.complete_days)
            if run.finished_reading:
                return await self._finish(integration, run, job, origin, reader)
            pages += chunk.log_fields.get("event_pages", 0)
            more = (
                number < settings.job_max_chunks
                and chunk.read_from <= first  # the chunk was read whole: budgets not spent
                and pages < settings.job_page_budget
                and not out_of_time()
            )
            if not more:
                break
            await self._status.publish(
                origin,
                "syncing",
                reason_code=standing,
                progress=await self._progress(run),
                job_id=job.job_id,
            )
        continuation = SyncJobRequested(
            job_id=continuation_job_id(run.run_id, run.next_day),
            org_id=integration.org_id,
            integration_id=integration.integration_id,
            correlation_id=origin.correlation_id,
            provider=integration.provider,
            reason=job.reason,
            window_start=run.window_start,
            window_end=run.next_day,
            cursor=encode_cursor(run.run_id),
        )
        await self._publisher.publish(topics.SYNC_JOBS, [continuation])
        await self._status.publish(
            origin,
            "syncing",
            reason_code=standing,
            progress=await self._progress(run),
            job_id=job.job_id,
        )
        return "continued"

    @staticmethod
    def _standing_reason(integration: Integration) -> ErrorCode | None:
        reason = integration.status_reason
        if integration.status == "degraded" and reason in STANDING_REASONS:
            return reason
        return None

    async def _progress(self, run: Run) -> tuple[int, int]:
        """A backfill (or its repair) counts the complete days of the integration's backfill
        window; other runs count their own days."""
        if run.reason == "backfill":
            tracked = await self._runs.backfill_progress(run.integration_id)
            if tracked is not None:
                return tracked
        return run.done_days, run.total_days

    async def _finish(
        self,
        integration: Integration,
        run: Run,
        job: SyncJobRequested,
        origin: Origin,
        reader: DayReader,
    ) -> str:
        """Every day of the run is published: publish the run's snapshot (Cursor's cycle spend,
        Copilot's seats) and report.

        The run is marked done last: a job that dies before that is delivered again and repeats
        these steps (all idempotent), so the final status is never lost.
        """
        now = self._now()
        snapshot = await reader.finish(origin, now)
        await self._publisher.publish(topics.USAGE_RECORDS, [snapshot])
        newest_complete = await self._runs.newest_complete_day(integration.integration_id)
        data_through = reader.data_through(FinishedRun(run, now.date(), newest_complete))
        # Re-read: a chunk of this run may have degraded the integration or lifted it.
        current = await self._integrations.get(integration.integration_id) or integration
        standing = self._standing_reason(current)
        updated = await self._integrations.record_success(
            integration.integration_id,
            data_through,
            now,
            restore_active=current.status_reason in RESTORED_BY_SUCCESS,
        )
        others = await self._runs.running_runs(
            integration.integration_id, exclude=run.run_id, fresher_than_s=RUNNING_RUN_FRESHNESS_S
        )
        if others:
            done = sum(r.done_days for r in others)
            total = sum(r.total_days for r in others)
            await self._status.publish(
                origin,
                "syncing",
                reason_code=standing,
                progress=(done, total),
                last_success_at=now,
                job_id=job.job_id,
            )
        else:
            tracked = await self._runs.backfill_progress(integration.integration_id)
            await self._status.publish(
                origin,
                # A standing degradation is an error the user must act on; the rest synced.
                "idle" if standing is None else "error",
                reason_code=standing,
                message=None if standing is None else STANDING_REASONS[standing],
                data_through=updated.data_through if updated else data_through,
                progress=tracked or (run.total_days, run.total_days),
                last_success_at=now,
                job_id=job.job_id,
            )
        await self._runs.set_run_status(run.run_id, RunStatus.DONE)
        return "completed"

    async def _provider_failed(
        self,
        integration: Integration,
        *,
        run: Run,
        job: SyncJobRequested,
        origin: Origin,
        exc: ProviderError,
        sealed_used: str,
    ) -> str:
        settings = self._settings
        log.warning("job.provider_failed", code=exc.code, error=str(exc), run_id=str(run.run_id))
        # Each branch reports first and records the run's state last: a job that dies in between
        # is delivered again and reaches the same branch, so the status is never lost.
        if isinstance(exc, InvalidApiKeyError):
            if not await self._integrations.fail(
                integration.integration_id, sealed_used, "invalid_api_key"
            ):
                # The credential was rotated while this job used the old one: try again now.
                await self._runs.set_run_status(
                    run.run_id, RunStatus.RETRYING, retry_in_s=0.0, attempt=run.attempt
                )
                return "retry_after_rotation"
            await self._status.publish(
                origin,
                "error",
                reason_code="invalid_api_key",
                message=invalid_credential_message(integration.provider),
                job_id=job.job_id,
            )
            await self._runs.set_run_status(
                run.run_id, RunStatus.BLOCKED, error_code=exc.code, error_message=str(exc)
            )
            return "invalid_api_key"
        if isinstance(exc, InsufficientPlanError):
            await self._integrations.degrade(integration.integration_id, "insufficient_plan")
            await self._status.publish(
                origin,
                "error",
                reason_code="insufficient_plan",
                message=TEAM_PLAN_MESSAGE,
                job_id=job.job_id,
            )
            await self._runs.set_run_status(
                run.run_id, RunStatus.FAILED, error_code=exc.code, error_message=str(exc)
            )
            return "insufficient_plan"
        if exc.retryable:
            attempt = run.attempt + 1
            if attempt >= settings.run_max_attempts:
                await self._status.publish(
                    origin,
                    "error",
                    reason_code=exc.code,
                    message=f"{exc} Gave up after {attempt} attempts; the next scheduled "
                    "sync or a manual resync will try again.",
                    job_id=job.job_id,
                )
                await self._runs.set_run_status(
                    run.run_id,
                    RunStatus.FAILED,
                    error_code=exc.code,
                    error_message=str(exc),
                    attempt=attempt,
                )
                return "gave_up"
            delay = settings.run_retry_delay_s(attempt)
            await self._status.publish(
                origin, "error", reason_code=exc.code, message=str(exc), job_id=job.job_id
            )
            await self._runs.set_run_status(
                run.run_id,
                RunStatus.RETRYING,
                error_code=exc.code,
                error_message=str(exc),
                retry_in_s=delay,
                attempt=attempt,
            )
            return "retry_scheduled"
        await self._status.publish(
            origin, "error", reason_code=exc.code, message=str(exc), job_id=job.job_id
        )
        await self._runs.set_run_status(
            run.run_id, RunStatus.FAILED, error_code=exc.code, error_message=str(exc)
        )
        return "provider_error"
