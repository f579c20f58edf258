"""The syncer's logic, free of Kafka and HTTP frameworks.

- :class:`Registry` keeps the integrations of ``koalr.integrations.v1`` (credentials sealed at
  rest) and starts a backfill on connect.
- :class:`JobRunner` runs one ``SyncJobRequested``: one bounded chunk of a run, newest days
  first, then publishes the records, records the progress and publishes the continuation.
- :class:`Scheduler` publishes due incremental syncs and retries of runs that failed
  transiently, claiming them with ``FOR UPDATE SKIP LOCKED`` so several processes can run it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final, Protocol
from uuid import UUID

import httpx
from prometheus_client import Counter

from koalr_contracts import (
    AnyEvent,
    ErrorCode,
    IntegrationConnected,
    IntegrationCredentialsRotated,
    IntegrationDisconnected,
    SyncJobRequested,
    SyncProgress,
    SyncState,
    SyncStatusChanged,
    topics,
)
from koalr_providers.cursor import (
    CursorClient,
    InsufficientPlanError,
    InvalidApiKeyError,
    ProviderError,
    RetryPolicy,
)
from koalr_providers.pacing import RateLimiter
from koalr_runtime.logs import get_logger
from koalr_runtime.sealing import Sealer, SealingError
from koalr_syncer.fetch import read_daily_usage, read_spend, read_usage_events
from koalr_syncer.jobs import (
    InvalidCursorError,
    backfill_job_id,
    continuation_job_id,
    encode_cursor,
    retry_job_id,
    run_id_of,
    scheduled_job_id,
)
from koalr_syncer.normalise import Origin, cycle_spend_snapshot, usage_records
from koalr_syncer.repository import Integration, Repository, Run
from koalr_syncer.settings import SyncerSettings

log = get_logger(__name__)

JOBS = Counter("koalr_syncer_jobs_total", "Sync jobs handled, by outcome", ["outcome"])
RECORDS = Counter("koalr_syncer_usage_records_total", "UsageRecords published")

TEAM_PLAN_MESSAGE: Final[str] = (
    "The Cursor plan only exposes the member list: usage, models and spend need a Business or "
    "Enterprise plan. Members are kept in sync; upgrade the plan and update the key to sync usage."
)
INVALID_KEY_MESSAGE: Final[str] = (
    "Cursor rejected the API key; it was probably revoked or rotated in Cursor. "
    "Enter a new admin API key to resume syncing."
)
UNREADABLE_CREDENTIAL_MESSAGE: Final[str] = (
    "The stored credential cannot be opened with the configured sealing keys; "
    "reconnect the integration or restore the retired sealing key."
)
UNSUPPORTED_PROVIDER_MESSAGE: Final[str] = "This syncer does not sync {provider} usage yet."
RUNNING_RUN_FRESHNESS_S: Final[float] = 3600.0
HOUSEKEEPING_RETENTION_S: Final[float] = 7 * 86_400.0


class Publisher(Protocol):
    """Publishes events on a contract topic and returns once Kafka acknowledged all of them."""

    async def publish(self, topic: str, events: Sequence[AnyEvent]) -> None: ...


class BadMessageError(ValueError):
    """The message itself cannot be processed; it belongs in the dead-letter topic."""


class IntegrationBusyError(RuntimeError):
    """Another process holds the integration's lock for longer than a job may take."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Syncer:
    """What every part of the logic needs (built once by the app's lifespan)."""

    settings: SyncerSettings
    repo: Repository
    publisher: Publisher
    sealer: Sealer
    http: httpx.AsyncClient
    limiter: RateLimiter
    now: Callable[[], datetime] = utc_now

    async def publish_status(
        self,
        origin: Origin,
        state: SyncState,
        *,
        reason_code: ErrorCode | None = None,
        message: str | None = None,
        data_through: date | None = None,
        progress: tuple[int, int] | None = None,
        last_success_at: datetime | None = None,
        job_id: UUID | None = None,
    ) -> None:
        status = SyncStatusChanged(
            org_id=origin.org_id,
            integration_id=origin.integration_id,
            correlation_id=origin.correlation_id,
            provider=origin.provider,
            state=state,
            reason_code=reason_code,
            message=message[:1000] if message else None,
            data_through=data_through,
            progress=(
                None
                if progress is None
                else SyncProgress(done=progress[0], total=progress[1], unit="days")
            ),
            last_success_at=last_success_at,
            job_id=job_id,
        )
        await self.publisher.publish(topics.SYNC_STATUS, [status])


