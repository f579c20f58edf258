"""Thin adapters: Kafka batch subscribers and HTTP routes that call the services."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.kafka.message import KafkaMessage as KafkaMessageType

from koalr_contracts import DeadLetter, Provider, topics
from koalr_metrics.analytics import Policy
from koalr_metrics.csvout import (
    CSV_RESPONSE,
    MEMBERS_CSV_HEADER,
    Format,
    csv_response,
    members_rows,
)
from koalr_metrics.erasure import ErasureService
from koalr_metrics.jsonio import ExactJSONResponse
from koalr_metrics.repository import MetricsRepository
from koalr_metrics.schemas import (
    ErasureAcceptedOut,
    ErasureOut,
    ErrorOut,
    InsightsOut,
    MembersOut,
    PolicyIn,
    PolicyOut,
    SummaryOut,
)
from koalr_metrics.service import (
    STORE_FAILURES,
    AnalyticsService,
    IngestService,
    InsightsService,
    StoreUnavailable,
    SubmittedUsage,
)
from koalr_metrics.settings import MetricsSettings
from koalr_runtime import audit
from koalr_runtime.audit import AuditLogPage
from koalr_runtime.auth import JwtAuthenticator, Principal, authorize
from koalr_runtime.kafka import publish_events
from koalr_runtime.logs import bind_correlation, get_logger
from koalr_runtime.retry import RetryPause

log = get_logger(__name__)

BatchProcessor = Callable[[Sequence[Any]], Awaitable[list[DeadLetter]]]


class IngestProvider(Protocol):
    """Where subscribers find the ingest service the lifespan created."""

    @property
    def ingest(self) -> IngestService: ...


# --- Kafka ------------------------------------------------------------------------------------


async def _raw_bodies(msg: KafkaMessageType) -> Any:
    """Leave decoding to the service (each record is decoded once, invalid ones dead-lettered)."""
    return msg.body


def _log_retry(stream: str, exc: Exception, delay_s: float) -> None:
    STORE_FAILURES.labels(stream).inc()
    if isinstance(exc, StoreUnavailable | KafkaError):
        log.warning(
            "consumer.batch_retry",
            stream=stream,
            error_type=type(exc).__name__,
            error=str(exc)[:300],
            retry_in_s=round(delay_s, 3),
        )
    else:
        log.error(
            "consumer.batch_failed", stream=stream, retry_in_s=round(delay_s, 3), exc_info=exc
        )


class BatchConsumer:
    """At-least-once handling of one consumed batch (the projections: small, ordered batches).

    The service stores the batch in one transaction and returns its dead letters; those are
    published, and only then are the offsets committed. When PostgreSQL (or the dead-letter
    publish) fails, nothing is committed: after a growing pause the consumer seeks back to the
    batch's first offsets, so the same records come again until they are stored. Never skipped.
    """

    def __init__(
        self,
        stream: str,
        process: BatchProcessor,
        *,
        broker: KafkaBroker,
        dead_letter_topic: str,
        retry_pause: RetryPause,
        on_failure: Callable[[], None],
    ) -> None:
        self._stream = stream
        self._process = process
        self._broker = broker
        self._dead_letter_topic = dead_letter_topic
        self._retry_pause = retry_pause
        self._on_failure = on_failure

    async def handle(self, msg: KafkaMessageType) -> None:
        raw = msg.raw_message
        records = raw if isinstance(raw, tuple) else (raw,)
        if not records:
            return
        bind_correlation(None, stream=self._stream, records=len(records))
        try:
            letters = await self._process(records)
            if letters:
                await publish_events(self._broker, self._dead_letter_topic, letters)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure means: retry the same batch
            await self._retry_later(msg, exc)
            return
        self._retry_pause.reset()
        try:
            await msg.ack()
        except KafkaError as exc:
            # A rebalance took the partitions away: the next owner re-reads the batch from
            # the last committed offsets, and the upserts make that harmless.
            log.warning("consumer.commit_failed", stream=self._stream, error=repr(exc))

    async def _retry_later(self, msg: KafkaMessageType, exc: Exception) -> None:
        delay_s = self._retry_pause.next_delay_s()
        self._on_failure()
        _log_retry(self._stream, exc, delay_s)
        await asyncio.sleep(delay_s)
        await msg.nack()


OffsetRanges = dict[TopicPartition, tuple[int, int]]
"""(first offset, last offset) of a batch's records per partition."""
Positions = dict[TopicPartition, int]
"""The consumer's next offset to read per assigned partition."""


