"""From a batch of Kafka records to rows to upsert, and the records to dead-letter.

Pure functions, no I/O. Within a batch only the newest record per natural key survives
(``fetched_at``; on a tie the later one in the batch, i.e. the later offset), so the upsert never
touches a key twice and the database keeps the newest version across batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, TypeAlias, TypeVar
from uuid import UUID

from aiokafka.structs import ConsumerRecord

from koalr_contracts import (
    CycleSpendSnapshot,
    EventDecodeError,
    IntegrationConnected,
    IntegrationCredentialsRotated,
    IntegrationDisconnected,
    SyncStatusChanged,
    UsageRecord,
    decode_event,
)

Record: TypeAlias = "ConsumerRecord[Any, Any]"
E = TypeVar("E")

MemberDayRow: TypeAlias = tuple[
    UUID, date, str, str | None, str | None, bool, int, Decimal, datetime
]
"""(integration_id, day, member_key, email, name, is_active, requests, charged_cents, fetched_at)"""
ModelRow: TypeAlias = tuple[UUID, date, str, str, int, Decimal]
"""(integration_id, day, member_key, model, requests, charged_cents)"""
SnapshotMemberRow: TypeAlias = tuple[str, str | None, str | None, Decimal | None, Decimal]
"""(member_key, email, name, spend_cents, overall_spend_cents)"""

IntegrationEvent: TypeAlias = (
    IntegrationConnected | IntegrationCredentialsRotated | IntegrationDisconnected
)


class InvalidEventError(ValueError):
    """A decodable event that still cannot be stored (the reason says why)."""


@dataclass(frozen=True, slots=True)
class Sourced(Generic[E]):
    """An event with the Kafka record it came from."""

    event: E
    record: Record


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that goes to the dead-letter topic, with what is known about it."""

    record: Record
    error: BaseException
    org_id: str | None = None
    integration_id: UUID | None = None