def _origin(org_id: str, integration_id: UUID, correlation_id: UUID) -> Origin:
    return Origin(org_id=org_id, integration_id=integration_id, correlation_id=correlation_id)


class Registry:
    """Applies ``koalr.integrations.v1`` to the syncer's registry."""

    def __init__(self, syncer: Syncer) -> None:
        self._s = syncer

    async def apply(
        self,
        event: IntegrationConnected | IntegrationCredentialsRotated | IntegrationDisconnected,
    ) -> str:
        if isinstance(event, IntegrationConnected):
            return await self._connected(event)
        if isinstance(event, IntegrationCredentialsRotated):
            return await self._rotated(event)
        return await self._disconnected(event)

    def _check_credential(
        self, event: IntegrationConnected | IntegrationCredentialsRotated
    ) -> None:
        try:
            self._s.sealer.open(event.sealed_credential, context=str(event.integration_id))
        except SealingError as exc:
            raise BadMessageError(f"the sealed credential cannot be opened: {exc}") from exc

    async def _connected(self, event: IntegrationConnected) -> str:
        origin = _origin(event.org_id, event.integration_id, event.correlation_id)
        try:
            self._check_credential(event)
        except BadMessageError:
            await self._s.publish_status(
                origin, "error", reason_code="internal_error", message=UNREADABLE_CREDENTIAL_MESSAGE
            )
            raise
        settings = self._s.settings
        days = settings.backfill_days or event.backfill_days
        applied = await self._s.repo.connect(
            integration_id=event.integration_id,
            org_id=event.org_id,
            provider=event.provider,
            external_id=event.external_id,
            plan=event.plan,
            status=event.status,
            status_reason=event.status_reason,
            sealed_credential=event.sealed_credential,
            backfill_days=days,
            correlation_id=event.correlation_id,
            event_id=event.event_id,
            event_at=event.occurred_at,
            interval_s=settings.incremental_interval_s,
            first_run_in_s=settings.incremental_interval_s,
        )
        if not applied:
            return "stale"
        if event.provider != "cursor":
            await self._s.publish_status(
                origin,
                "error",
                reason_code="provider_error",
                message=UNSUPPORTED_PROVIDER_MESSAGE.format(provider=event.provider),
            )
            return "unsupported_provider"
        today = self._s.now().date()
        job = SyncJobRequested(
            job_id=backfill_job_id(event.event_id),
            org_id=event.org_id,
            integration_id=event.integration_id,
            correlation_id=event.correlation_id,
            provider=event.provider,
            reason="backfill",
            window_start=today - timedelta(days=days - 1),
            window_end=today,
        )
        await self._s.publisher.publish(topics.SYNC_JOBS, [job])
        log.info("registry.connected", backfill_days=days, plan=event.plan, job_id=str(job.job_id))
        return "connected"

    async def _rotated(self, event: IntegrationCredentialsRotated) -> str:
        if await self._s.repo.get_integration(event.integration_id) is None:
            raise BadMessageError(
                f"integration {event.integration_id} is not registered with the syncer; "
                "its IntegrationConnected was never seen"
            )
        self._check_credential(event)
        team = event.plan == "team"
        unblocked = await self._s.repo.rotate_credential(
            integration_id=event.integration_id,
            plan=event.plan,
            status="degraded" if team else "active",
            status_reason="insufficient_plan" if team else None,
            sealed_credential=event.sealed_credential,
            event_id=event.event_id,
            event_at=event.occurred_at,
        )
        if unblocked is None:
            return "stale"
        # Blocked runs are now due retries: the scheduler loop publishes them transactionally,
        # so a process dying right here forgets none of them.
        log.info("registry.rotated", plan=event.plan, resumed_runs=unblocked)
        return "rotated"

    async def _disconnected(self, event: IntegrationDisconnected) -> str:
        applied = await self._s.repo.disconnect(
            event.integration_id, event.event_id, event.occurred_at
        )
        log.info("registry.disconnected", applied=applied)
        return "disconnected" if applied else "stale"


