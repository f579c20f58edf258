"""Publishes an integration's ``SyncStatusChanged``, numbered by a per-integration sequence taken
from the syncer's database right before publishing (consumers keep the highest one applied)."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from koalr_contracts import (
    ErrorCode,
    SyncProgress,
    SyncState,
    SyncStatusChanged,
    topics,
)
from koalr_syncer.normalise import Origin
from koalr_syncer.repository import StatusRepository
from koalr_syncer.service.common import Publisher


class StatusReporter:
    def __init__(self, publisher: Publisher, repository: StatusRepository) -> None:
        self._publisher = publisher
        self._repository = repository

    async def publish(
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
            sequence=await self._repository.next_sequence(origin.integration_id),
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
        await self._publisher.publish(topics.SYNC_STATUS, [status])