def offset_ranges(records: Sequence[Any]) -> OffsetRanges:
    """The first and last offset of the records on each partition of a consumed batch."""
    ranges: OffsetRanges = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        current = ranges.get(tp)
        if current is None:
            ranges[tp] = (record.offset, record.offset)
        else:
            ranges[tp] = (min(current[0], record.offset), max(current[1], record.offset))
    return ranges


def batch_follows(ranges: OffsetRanges, positions: Positions) -> bool:
    """Whether the consumer still stands right after this batch on each of its partitions:
    no seek (after a failed write) and no rebalance moved a position since it was read."""
    return all(positions.get(tp) == last + 1 for tp, (_, last) in ranges.items())


def rewind_targets(ranges: OffsetRanges, positions: Positions) -> Positions:
    """Where to seek so that a batch is read again: each of its partitions whose position is
    past the batch's first offset goes back to it. A position already before it (sought back
    for an earlier batch) stays, so nothing is skipped; a partition no longer assigned is left
    to its new owner, which reads from the committed offset."""
    return {
        tp: first for tp, (first, _) in ranges.items() if tp in positions and positions[tp] > first
    }


class UsageConsumer:
    """At-least-once handling of the usage topic, one batch written while the next is read.

    A batch is handed to the ingest service (its chunks start decoding at once) and written by
    a background task, which commits exactly that batch's offsets once its last chunk is in
    PostgreSQL and its dead letters are published. The handler returns as soon as the previous
    batch is done, so Kafka reads and unpacks the next batch while this one is written: at most
    two batches are in hand, and commits happen in batch order.

    When a write fails, nothing of its batch is committed: the task seeks each of the batch's
    partitions back to its first offset, then pauses (growing backoff) before it reports the
    failure. A batch read before such a seek is stale (its partitions' positions no longer
    follow it): it is dropped, and its partitions are sought back to its first offsets where
    they are ahead of them (never forward). Records thus come again, in order, until they are
    stored; none is skipped.
    """

    def __init__(
        self,
        services: IngestProvider,
        *,
        broker: KafkaBroker,
        dead_letter_topic: str,
        retry_pause: RetryPause,
    ) -> None:
        self._services = services
        self._broker = broker
        self._dead_letter_topic = dead_letter_topic
        self._retry_pause = retry_pause
        self._writing: asyncio.Task[bool] | None = None
        self._closing = False

    async def handle(self, msg: KafkaMessageType) -> None:
        raw = msg.raw_message
        records = raw if isinstance(raw, tuple) else (raw,)
        if not records:
            return
        consumer = msg.consumer
        if not isinstance(consumer, AIOKafkaConsumer):
            raise TypeError("the usage consumer commits explicit offsets: it needs aiokafka")
        bind_correlation(None, stream="usage", records=len(records))
        ranges = offset_ranges(records)
        submitted = self._services.ingest.submit_usage(records)
        try:
            if self._writing is not None:
                await asyncio.shield(self._writing)
            follows = await self._follows(consumer, ranges)
        except BaseException:
            submitted.cancel()
            raise
        if self._closing or not follows:
            submitted.cancel()
            await self._rewind(consumer, ranges)
            self._services.ingest.stats.batches_left_for_later += 1
            log.info("consumer.batch_left_for_later", stream="usage", closing=self._closing)
            return
        self._writing = asyncio.create_task(self._write(consumer, submitted, ranges))

    async def close(self) -> None:
        """Let the batch being written finish (and commit); later batches are left unread."""
        self._closing = True
        if self._writing is not None:
            await asyncio.shield(self._writing)

    async def _write(
        self, consumer: AIOKafkaConsumer, submitted: SubmittedUsage, ranges: OffsetRanges
    ) -> bool:
        ingest = self._services.ingest
        try:
            letters = await ingest.store_usage(submitted)
            if letters:
                await publish_events(self._broker, self._dead_letter_topic, letters)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure means: retry the same batch
            delay_s = self._retry_pause.next_delay_s()
            ingest.stats.failed_attempts += 1
            _log_retry("usage", exc, delay_s)
            await self._rewind(consumer, ranges)
            await asyncio.sleep(delay_s)
            return False
        self._retry_pause.reset()
        try:
            await consumer.commit({tp: last + 1 for tp, (_, last) in ranges.items()})
        except KafkaError as exc:
            # A rebalance took the partitions away: the next owner re-reads the batch from
            # the last committed offsets, and the upserts make that harmless.
            log.warning("consumer.commit_failed", stream="usage", error=repr(exc))
        return True

    @staticmethod
    async def _positions(consumer: AIOKafkaConsumer, ranges: OffsetRanges) -> Positions:
        positions: Positions = {}
        for tp in ranges:
            try:
                positions[tp] = await consumer.position(tp)
            except IllegalStateError:
                continue  # no longer assigned to this consumer
        return positions

    async def _follows(self, consumer: AIOKafkaConsumer, ranges: OffsetRanges) -> bool:
        return batch_follows(ranges, await self._positions(consumer, ranges))

    async def _rewind(self, consumer: AIOKafkaConsumer, ranges: OffsetRanges) -> None:
        for tp, offset in rewind_targets(ranges, await self._positions(consumer, ranges)).items():
            consumer.seek(tp, offset)