class JobRunner:
    """Runs one sync job: a bounded chunk of a run."""

    def __init__(self, syncer: Syncer) -> None:
        self._s = syncer
        settings = syncer.settings
        self._policy = RetryPolicy(
            max_retries=settings.http_max_retries,
            rate_limit_retries=settings.http_rate_limit_retries,
            base_s=settings.retry_base_s,
            max_s=settings.retry_max_s,
        )

    async def run(self, job: SyncJobRequested) -> str:
        outcome = await self._run(job)
        JOBS.labels(outcome).inc()
        return outcome

    async def give_up(self, job: SyncJobRequested, error: BaseException) -> None:
        """The job kept failing unexpectedly and goes to the dead-letter topic: end its run and
        say so in the integration's status, so the failure is visible and not silent."""
        JOBS.labels("dead_lettered").inc()
        integration = await self._s.repo.get_integration(job.integration_id)
        if integration is None:
            return
        try:
            run_id = run_id_of(job)
        except InvalidCursorError:
            return
        await self._s.repo.set_run_status(
            run_id,
            "failed",
            error_code="internal_error",
            error_message=f"{type(error).__name__}: {error}"[:1000],
        )
        await self._s.publish_status(
            _origin(integration.org_id, integration.integration_id, integration.correlation_id),
            "error",
            reason_code="internal_error",
            message=(
                "The sync failed repeatedly on our side and was set aside for the operators; "
                "the next scheduled sync or a manual resync will try again."
            ),
            job_id=job.job_id,
        )

    async def _integration(self, job: SyncJobRequested) -> Integration:
        deadline = time.monotonic() + self._s.settings.unknown_integration_wait_s
        while True:
            integration = await self._s.repo.get_integration(job.integration_id)
            if integration is not None:
                return integration
            if time.monotonic() >= deadline:
                raise BadMessageError(
                    f"integration {job.integration_id} is not registered with the syncer "
                    "(never connected, or its IntegrationConnected was not processed)"
                )
            await asyncio.sleep(0.2)

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
        origin = _origin(integration.org_id, integration.integration_id, integration.correlation_id)
        if integration.provider != "cursor":
            await self._s.publish_status(
                origin,
                "error",
                reason_code="provider_error",
                message=UNSUPPORTED_PROVIDER_MESSAGE.format(provider=integration.provider),
            )
            return "unsupported_provider"
        repo = self._s.repo
        lock_timeout = self._s.settings.consumer_max_poll_interval_ms / 1000 / 3
        async with repo.integration_lock(integration.integration_id, lock_timeout) as locked:
            if not locked:
                raise IntegrationBusyError(
                    f"integration {integration.integration_id} is locked by another worker"
                )
            # Re-read under the lock: a job that ran meanwhile may have changed it.
            integration = await self._integration(job)
            if not integration.connected:
                return "skipped_disconnected"
            previous = await repo.start_job(job.job_id, run_id, integration.integration_id)
            if previous == "done":
                return "duplicate"
            run = await repo.get_or_create_run(
                run_id=run_id,
                integration_id=integration.integration_id,
                reason=job.reason,
                window_start=job.window_start,
                window_end=job.window_end,
                correlation_id=integration.correlation_id,
            )
            outcome = await self._work(integration, run, job, origin)
            await repo.finish_job(job.job_id, outcome)
            return outcome

    async def _work(
        self, integration: Integration, run: Run, job: SyncJobRequested, origin: Origin
    ) -> str:
        settled = await self._settled(integration, run, job, origin)
        if settled is not None:
            return settled
        repo = self._s.repo
        sealed = integration.sealed_credential
        if sealed is None:
            return "skipped_disconnected"
        try:
            api_key = self._s.sealer.open(sealed, context=str(integration.integration_id))
        except SealingError:
            await self._s.publish_status(
                origin,
                "error",
                reason_code="internal_error",
                message=UNREADABLE_CREDENTIAL_MESSAGE,
                job_id=job.job_id,
            )
            await repo.set_run_status(run.run_id, "failed", error_code="internal_error")
            return "credential_unreadable"
        client = CursorClient(
            self._s.http,
            api_key,
            team=integration.external_id,
            limiter=self._s.limiter,
            policy=self._policy,
        )
        del api_key
        try:
            if not run.members_synced:
                members = await client.members()
                await repo.upsert_members(integration.integration_id, members)
                await repo.members_synced(run.run_id)
            if integration.plan == "team":
                await self._s.publish_status(
                    origin,
                    "error",
                    reason_code="insufficient_plan",
                    message=TEAM_PLAN_MESSAGE,
                    job_id=job.job_id,
                )
                await repo.set_run_status(run.run_id, "done")
                return "members_only"
            return await self._chunk(integration, run, job, origin, client)
        except ProviderError as exc:
            return await self._provider_failed(
                integration, run=run, job=job, origin=origin, exc=exc, sealed_used=sealed
            )

    async def _settled(
        self, integration: Integration, run: Run, job: SyncJobRequested, origin: Origin
    ) -> str | None:
        """The outcome when the run needs no provider call now, else None."""
        repo = self._s.repo
        if run.status in ("done", "failed", "cancelled"):
            return f"run_{run.status}"
        if run.status == "blocked":
            return "blocked"
        if integration.status == "failed":
            await self._s.publish_status(
                origin,
                "error",
                reason_code="invalid_api_key",
                message=INVALID_KEY_MESSAGE,
                job_id=job.job_id,
            )
            await repo.set_run_status(
                run.run_id,
                "blocked",
                error_code=integration.status_reason or "invalid_api_key",
                error_message="waiting for a new credential",
            )
            return "blocked"
        if run.status == "retrying":
            await repo.set_run_status(run.run_id, "running", attempt=run.attempt)
        return None

    async def _chunk(
        self,
        integration: Integration,
        run: Run,
        job: SyncJobRequested,
        origin: Origin,
        client: CursorClient,
    ) -> str:
        settings = self._s.settings
        repo = self._s.repo
        now = self._s.now()
        today = now.date()
        last = min(run.next_day, today)
        if last < run.window_start:
            return await self._finish(integration, run, job, origin, client)
        first = max(run.window_start, last - timedelta(days=settings.chunk_days - 1))
        if run.done_days == 0:
            await self._s.publish_status(
                origin, "syncing", progress=(0, run.total_days), job_id=job.job_id
            )
        started = time.monotonic()
        budget_s = settings.job_time_budget_s
        events = await read_usage_events(
            client,
            first,
            last,
            now_ms=int(now.timestamp() * 1000),
            page_budget=settings.job_page_budget,
            out_of_time=lambda: time.monotonic() - started >= budget_s,
        )
        complete_from = events.complete_from
        rows, _ = await read_daily_usage(client, complete_from, last)
        days = [complete_from + timedelta(days=i) for i in range((last - complete_from).days + 1)]
        directory = await repo.member_directory(integration.integration_id)
        records = usage_records(
            origin, days=days, rows=rows, tally=events.tally, directory=directory, fetched_at=now
        )
        await self._s.publisher.publish(topics.USAGE_RECORDS, records)
        RECORDS.inc(len(records))
        log.info(
            "job.chunk_published",
            days=f"{complete_from}..{last}",
            records=len(records),
            events=events.tally.events,
            event_pages=events.pages,
            events_without_email=events.tally.without_email,
        )
        run = await repo.advance_run(run.run_id, complete_from - timedelta(days=1))
        if run.finished_reading:
            return await self._finish(integration, run, job, origin, client)
        continuation = SyncJobRequested(
            job_id=continuation_job_id(run.run_id, run.next_day),
            org_id=integration.org_id,
            integration_id=integration.integration_id,
            correlation_id=origin.correlation_id,
            provider="cursor",
            reason=job.reason,
            window_start=run.window_start,
            window_end=run.next_day,
            cursor=encode_cursor(run.run_id),
        )
        await self._s.publisher.publish(topics.SYNC_JOBS, [continuation])
        await self._s.publish_status(
            origin, "syncing", progress=(run.done_days, run.total_days), job_id=job.job_id
        )
        return "continued"

    async def _finish(
        self,
        integration: Integration,
        run: Run,
        job: SyncJobRequested,
        origin: Origin,
        client: CursorClient,
    ) -> str:
        """Every day of the run is published: snapshot the cycle's spend and report.

        The run is marked done last: a job that dies before that is delivered again and repeats
        these steps (all idempotent), so the final status is never lost.
        """
        repo = self._s.repo
        rows, cycle_start = await read_spend(client)
        now = self._s.now()
        snapshot = cycle_spend_snapshot(origin, rows, cycle_start, now)
        await self._s.publisher.publish(topics.USAGE_RECORDS, [snapshot])
        yesterday = now.date() - timedelta(days=1)
        data_through = min(run.window_end, yesterday) if run.window_start <= yesterday else None
        updated = await repo.record_success(
            integration.integration_id,
            data_through,
            now,
            restore_active=integration.status_reason == "insufficient_plan",
        )
        others = await repo.running_runs(
            integration.integration_id, exclude=run.run_id, fresher_than_s=RUNNING_RUN_FRESHNESS_S
        )
        if others:
            done = sum(r.done_days for r in others)
            total = sum(r.total_days for r in others)
            await self._s.publish_status(
                origin, "syncing", progress=(done, total), last_success_at=now, job_id=job.job_id
            )
        else:
            await self._s.publish_status(
                origin,
                "idle",
                data_through=updated.data_through if updated else data_through,
                progress=(run.total_days, run.total_days),
                last_success_at=now,
                job_id=job.job_id,
            )
        await repo.set_run_status(run.run_id, "done")
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
        repo = self._s.repo
        settings = self._s.settings
        log.warning("job.provider_failed", code=exc.code, error=str(exc), run_id=str(run.run_id))
        # Each branch reports first and records the run's state last: a job that dies in between
        # is delivered again and reaches the same branch, so the status is never lost.
        if isinstance(exc, InvalidApiKeyError):
            if not await repo.fail_integration(
                integration.integration_id, sealed_used, "invalid_api_key"
            ):
                # The credential was rotated while this job used the old one: try again now.
                await repo.set_run_status(
                    run.run_id, "retrying", retry_in_s=0.0, attempt=run.attempt
                )
                return "retry_after_rotation"
            await self._s.publish_status(
                origin,
                "error",
                reason_code="invalid_api_key",
                message=INVALID_KEY_MESSAGE,
                job_id=job.job_id,
            )
            await repo.set_run_status(
                run.run_id, "blocked", error_code=exc.code, error_message=str(exc)
            )
            return "invalid_api_key"
        if isinstance(exc, InsufficientPlanError):
            await repo.degrade_integration(integration.integration_id, "insufficient_plan")
            await self._s.publish_status(
                origin,
                "error",
                reason_code="insufficient_plan",
                message=TEAM_PLAN_MESSAGE,
                job_id=job.job_id,
            )
            await repo.set_run_status(
                run.run_id, "failed", error_code=exc.code, error_message=str(exc)
            )
            return "insufficient_plan"
        if exc.retryable:
            attempt = run.attempt + 1
            if attempt >= settings.run_max_attempts:
                await self._s.publish_status(
                    origin,
                    "error",
                    reason_code=exc.code,
                    message=f"{exc} Gave up after {attempt} attempts; the next scheduled "
                    "sync or a manual resync will try again.",
                    job_id=job.job_id,
                )
                await repo.set_run_status(
                    run.run_id,
                    "failed",
                    error_code=exc.code,
                    error_message=str(exc),
                    attempt=attempt,
                )
                return "gave_up"
            delay = min(settings.run_retry_max_s, settings.run_retry_base_s * 2 ** (attempt - 1))
            await self._s.publish_status(
                origin, "error", reason_code=exc.code, message=str(exc), job_id=job.job_id
            )
            await repo.set_run_status(
                run.run_id,
                "retrying",
                error_code=exc.code,
                error_message=str(exc),
                retry_in_s=delay,
                attempt=attempt,
            )
            return "retry_scheduled"
        await self._s.publish_status(
            origin, "error", reason_code=exc.code, message=str(exc), job_id=job.job_id
        )
        await repo.set_run_status(run.run_id, "failed", error_code=exc.code, error_message=str(exc))
        return "provider_error"


