"""The registry: applies ``koalr.integrations.v1`` to the integrations the syncer knows
(credentials sealed at rest) and starts a backfill on connect."""

from __future__ import annotations

from datetime import timedelta

from koalr_contracts import (
    IntegrationConnected,
    IntegrationCredentialsRotated,
    IntegrationDisconnected,
    SyncJobRequested,
    topics,
)
from koalr_runtime.logs import get_logger
from koalr_runtime.sealing import Sealer, SealingError
from koalr_syncer.jobs import backfill_job_id
from koalr_syncer.model import EventOrder
from koalr_syncer.repository import IntegrationRepository
from koalr_syncer.service.common import (
    UNREADABLE_CREDENTIAL_MESSAGE,
    BadMessageError,
    Clock,
    Publisher,
    origin_of,
)
from koalr_syncer.service.status import StatusReporter
from koalr_syncer.settings import SyncerSettings

log = get_logger(__name__)

IntegrationEvent = IntegrationConnected | IntegrationCredentialsRotated | IntegrationDisconnected


class Registry:
    """Applies integration events; each returns its outcome (``stale`` when not applied)."""

    def __init__(
        self,
        *,
        settings: SyncerSettings,
        integrations: IntegrationRepository,
        publisher: Publisher,
        status: StatusReporter,
        sealer: Sealer,
        now: Clock,
    ) -> None:
        self._settings = settings
        self._integrations = integrations
        self._publisher = publisher
        self._status = status
        self._sealer = sealer
        self._now = now

    async def apply(self, event: IntegrationEvent) -> str:
        if isinstance(event, IntegrationConnected):
            return await self._connected(event)
        if isinstance(event, IntegrationCredentialsRotated):
            return await self._rotated(event)
        return await self._disconnected(event)

    def _check_credential(
        self, event: IntegrationConnected | IntegrationCredentialsRotated
    ) -> None:
        try:
            self._sealer.open(event.sealed_credential, context=str(event.integration_id))
        except SealingError as exc:
            raise BadMessageError(f"the sealed credential cannot be opened: {exc}") from exc

    async def _connected(self, event: IntegrationConnected) -> str:
        origin = origin_of(event)
        try:
            self._check_credential(event)
        except BadMessageError:
            await self._status.publish(
                origin, "error", reason_code="internal_error", message=UNREADABLE_CREDENTIAL_MESSAGE
            )
            raise
        settings = self._settings
        days = settings.backfill_days or event.backfill_days
        today = self._now().date()
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
        order = await self._integrations.connect(
            integration_id=event.integration_id,
            org_id=event.org_id,
            provider=event.provider,
            external_id=event.external_id,
            plan=event.plan,
            status=event.status,
            status_reason=event.status_reason,
            sealed_credential=event.sealed_credential,
            backfill_days=days,
            backfill_window=(job.window_start, job.window_end),
            backfill_job_id=job.job_id,
            correlation_id=event.correlation_id,
            event_id=event.event_id,
            event_at=event.occurred_at,
            sequence=event.sequence,
            interval_s=settings.incremental_interval_s,
            first_run_in_s=settings.incremental_interval_s,
        )
        if order is EventOrder.STALE:
            return "stale"
        # A redelivered connect publishes its backfill job again (the same job id, run once):
        # the process may have died between storing the integration and publishing the job.
        await self._publisher.publish(topics.SYNC_JOBS, [job])
        log.info("registry.connected", backfill_days=days, plan=event.plan, job_id=str(job.job_id))
        return "connected"

    async def _rotated(self, event: IntegrationCredentialsRotated) -> str:
        if await self._integrations.get(event.integration_id) is None:
            if await self._integrations.is_purged(event.integration_id):
                return "stale"
            raise BadMessageError(
                f"integration {event.integration_id} is not registered with the syncer; "
                "its IntegrationConnected was never seen"
            )
        self._check_credential(event)
        team = event.plan == "team"
        order, unblocked = await self._integrations.rotate_credential(
            integration_id=event.integration_id,
            plan=event.plan,
            status="degraded" if team else "active",
            status_reason="insufficient_plan" if team else None,
            sealed_credential=event.sealed_credential,
            event_id=event.event_id,
            event_at=event.occurred_at,
            sequence=event.sequence,
        )
        if order is not EventOrder.NEXT:
            return _skipped(order)
        # Blocked runs are now due retries: the scheduler loop publishes them transactionally,
        # so a process dying right here forgets none of them.
        log.info("registry.rotated", plan=event.plan, resumed_runs=unblocked)
        return "rotated"

    async def _disconnected(self, event: IntegrationDisconnected) -> str:
        order = await self._integrations.disconnect(
            event.integration_id,
            event.event_id,
            event.occurred_at,
            event.sequence,
            purge=event.purge,
        )
        if order is not EventOrder.NEXT:
            return _skipped(order)
        log.info("registry.disconnected", purge=event.purge)
        return "purged" if event.purge else "disconnected"


def _skipped(order: EventOrder) -> str:
    return "duplicate" if order is EventOrder.REDELIVERED else "stale"