@dataclass(slots=True)
class UsageBatch:
    usage: list[Sourced[UsageRecord]] = field(default_factory=list)
    snapshots: list[Sourced[CycleSpendSnapshot]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    superseded: int = 0
    """Records replaced by a newer one for the same key inside this batch."""


@dataclass(slots=True)
class ProjectionBatch(Generic[E]):
    events: list[Sourced[E]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class UsageRows:
    """What one upsert writes: member days, their models, and the integrations they touch."""

    member_days: list[MemberDayRow]
    models: list[ModelRow]
    integrations: dict[UUID, tuple[str, str]]
    """integration_id -> (org_id, provider) from the envelopes, for not-yet-known integrations."""


@dataclass(frozen=True, slots=True)
class SnapshotRows:
    integration_id: UUID
    org_id: str
    provider: str
    cycle_start: date
    total_cents: Decimal
    spenders: int
    fetched_at: datetime
    members: list[SnapshotMemberRow]


def _decode(record: Record) -> object:
    return decode_event(record.topic, record.value or b"")


class UsageBatchBuilder:
    """Decodes usage-topic records one at a time and keeps the newest per key, so a caller can
    decode a batch in slices (and let other work run in between)."""

    def __init__(self) -> None:
        self._batch = UsageBatch()
        self._latest: dict[tuple[UUID, date, str], Sourced[UsageRecord]] = {}
        self._snapshots: dict[UUID, Sourced[CycleSpendSnapshot]] = {}

    def add(self, record: Record) -> None:
        batch = self._batch
        try:
            event = _decode(record)
        except (EventDecodeError, ValueError) as exc:
            batch.rejected.append(Rejected(record, exc))
            return
        if isinstance(event, UsageRecord):
            key = (event.integration_id, event.day, event.member.key)
            current = self._latest.get(key)
            if current is not None:
                batch.superseded += 1
                if event.fetched_at < current.event.fetched_at:
                    return
            self._latest[key] = Sourced(event, record)
        elif isinstance(event, CycleSpendSnapshot):
            keys = [m.member.key for m in event.members]
            if len(set(keys)) != len(keys):
                error = InvalidEventError("a member appears more than once in the spend snapshot")
                batch.rejected.append(Rejected(record, error, event.org_id, event.integration_id))
                return
            current_snapshot = self._snapshots.get(event.integration_id)
            if current_snapshot is not None:
                batch.superseded += 1
                if event.fetched_at < current_snapshot.event.fetched_at:
                    return
            self._snapshots[event.integration_id] = Sourced(event, record)
        else:  # pragma: no cover - the topic's decoder admits only the two types above
            error = InvalidEventError(f"{type(event).__name__} does not belong on the usage topic")
            batch.rejected.append(Rejected(record, error))

    def build(self) -> UsageBatch:
        self._batch.usage = list(self._latest.values())
        self._batch.snapshots = list(self._snapshots.values())
        return self._batch


def decode_usage_batch(records: Iterable[Record]) -> UsageBatch:
    """Decode a batch of ``koalr.usage-records.v1``; keep the newest record per key."""
    builder = UsageBatchBuilder()
    for record in records:
        builder.add(record)
    return builder.build()


def decode_integration_batch(records: Iterable[Record]) -> ProjectionBatch[IntegrationEvent]:
    """Decode a batch of ``koalr.integrations.v1`` in order (order matters for projections)."""
    batch: ProjectionBatch[IntegrationEvent] = ProjectionBatch()
    for record in records:
        try:
            event = _decode(record)
        except (EventDecodeError, ValueError) as exc:
            batch.rejected.append(Rejected(record, exc))
            continue
        if isinstance(
            event, IntegrationConnected | IntegrationCredentialsRotated | IntegrationDisconnected
        ):
            batch.events.append(Sourced(event, record))
        else:  # pragma: no cover - the topic's decoder admits only the types above
            error = InvalidEventError(f"{type(event).__name__} does not belong on this topic")
            batch.rejected.append(Rejected(record, error))
    return batch


def decode_sync_status_batch(records: Iterable[Record]) -> ProjectionBatch[SyncStatusChanged]:
    """Decode a batch of ``koalr.sync-status.v1`` in order."""
    batch: ProjectionBatch[SyncStatusChanged] = ProjectionBatch()
    for record in records:
        try:
            event = _decode(record)
        except (EventDecodeError, ValueError) as exc:
            batch.rejected.append(Rejected(record, exc))
            continue
        if isinstance(event, SyncStatusChanged):
            batch.events.append(Sourced(event, record))
        else:  # pragma: no cover - the topic's decoder admits only SyncStatusChanged
            error = InvalidEventError(f"{type(event).__name__} does not belong on this topic")
            batch.rejected.append(Rejected(record, error))
    return batch


def usage_rows(records: Sequence[UsageRecord]) -> UsageRows:
    """The member-day and model rows of records whose keys are unique."""
    member_days: list[MemberDayRow] = []
    models: list[ModelRow] = []
    integrations: dict[UUID, tuple[str, str]] = {}
    for r in records:
        member = r.member
        key = member.key
        member_days.append(
            (
                r.integration_id,
                r.day,
                key,
                member.email,
                member.name,
                r.is_active,
                r.requests,
                r.charged_cents,
                r.fetched_at,
            )
        )
        models.extend(
            (r.integration_id, r.day, key, m.model, m.requests, m.charged_cents) for m in r.models
        )
        if r.integration_id not in integrations:
            integrations[r.integration_id] = (r.org_id, r.provider)
    return UsageRows(member_days, models, integrations)


def snapshot_rows(snapshot: CycleSpendSnapshot) -> SnapshotRows:
    return SnapshotRows(
        integration_id=snapshot.integration_id,
        org_id=snapshot.org_id,
        provider=snapshot.provider,
        cycle_start=snapshot.cycle_start,
        total_cents=snapshot.total_cents,
        spenders=sum(1 for m in snapshot.members if m.overall_spend_cents > 0),
        fetched_at=snapshot.fetched_at,
        members=[
            (
                m.member.key,
                m.member.email,
                m.member.name,
                m.spend_cents,
                m.overall_spend_cents,
            )
            for m in snapshot.members
        ],
    )