def register_subscribers(
    broker: KafkaBroker, settings: MetricsSettings, services: IngestProvider
) -> UsageConsumer:
    """The three consumers: usage ingest and the two projections, all manual-commit batches.
    Returns the usage consumer, which the lifespan closes before it stops the broker."""
    dead_letters = settings.topic(topics.DEAD_LETTERS)

    def retry_pause() -> RetryPause:
        return RetryPause(settings.retry_initial_backoff_s, settings.retry_max_backoff_s)

    def consumer(stream: str, process: BatchProcessor) -> BatchConsumer:
        def count_failure() -> None:
            services.ingest.stats.failed_attempts += 1

        return BatchConsumer(
            stream,
            process,
            broker=broker,
            dead_letter_topic=dead_letters,
            retry_pause=retry_pause(),
            on_failure=count_failure,
        )

    # The service exists once the lifespan ran; look it up per batch.
    async def project_integrations(records: Sequence[Any]) -> list[DeadLetter]:
        return await services.ingest.project_integrations(records)

    async def project_sync_status(records: Sequence[Any]) -> list[DeadLetter]:
        return await services.ingest.project_sync_status(records)

    usage = UsageConsumer(
        services, broker=broker, dead_letter_topic=dead_letters, retry_pause=retry_pause()
    )
    integrations = consumer("integrations", project_integrations)
    sync_status = consumer("sync_status", project_sync_status)

    async def on_usage_records(msg: KafkaMessage) -> None:
        await usage.handle(msg)

    async def on_integration_events(msg: KafkaMessage) -> None:
        await integrations.handle(msg)

    async def on_sync_status(msg: KafkaMessage) -> None:
        await sync_status.handle(msg)

    common: dict[str, Any] = {
        "batch": True,
        "auto_offset_reset": "earliest",
        "ack_policy": AckPolicy.MANUAL,
        "batch_timeout_ms": settings.ingest_batch_timeout_ms,
    }
    broker.subscriber(
        settings.topic(topics.USAGE_RECORDS),
        group_id=settings.group(settings.ingest_group),
        max_records=settings.ingest_max_records,
        **common,
    )(on_usage_records, decoder=_raw_bodies)
    broker.subscriber(
        settings.topic(topics.INTEGRATIONS),
        group_id=settings.group(settings.integrations_group),
        max_records=500,
        **common,
    )(on_integration_events, decoder=_raw_bodies)
    broker.subscriber(
        settings.topic(topics.SYNC_STATUS),
        group_id=settings.group(settings.sync_status_group),
        max_records=500,
        **common,
    )(on_sync_status, decoder=_raw_bodies)
    return usage


