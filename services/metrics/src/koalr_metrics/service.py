"""The logic of the metrics service, free of any framework: ingest and projections (what to
store, what to dead-letter, what counts as "retry later") and the role-filtered analytics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal, TypeVar
from uuid import UUID

from prometheus_client import Counter, Histogram

from koalr_contracts import DeadLetter, Provider, SyncStatusChanged
from koalr_metrics.analytics import (
    DEFAULT_POLICY,
    DayRange,
    Policy,
    ProviderData,
    members_document,
    policy_document,
    summary_document,
)
from koalr_metrics.decoder import UsageDecoder
from koalr_metrics.ingest import (
    NO_USAGE,
    DaySpendRow,
    IntegrationEvent,
    PreparedUsage,
    ProjectionBatch,
    Record,
    Rejected,
    SeatsRows,
    SnapshotRows,
    decode_integration_batch,
    decode_sync_status_batch,
    decode_usage,
    usage_copy,
)
from koalr_metrics.insights import (
    AnomalyRule,
    InsightsData,
    baseline_range,
    insights_document,
)
from koalr_metrics.jsonio import dumps
from koalr_metrics.repository import InsightsRepository, MetricsRepository, StoreOutcome
from koalr_metrics.schemas import InsightsOut, MembersOut, PolicyOut, SummaryOut
from koalr_metrics.summary_cache import SummaryCache
from koalr_runtime.auth import Principal, authorize
from koalr_runtime.kafka import dead_letter_for
from koalr_runtime.logs import bind_correlation, get_logger
from koalr_runtime.pgerrors import is_transient

log = get_logger(__name__)

ProjectedT = TypeVar("ProjectedT", bound=IntegrationEvent | SyncStatusChanged)
StoredT = TypeVar("StoredT")
ProjectionOutcome = Literal["applied", "stale", "refused"]

RECORDS = Counter(
    "koalr_metrics_records_total",
    "Records consumed by the metrics service, by outcome",
    ["stream", "outcome"],
)
BATCH_SECONDS = Histogram(
    "koalr_metrics_batch_seconds", "Time to store one consumed batch", ["stream"]
)
SUMMARY_CACHE = Counter(
    "koalr_metrics_summary_cache_total",
    "Summary requests served from the cache (hit) or queried and rendered (miss)",
    ["outcome"],
)
STORE_FAILURES = Counter(
    "koalr_metrics_store_failures_total",
    "Batches PostgreSQL could not take (retried after a pause)",
    ["stream"],
)


class StoreUnavailable(Exception):  # noqa: N818 - a state, not a programming error
    """PostgreSQL cannot take writes right now; the batch must be retried, not skipped."""


class StoreRefused(Exception):  # noqa: N818 - the reason a record is dead-lettered
    """PostgreSQL refused one record for good (no retry will change it)."""


@dataclass(slots=True)
class IngestStats:
    """Counters of one service instance (the Prometheus ones are process-wide)."""

    batches: int = 0
    """Usage batches stored (and so committed, or left to a rebalance's new owner)."""
    records: int = 0
    member_days_written: int = 0
    dead_lettered: int = 0
    failed_attempts: int = 0
    batches_received: int = 0
    """Usage batches handed to the decoder, including those later left for a re-read."""
    batches_left_for_later: int = 0
    """Usage batches read before a failed batch was sought back, dropped to be read again."""
    erased_dropped: int = 0
    """Member days dropped at ingest because their member was erased (not dead-lettered)."""


@dataclass(frozen=True, slots=True)
class SubmittedUsage:
    """A consumed batch of the usage topic whose chunks are being decoded."""

    records: Sequence[Record]
    chunks: list[Sequence[Record]]
    decoding: list[asyncio.Future[PreparedUsage]]

    def cancel(self) -> None:
        """Drop the decoding still pending (the batch will not be stored)."""
        for future in self.decoding:
            future.cancel()


def utc_today() -> date:
    return datetime.now(UTC).date()


class IngestService:
    """Stores what the three consumed topics say and names what goes to the dead-letter topic.

    Each method stores one consumed batch (the usage ones in chunks, one transaction each) and
    returns the dead letters to publish. It raises :class:`StoreUnavailable` when PostgreSQL is
    unreachable or overloaded: the caller then retries the same batch later and commits
    nothing. A chunk PostgreSQL refuses outright is retried record by record, and only the
    records it refuses are dead-lettered.
    """

    def __init__(
        self,
        repository: MetricsRepository,
        *,
        decoder: UsageDecoder,
        usage_group: str,
        integrations_group: str,
        sync_status_group: str,
        chunk_records: int = 1000,
    ) -> None:
        self._repo = repository
        self._decoder = decoder
        self._usage_group = usage_group
        self._integrations_group = integrations_group
        self._sync_status_group = sync_status_group
        self._chunk_records = chunk_records
        self.stats = IngestStats()

    def submit_usage(self, records: Sequence[Record]) -> SubmittedUsage:
        """Start decoding a consumed batch of usage records: it is cut into chunks, all handed
        to the decoder at once (workers decode them while earlier writes go on)."""
        chunks = [
            records[start : start + self._chunk_records]
            for start in range(0, len(records), self._chunk_records)
        ]
        decoding = [self._decoder.submit(c[0].topic, [r.value for r in c]) for c in chunks]
        self.stats.batches_received += 1
        return SubmittedUsage(records, chunks, decoding)

    async def store_usage(self, submitted: SubmittedUsage) -> list[DeadLetter]:
        """Store a submitted batch; returns the dead letters to publish.

        The chunks are written one transaction each, in offset order (so a newer record in a
        later chunk still wins), each as soon as it is decoded and the previous write is
        committed, so decoding (worker processes) overlaps with writing (PostgreSQL). Offsets
        are committed by the caller only after every chunk is written.
        """
        rejected: list[Rejected] = []
        written = 0
        writing: asyncio.Task[tuple[int, list[Rejected]]] | None = None
        try:
            with BATCH_SECONDS.labels("usage").time():
                for chunk, decoded in zip(submitted.chunks, submitted.decoding, strict=True):
                    prepared = await decoded
                    rejected.extend(
                        Rejected(chunk[r.index], r.error, r.org_id, r.integration_id)
                        for r in prepared.rejected
                    )
                    if writing is not None:
                        chunk_written, refused = await writing
                        written += chunk_written
                        rejected.extend(refused)
                    writing = asyncio.create_task(self._write_chunk(chunk, prepared))
                if writing is not None:
                    chunk_written, refused = await writing
                    written += chunk_written
                    rejected.extend(refused)
        finally:
            submitted.cancel()
            if writing is not None and not writing.done():
                writing.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await writing
        self.stats.batches += 1
        self.stats.records += len(submitted.records)
        self.stats.member_days_written += written
        return self._dead_letters(rejected, self._usage_group, "usage")

    async def _write_chunk(
        self, chunk: Sequence[Record], prepared: PreparedUsage
    ) -> tuple[int, list[Rejected]]:
        snapshots = [rows for _, rows in prepared.snapshots]
        seats = [rows for _, rows in prepared.seats]
        day_spend = [row for _, row in prepared.day_spend]
        erased = 0
        try:
            outcome = await self._repo.store_usage(prepared.rows, snapshots, seats, day_spend)
        except Exception as exc:
            if is_transient(exc):
                raise StoreUnavailable(str(exc)) from exc
            log.warning(
                "ingest.chunk_refused", error=str(exc), records=prepared.rows.member_day_count
            )
            written, refused = await self._usage_one_by_one(chunk, prepared)
        else:
            written, refused = outcome.member_days, []
            erased = outcome.erased
        stored = (
            prepared.rows.member_day_count
            + len(snapshots)
            + len(seats)
            + len(day_spend)
            - len(refused)
            - erased
        )
        RECORDS.labels("usage", "stored").inc(stored)
        RECORDS.labels("usage", "erased_member").inc(erased)
        self.stats.erased_dropped += erased
        RECORDS.labels("usage", "superseded_in_batch").inc(prepared.superseded)
        return written, refused

    async def _usage_one_by_one(
        self, chunk: Sequence[Record], prepared: PreparedUsage
    ) -> tuple[int, list[Rejected]]:
        """Store a chunk PostgreSQL refused record by record; name the records it refuses."""
        written = 0
        refused: list[Rejected] = []
        for index in prepared.sources:
            record = chunk[index]
            # Decoded again here (rare path): the worker sent text, not the event.
            ((_, event),) = decode_usage(record.topic, [record.value]).usage
            outcome = await self._isolated(
                record,
                event.org_id,
                event.integration_id,
                self._repo.store_usage(usage_copy([event]), []),
            )
            if isinstance(outcome, Rejected):
                refused.append(outcome)
            else:
                written += 1
        others: list[tuple[int, SnapshotRows | SeatsRows | DaySpendRow]] = [
            *prepared.snapshots,
            *prepared.seats,
            *prepared.day_spend,
        ]
        for index, row in others:
            outcome = await self._isolated(
                chunk[index], row.org_id, row.integration_id, self._store_alone(row)
            )
            if isinstance(outcome, Rejected):
                refused.append(outcome)
        return written, refused

    async def _store_alone(self, row: SnapshotRows | SeatsRows | DaySpendRow) -> StoreOutcome:
        """Store one snapshot or day spend in its own transaction."""
        if isinstance(row, SnapshotRows):
            return await self._repo.store_usage(NO_USAGE, [row])
        if isinstance(row, SeatsRows):
            return await self._repo.store_usage(NO_USAGE, [], [row])
        return await self._repo.store_usage(NO_USAGE, [], [], [row])

    @staticmethod
    async def _isolated(
        record: Record, org_id: str, integration_id: UUID, store: Awaitable[StoredT]
    ) -> StoredT | Rejected:
        """Store one event on its own; a refusal becomes a :class:`Rejected`."""
        try:
            return await store
        except Exception as exc:
            if is_transient(exc):
                raise StoreUnavailable(str(exc)) from exc
            error = StoreRefused(f"PostgreSQL refused the record: {exc}")
            return Rejected(record, error, org_id, integration_id)

    async def project_integrations(self, records: Sequence[Record]) -> list[DeadLetter]:
        batch = decode_integration_batch(records)
        rejected, outcomes = await self._project(
            batch, self._repo.apply_integration_events, "integrations"
        )
        for item, outcome in zip(batch.events, outcomes, strict=True):
            bind_correlation(
                str(item.event.correlation_id),
                integration_id=str(item.event.integration_id),
                event_type=item.event.event_type,
                sequence=item.event.sequence,
            )
            log.info("projection.integration_event", outcome=outcome)
        return self._dead_letters(rejected, self._integrations_group, "integrations")

    async def project_sync_status(self, records: Sequence[Record]) -> list[DeadLetter]:
        batch = decode_sync_status_batch(records)
        rejected, _ = await self._project(batch, self._repo.apply_sync_statuses, "sync_status")
        return self._dead_letters(rejected, self._sync_status_group, "sync_status")

    async def _project(
        self,
        batch: ProjectionBatch[ProjectedT],
        apply: Callable[[list[ProjectedT]], Awaitable[list[bool]]],
        stream: str,
    ) -> tuple[list[Rejected], list[ProjectionOutcome]]:
        """Apply a decoded batch at once; if PostgreSQL refuses it, event by event, so only the
        refused events are rejected. Transient failures propagate (the batch is retried).

        Returns the rejected records and, per decoded event, its outcome: ``applied``,
        ``stale`` (its sequence does not follow the last one applied: a redelivery or an
        overtaken event) or ``refused`` (among the rejected)."""
        rejected = list(batch.rejected)
        outcomes: list[ProjectionOutcome]
        try:
            applied = await apply([item.event for item in batch.events])
            outcomes = ["applied" if a else "stale" for a in applied]
        except Exception as exc:
            if is_transient(exc):
                raise StoreUnavailable(str(exc)) from exc
            outcomes = []
            for item in batch.events:
                one = await self._isolated(
                    item.record, item.event.org_id, item.event.integration_id, apply([item.event])
                )
                if isinstance(one, Rejected):
                    rejected.append(one)
                    outcomes.append("refused")
                else:
                    outcomes.append("applied" if all(one) else "stale")
        for outcome in ("applied", "stale"):
            RECORDS.labels(stream, outcome).inc(outcomes.count(outcome))
        return rejected, outcomes

    def _dead_letters(
        self, rejected: Sequence[Rejected], consumer_group: str, stream: str
    ) -> list[DeadLetter]:
        letters = []
        for item in rejected:
            letter = dead_letter_for(
                item.record,
                consumer_group=consumer_group,
                error=item.error,
                org_id=item.org_id,
                integration_id=item.integration_id,
            )
            log.warning(
                "ingest.dead_letter",
                source_topic=letter.source_topic,
                source_partition=letter.source_partition,
                source_offset=letter.source_offset,
                error_type=letter.error_type,
                reason=letter.reason[:300],
                integration_id=str(item.integration_id) if item.integration_id else None,
            )
            letters.append(letter)
        self.stats.dead_lettered += len(letters)
        RECORDS.labels(stream, "dead_lettered").inc(len(letters))
        return letters


class AnalyticsService:
    """The role-filtered queries of the AI Analytics API."""

    def __init__(
        self,
        repository: MetricsRepository,
        today: Callable[[], date] = utc_today,
        *,
        summary_cache_entries: int = 0,
    ) -> None:
        self._repo = repository
        self._today = today
        self.summary_cache = SummaryCache(summary_cache_entries)

    async def summary_json(
        self, principal: Principal, org_id: str, *, days: int, provider: Provider | None
    ) -> bytes:
        """The summary as JSON bytes, from the cache while the org's data version is unchanged
        (:mod:`koalr_metrics.summary_cache`), else queried and rendered."""
        authorize(principal, org_id, admin_only=False)
        today = self._today()
        key = (org_id, principal.role, principal.is_admin, days, provider, today)
        # Read before the summary's query: an entry never holds data older than its version.
        version = await self._repo.data_version(org_id)
        body = self.summary_cache.get(key, version)
        if body is not None:
            SUMMARY_CACHE.labels("hit").inc()
            return body
        SUMMARY_CACHE.labels("miss").inc()
        body = dumps(await self._summary(principal, org_id, days, provider, today))
        self.summary_cache.put(key, version, body)
        return body

    async def summary(
        self, principal: Principal, org_id: str, *, days: int, provider: Provider | None
    ) -> SummaryOut:
        authorize(principal, org_id, admin_only=False)
        return await self._summary(principal, org_id, days, provider, self._today())

    async def _summary(
        self,
        principal: Principal,
        org_id: str,
        days: int,
        provider: Provider | None,
        today: date,
    ) -> SummaryOut:
        day_range = DayRange.ending(today, days)
        policy, providers = await self._repo.provider_data(
            org_id, provider, day_range, is_admin=principal.is_admin
        )
        if principal.is_admin:
            policy = DEFAULT_POLICY  # nothing is suppressed or hidden for admins
        return summary_document(org_id, principal.role, day_range, providers, policy=policy)

    async def members(
        self, principal: Principal, org_id: str, *, days: int, provider: Provider | None
    ) -> MembersOut:
        authorize(principal, org_id, admin_only=True)
        day_range = DayRange.ending(self._today(), days)
        members = await self._repo.member_activity(org_id, provider, day_range)
        return members_document(members, day_range)

    async def policy(self, principal: Principal, org_id: str) -> PolicyOut:
        authorize(principal, org_id, admin_only=True)
        policy = await self._repo.org_policy(org_id)
        return policy_document(org_id, policy)

    async def set_policy(self, principal: Principal, org_id: str, policy: Policy) -> PolicyOut:
        authorize(principal, org_id, admin_only=True)
        saved = await self._repo.save_org_policy(org_id, policy, actor=principal)
        log.info(
            "settings.updated",
            org_id=org_id,
            members_can_see_spend=saved.members_can_see_spend,
            min_group_size=saved.min_group_size,
            retention_days=saved.retention_days,
        )
        return policy_document(org_id, saved)


class InsightsService:
    """The insights of an org (admins only), read for the API and for the alerts."""

    def __init__(
        self,
        repository: MetricsRepository,
        insights: InsightsRepository,
        rule: AnomalyRule,
        today: Callable[[], date] = utc_today,
    ) -> None:
        self._repo = repository
        self._insights = insights
        self._rule = rule
        self._today = today

    @property
    def rule(self) -> AnomalyRule:
        return self._rule

    def today(self) -> date:
        return self._today()

    async def insights(
        self, principal: Principal, org_id: str, *, days: int, provider: Provider | None
    ) -> InsightsOut:
        # Admins only, whatever the org lets members see: these are per-person figures.
        authorize(principal, org_id, admin_only=True)
        day_range = DayRange.ending(self._today(), days)
        providers = await self.read(org_id, provider, day_range)
        return insights_document(org_id, day_range, providers, self._rule)

    async def read(
        self, org_id: str, provider: Provider | None, day_range: DayRange
    ) -> list[tuple[ProviderData, InsightsData]]:
        """Each connected integration's summary data over the range and its 28 baseline days,
        with the insights' own inputs."""
        _, datas = await self._repo.provider_data(
            org_id, provider, baseline_range(day_range), is_admin=True
        )
        rows = await self._insights.insights_rows(org_id, provider, day_range)
        out: list[tuple[ProviderData, InsightsData]] = []
        for data in datas:
            _, _, active, first_day = rows.integrations.get(
                data.integration_id, (data.provider, None, 0, None)
            )
            inputs = InsightsData(
                integration_id=data.integration_id,
                provider=data.provider,
                active_members=active,
                holders=rows.holders.get(data.integration_id, []),
                first_data_day=first_day,
            )
            out.append((data, inputs))
        return out
