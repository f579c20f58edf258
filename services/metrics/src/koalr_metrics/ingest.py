"""From Kafka records to what PostgreSQL stores, and the records to dead-letter.

Pure functions, no I/O. Within a chunk of the usage topic only the newest record per natural key
survives (``fetched_at``; on a tie the later one in the chunk, i.e. the later offset), so the
upsert never touches a key twice and the database keeps the newest version across chunks.

:func:`prepare_usage` is the CPU-heavy step (contract validation of every record). It runs in
worker processes (:mod:`koalr_metrics.decoder`), so it takes and returns only cheap-to-pickle
values: the raw record values in, ``COPY`` text and small metadata out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, Generic, TypeAlias, TypeVar
from uuid import UUID

from aiokafka.structs import ConsumerRecord

from koalr_contracts import (
    CycleSpendSnapshot,
    DaySpend,
    EventDecodeError,
    IntegrationConnected,
    IntegrationCredentialsRotated,
    IntegrationDisconnected,
    SeatsSnapshot,
    SyncStatusChanged,
    UsageRecord,
    decode_event,
)
from koalr_metrics.seats import BilledSeat, SeatCost, SeatCounts, UnpricedSeatError, seat_counts

Record: TypeAlias = "ConsumerRecord[Any, Any]"
E = TypeVar("E")

MemberDayRow: TypeAlias = tuple[
    UUID, date, str, str | None, str | None, bool, int, Decimal, datetime, str | None
]
"""(integration_id, day, member_key, email, name, is_active, requests, charged_cents, fetched_at,
login)"""
ModelRow: TypeAlias = tuple[UUID, date, str, str, int, Decimal]
"""(integration_id, day, member_key, model, requests, charged_cents)"""
SnapshotMemberRow: TypeAlias = tuple[str, str | None, str | None, Decimal | None, Decimal]
"""(member_key, email, name, spend_cents, overall_spend_cents)"""
SeatRow: TypeAlias = tuple[
    str, str | None, str | None, str | None, str, int, date, date | None, datetime | None
]
"""(member_key, login, email, name, plan_type, price_cents, created_day, pending_cancellation_date,
last_activity_at)"""

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


@dataclass(frozen=True, slots=True)
class RejectedAt:
    """A rejected record named by its position in the chunk (records stay in the consumer)."""

    index: int
    error: BaseException
    org_id: str | None = None
    integration_id: UUID | None = None


@dataclass(slots=True)
class DecodedUsage:
    """A decoded chunk of the usage topic; every event with its position in the chunk."""

    usage: list[tuple[int, UsageRecord]] = field(default_factory=list)
    """The newest record per (integration, day, member), in order of first appearance."""
    snapshots: list[tuple[int, CycleSpendSnapshot]] = field(default_factory=list)
    """The newest snapshot per integration."""
    seats: list[tuple[int, SeatsSnapshot]] = field(default_factory=list)
    """The newest seats snapshot per integration."""
    day_spend: list[tuple[int, DaySpend]] = field(default_factory=list)
    """The newest day spend per (integration, day, source)."""
    rejected: list[RejectedAt] = field(default_factory=list)
    superseded: int = 0
    """Records replaced by a newer one for the same key inside this chunk."""


@dataclass(slots=True)
class ProjectionBatch(Generic[E]):
    events: list[Sourced[E]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class UsageRows:
    """Member days and their models as Python values (a reference for :class:`UsageCopy`)."""

    member_days: list[MemberDayRow]
    models: list[ModelRow]
    integrations: dict[UUID, tuple[str, str]]
    """integration_id -> (org_id, provider) from the envelopes, for not-yet-known integrations."""


@dataclass(frozen=True, slots=True)
class UsageCopy:
    """What one upsert writes: member days and their models as ``COPY`` text (one line per
    row, columns as in :data:`koalr_metrics.repository.MEMBER_DAY_COLUMNS` and
    ``MODEL_COLUMNS``), and the integrations they touch."""

    member_days: bytes
    member_day_count: int
    models: bytes
    model_count: int
    integrations: dict[UUID, tuple[str, str]]
    """integration_id -> (org_id, provider) from the envelopes, for not-yet-known integrations."""


NO_USAGE: Final = UsageCopy(b"", 0, b"", 0, {})


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


@dataclass(frozen=True, slots=True)
class SeatsRows:
    """A seats snapshot as stored: its counts, its seat cost steps and its seats."""

    integration_id: UUID
    org_id: str
    provider: str
    plan: str
    counts: SeatCounts
    cost: SeatCost
    fetched_at: datetime
    seats: list[SeatRow]


@dataclass(frozen=True, slots=True)
class DaySpendRow:
    integration_id: UUID
    org_id: str
    provider: str
    day: date
    source: str
    cents: Decimal
    fetched_at: datetime


@dataclass(frozen=True, slots=True)
class PreparedUsage:
    """A chunk of the usage topic ready to store: what :func:`prepare_usage` returns."""

    rows: UsageCopy
    sources: list[int]
    """Position in the chunk of the record behind each member-day line, in line order."""
    snapshots: list[tuple[int, SnapshotRows]]
    rejected: list[RejectedAt]
    superseded: int
    seats: list[tuple[int, SeatsRows]] = field(default_factory=list)
    day_spend: list[tuple[int, DaySpendRow]] = field(default_factory=list)


def _decode(record: Record) -> object:
    return decode_event(record.topic, record.value or b"")


def decode_usage(topic: str, values: Sequence[bytes | None]) -> DecodedUsage:
    """Decode a chunk of ``koalr.usage-records.v1`` record values (in offset order); keep the
    newest record per key and the newest snapshot per integration."""
    decoded = DecodedUsage()
    latest: dict[tuple[UUID, date, str], tuple[int, UsageRecord]] = {}
    snapshots: dict[UUID, tuple[int, CycleSpendSnapshot]] = {}
    seats: dict[UUID, tuple[int, SeatsSnapshot]] = {}
    day_spend: dict[tuple[UUID, date, str], tuple[int, DaySpend]] = {}
    for index, value in enumerate(values):
        try:
            event = decode_event(topic, value or b"")
        except (EventDecodeError, ValueError) as exc:
            decoded.rejected.append(RejectedAt(index, exc))
            continue
        if isinstance(event, UsageRecord):
            key = (event.integration_id, event.day, event.member.key)
            current = latest.get(key)
            if current is not None:
                decoded.superseded += 1
                if event.fetched_at < current[1].fetched_at:
                    continue
            latest[key] = (index, event)
        elif isinstance(event, CycleSpendSnapshot):
            keys = [m.member.key for m in event.members]
            if len(set(keys)) != len(keys):
                error = InvalidEventError("a member appears more than once in the spend snapshot")
                decoded.rejected.append(
                    RejectedAt(index, error, event.org_id, event.integration_id)
                )
                continue
            current_snapshot = snapshots.get(event.integration_id)
            if current_snapshot is not None:
                decoded.superseded += 1
                if event.fetched_at < current_snapshot[1].fetched_at:
                    continue
            snapshots[event.integration_id] = (index, event)
        elif isinstance(event, SeatsSnapshot):
            decoded.superseded += _keep_newest(seats, event.integration_id, index, event)
        elif isinstance(event, DaySpend):
            key_spend = (event.integration_id, event.day, event.source)
            decoded.superseded += _keep_newest(day_spend, key_spend, index, event)
        else:  # pragma: no cover - the topic's decoder admits only the types above
            error = InvalidEventError(f"{type(event).__name__} does not belong on the usage topic")
            decoded.rejected.append(RejectedAt(index, error))
    decoded.usage = list(latest.values())
    decoded.snapshots = list(snapshots.values())
    decoded.seats = list(seats.values())
    decoded.day_spend = list(day_spend.values())
    return decoded


K = TypeVar("K")
FetchedT = TypeVar("FetchedT", SeatsSnapshot, DaySpend)


def _keep_newest(kept: dict[K, tuple[int, FetchedT]], key: K, index: int, event: FetchedT) -> int:
    """Keep ``event`` under ``key`` unless an event already kept there is newer (``fetched_at``;
    a tie goes to the later offset). Returns 1 when an event of the same key was seen before."""
    current = kept.get(key)
    if current is None or event.fetched_at >= current[1].fetched_at:
        kept[key] = (index, event)
    return 0 if current is None else 1


def prepare_usage(topic: str, values: Sequence[bytes | None]) -> PreparedUsage:
    """Decode a chunk and render what it stores as ``COPY`` text (see :func:`decode_usage`)."""
    decoded = decode_usage(topic, values)
    seats: list[tuple[int, SeatsRows]] = []
    for index, snapshot in decoded.seats:
        try:
            seats.append((index, seats_rows(snapshot)))
        except UnpricedSeatError as exc:
            decoded.rejected.append(
                RejectedAt(
                    index, InvalidEventError(str(exc)), snapshot.org_id, snapshot.integration_id
                )
            )
    return PreparedUsage(
        rows=usage_copy(record for _, record in decoded.usage),
        sources=[index for index, _ in decoded.usage],
        snapshots=[(index, snapshot_rows(s)) for index, s in decoded.snapshots],
        rejected=decoded.rejected,
        superseded=decoded.superseded,
        seats=seats,
        day_spend=[(index, day_spend_row(s)) for index, s in decoded.day_spend],
    )


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


_COPY_ESCAPES: Final = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(value: str | None) -> str:
    """A text value in PostgreSQL's ``COPY`` text format: ``\\N`` for NULL; backslash, tab,
    newline and carriage return escaped (a NUL character stays and PostgreSQL refuses it)."""
    if value is None:
        return "\\N"
    if "\\" in value or not value.isprintable():
        return value.translate(_COPY_ESCAPES)
    return value


def usage_copy(records: Iterable[UsageRecord]) -> UsageCopy:
    """The member-day and model rows of records whose keys are unique, as ``COPY`` text.

    Every value is written exactly: UUIDs and dates in their canonical form, money as the
    ``Decimal``'s own digits (``numeric`` reads them without rounding), ``fetched_at`` as ISO
    8601 with its UTC offset and microseconds. The texts of integrations, days and fetch times,
    which repeat across a chunk, are rendered once.
    """
    member_days: list[str] = []
    models: list[str] = []
    integrations: dict[UUID, tuple[str, str]] = {}
    ids: dict[UUID, str] = {}
    days: dict[date, str] = {}
    stamps: dict[datetime, str] = {}
    for r in records:
        member = r.member
        integration_id = r.integration_id
        text_id = ids.get(integration_id)
        if text_id is None:
            text_id = ids[integration_id] = str(integration_id)
            integrations[integration_id] = (r.org_id, r.provider)
        text_day = days.get(r.day)
        if text_day is None:
            text_day = days[r.day] = r.day.isoformat()
        fetched_at = stamps.get(r.fetched_at)
        if fetched_at is None:
            fetched_at = stamps[r.fetched_at] = r.fetched_at.isoformat()
        head = f"{text_id}\t{text_day}\t{copy_text(member.key)}\t"
        member_days.append(
            f"{head}{copy_text(member.email)}\t{copy_text(member.name)}\t"
            f"{'t' if r.is_active else 'f'}\t{r.requests}\t{r.charged_cents}\t{fetched_at}\t"
            f"{copy_text(member.login)}\n"
        )
        models.extend(
            f"{head}{copy_text(m.model)}\t{m.requests}\t{m.charged_cents}\n" for m in r.models
        )
    return UsageCopy(
        member_days="".join(member_days).encode(),
        member_day_count=len(member_days),
        models="".join(models).encode(),
        model_count=len(models),
        integrations=integrations,
    )


def usage_rows(records: Sequence[UsageRecord]) -> UsageRows:
    """The member-day and model rows of records whose keys are unique, as Python values (what
    :func:`usage_copy` renders; the benchmark copies these rows raw)."""
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
                member.login,
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


def seats_rows(snapshot: SeatsSnapshot) -> SeatsRows:
    """A seats snapshot priced (raises :class:`UnpricedSeatError` for a seat with no price)."""
    billed = [BilledSeat.of(seat, snapshot.plan) for seat in snapshot.seats]
    return SeatsRows(
        integration_id=snapshot.integration_id,
        org_id=snapshot.org_id,
        provider=snapshot.provider,
        plan=snapshot.plan,
        counts=seat_counts(snapshot.seats, [b.price_cents for b in billed], snapshot.fetched_at),
        cost=SeatCost.of(billed),
        fetched_at=snapshot.fetched_at,
        seats=[
            (
                seat.member.key,
                seat.member.login,
                seat.member.email,
                seat.member.name,
                seat.plan_type,
                b.price_cents,
                b.first_day,
                b.ends,
                seat.last_activity_at,
            )
            for seat, b in zip(snapshot.seats, billed, strict=True)
        ],
    )


def day_spend_row(spend: DaySpend) -> DaySpendRow:
    return DaySpendRow(
        integration_id=spend.integration_id,
        org_id=spend.org_id,
        provider=spend.provider,
        day=spend.day,
        source=spend.source,
        cents=spend.cents,
        fetched_at=spend.fetched_at,
    )