# --- HTTP -------------------------------------------------------------------------------------

BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "HS256 JWT with claims sub, org_id, role (admin or member) and exp.",
}
"""Declared in the OpenAPI document by the app (a FastAPI security dependency would cost a
resolution step on every request for documentation only)."""


async def _current_principal(request: Request) -> Principal:
    authenticator: JwtAuthenticator = request.app.state.authenticator
    return await authenticator.authenticate(request.headers.get("authorization"))


PrincipalDep = Annotated[Principal, Depends(_current_principal)]


async def org_admin(org_id: str, principal: PrincipalDep) -> Principal:
    """Checked before the body is read, so a member gets 403 whatever the body holds."""
    authorize(principal, org_id, admin_only=True)
    return principal


async def analytics_service(request: Request) -> AnalyticsService:
    service: AnalyticsService = request.app.state.analytics
    return service


async def insights_service(request: Request) -> InsightsService:
    service: InsightsService = request.app.state.insights
    return service


async def erasure_service(request: Request) -> ErasureService:
    service: ErasureService = request.app.state.erasures
    return service


AnalyticsDep = Annotated[AnalyticsService, Depends(analytics_service)]
InsightsDep = Annotated[InsightsService, Depends(insights_service)]
ErasureDep = Annotated[ErasureService, Depends(erasure_service)]
OrgAdminDep = Annotated[Principal, Depends(org_admin)]
Days = Annotated[int, Query(ge=1, le=90, description="Days up to today (UTC), 1 to 90.")]
ProviderFilter = Annotated[Provider | None, Query(description="Only this provider.")]

Responses = dict[int | str, dict[str, Any]]


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


_UNAUTHORIZED = _error(
    "Missing, malformed, expired or wrongly signed token (`unauthorized`, `invalid_token`, "
    "`token_expired`)."
)
_INTERNAL = _error("Unexpected failure on our side (`internal_error`).")
_INVALID = _error("Invalid query or body (`invalid_request`); the message names the field.")
_VIEWER_ERRORS: Responses = {
    401: _UNAUTHORIZED,
    403: _error("Token for another organisation (`forbidden`)."),
    422: _INVALID,
    500: _INTERNAL,
}
_ADMIN_ERRORS: Responses = {
    **_VIEWER_ERRORS,
    403: _error("Token for another organisation (`forbidden`), or not an admin (`admin_only`)."),
}


def admin_errors() -> Responses:
    """The documented errors of an admin-only route (a copy, for other routers)."""
    return dict(_ADMIN_ERRORS)


router = APIRouter(
    prefix="/v1/orgs/{org_id}/ai-analytics",
    tags=["ai-analytics"],
    default_response_class=ExactJSONResponse,
)


@router.get(
    "/summary",
    response_model=SummaryOut,
    responses=_VIEWER_ERRORS,
    summary="Usage, models and (where allowed) spend per provider, as the viewer may see them",
)
async def get_summary(
    org_id: str,
    principal: PrincipalDep,
    analytics: AnalyticsDep,
    days: Days = 30,
    provider: ProviderFilter = None,
) -> Response:
    body = await analytics.summary_json(principal, org_id, days=days, provider=provider)
    return Response(body, media_type="application/json")