class Scheduler:
    """Publishes due incremental syncs and due retries; safe to run in every process."""

    def __init__(self, syncer: Syncer, *, batch: int = 100) -> None:
        self._s = syncer
        self._batch = batch
        self._last_housekeeping = 0.0

    async def tick(self) -> int:
        """Publish what is due now; returns the number of jobs published."""
        published = await self._schedules() + await self._retries()
        if time.monotonic() - self._last_housekeeping > 600:
            self._last_housekeeping = time.monotonic()
            forgotten = await self._s.repo.forget_finished(HOUSEKEEPING_RETENTION_S)
            if forgotten:
                log.info("scheduler.housekeeping", jobs_forgotten=forgotten)
        return published

    async def _schedules(self) -> int:
        settings = self._s.settings
        async with self._s.repo.claim_due_schedules(self._batch) as claim:
            if not claim.due:
                return 0
            today = self._s.now().date()
            jobs = [
                SyncJobRequested(
                    job_id=scheduled_job_id(due.integration_id, due.next_run_at),
                    org_id=due.org_id,
                    integration_id=due.integration_id,
                    correlation_id=due.correlation_id,
                    provider="cursor",
                    reason="scheduled",
                    window_start=today - timedelta(days=settings.incremental_days - 1),
                    window_end=today,
                )
                for due in claim.due
            ]
            await self._s.publisher.publish(topics.SYNC_JOBS, jobs)
            for due, job in zip(claim.due, jobs, strict=True):
                await claim.advance(due.integration_id, job.job_id, due.interval_s)
            log.info("scheduler.published", jobs=len(jobs), kind="scheduled")
            return len(jobs)

    async def _retries(self) -> int:
        async with self._s.repo.claim_due_retries(self._batch) as claim:
            if not claim.due:
                return 0
            jobs = [
                SyncJobRequested(
                    job_id=retry_job_id(due.run.run_id, due.retry_at),
                    org_id=due.org_id,
                    integration_id=due.run.integration_id,
                    correlation_id=due.run.correlation_id,
                    provider="cursor",
                    reason=due.run.reason,  # type: ignore[arg-type]
                    window_start=due.run.window_start,
                    window_end=max(due.run.window_start, due.run.next_day),
                    cursor=encode_cursor(due.run.run_id),
                    attempt=due.run.attempt,
                )
                for due in claim.due
            ]
            await self._s.publisher.publish(topics.SYNC_JOBS, jobs)
            for due in claim.due:
                await claim.requeued(due.run.run_id)
            log.info("scheduler.published", jobs=len(jobs), kind="retry")
            return len(jobs)