@router.get(
    "/members",
    response_model=MembersOut,
    responses={**_ADMIN_ERRORS, **CSV_RESPONSE},
    summary="Per-member activity and spend (admins only)",
)
async def get_members(
    org_id: str,
    principal: PrincipalDep,
    analytics: AnalyticsDep,
    *,
    days: Days = 30,
    provider: ProviderFilter = None,
    format: Format = "json",
) -> Response:
    members = await analytics.members(principal, org_id, days=days, provider=provider)
    if format == "csv":
        return csv_response("members", MEMBERS_CSV_HEADER, members_rows(members))
    return ExactJSONResponse(members)


@router.get(
    "/insights",
    response_model=InsightsOut,
    responses=_ADMIN_ERRORS,
    summary="Cost per active user, idle seats, seat activation and spend anomalies (admins only)",
)
async def get_insights(
    org_id: str,
    principal: PrincipalDep,
    insights: InsightsDep,
    days: Days = 30,
    provider: ProviderFilter = None,
) -> Response:
    return ExactJSONResponse(
        await insights.insights(principal, org_id, days=days, provider=provider)
    )


@router.get(
    "/settings",
    response_model=PolicyOut,
    responses=_ADMIN_ERRORS,
    summary="The org's privacy policy (admins only)",
)
async def get_settings(org_id: str, principal: OrgAdminDep, analytics: AnalyticsDep) -> Response:
    return ExactJSONResponse(await analytics.policy(principal, org_id))


@router.put(
    "/settings",
    response_model=PolicyOut,
    responses=_ADMIN_ERRORS,
    summary="Set the org's privacy policy (admins only)",
)
async def put_settings(
    org_id: str, body: PolicyIn, principal: OrgAdminDep, analytics: AnalyticsDep
) -> Response:
    policy = Policy(
        members_can_see_spend=body.members_can_see_spend,
        min_group_size=body.min_group_size,
        cursor_seat_price_cents=body.cursor_seat_price_cents,
        retention_days=body.retention_days,
    )
    return ExactJSONResponse(await analytics.set_policy(principal, org_id, policy))


audit_router = APIRouter(prefix="/v1/orgs/{org_id}/audit-log", tags=["audit"])


@audit_router.get(
    "",
    response_model=AuditLogPage,
    responses=_ADMIN_ERRORS,
    dependencies=[Depends(org_admin)],
    summary="The metrics service's audit log of the organisation (admins only, newest first)",
    description="Admin actions this service performed for the organisation: settings changes, "
    "identities replacements and member erasures. Page with `before` set to the previous "
    "page's `next_before`.",
)
async def get_audit_log(
    org_id: str,
    request: Request,
    limit: audit.PageLimit = 50,
    before: audit.PageBefore = None,
) -> AuditLogPage:
    repository: MetricsRepository = request.app.state.repository
    return await repository.audit_page(org_id, limit=limit, before=before)


@router.delete(
    "/members/{member}",
    status_code=202,
    response_model=ErasureAcceptedOut,
    responses={
        **_ADMIN_ERRORS,
        422: _error(
            "`invalid_request`: the member is neither an email address nor `github:<login>`."
        ),
    },
    summary="Erase a member's data from every store and keep it out of later syncs (admins only)",
    description="Accepted at once (202) whether or not the member has data: the member is "
    "tombstoned (later records are dropped at ingest) and the stored rows are deleted by a job; "
    "follow it at `GET .../erasures/{erasure_id}`.",
)
async def erase_member(
    org_id: str, member: str, principal: OrgAdminDep, erasures: ErasureDep
) -> Response:
    return ExactJSONResponse(await erasures.request(principal, org_id, member), status_code=202)


@router.get(
    "/erasures/{erasure_id}",
    response_model=ErasureOut,
    responses={
        **_ADMIN_ERRORS,
        404: _error("`not_found`: no such erasure in this organisation."),
    },
    summary="Status of an erasure request (admins only)",
)
async def get_erasure(
    org_id: str, erasure_id: str, principal: OrgAdminDep, erasures: ErasureDep
) -> Response:
    return ExactJSONResponse(await erasures.status(principal, org_id, erasure_id))
