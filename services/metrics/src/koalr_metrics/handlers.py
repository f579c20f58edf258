"""Thin adapters: Kafka batch subscribers and HTTP routes that call the services."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Protocol

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.kafka.message import KafkaMessage as KafkaMessageType

from koalr_contracts import DeadLetter, Provider, topics
from koalr_metrics.analytics import Policy
from koalr_metrics.jsonio import ExactJSONResponse
from koalr_metrics.schemas import ErrorOut, MembersOut, PolicyIn, PolicyOut, SummaryOut
from koalr_metrics.service import (
    STORE_FAILURES,
    AnalyticsService,
    Backoff,
    IngestService,
    StoreUnavailable,
)
from koalr_metrics.settings import MetricsSettings
from koalr_runtime.auth import JwtAuthenticator, Principal, authorize
from koalr_runtime.kafka import publish_events
from koalr_runtime.logs import bind_correlation, get_logger

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


class BatchConsumer:
    """At-least-once handling of one consumed batch.

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
        backoff: Backoff,
        on_failure: Callable[[], None],
    ) -> None:
        self._stream = stream
        self._process = process
        self._broker = broker
        self._dead_letter_topic = dead_letter_topic
        self._backoff = backoff
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
        self._backoff.reset()
        try:
            await msg.ack()
        except KafkaError as exc:
            # A rebalance took the partitions away: the next owner re-reads the batch from
            # the last committed offsets, and the upserts make that harmless.
            log.warning("consumer.commit_failed", stream=self._stream, error=repr(exc))

    async def _retry_later(self, msg: KafkaMessageType, exc: Exception) -> None:
        delay_s = self._backoff.next_delay_s()
        self._on_failure()
        STORE_FAILURES.labels(self._stream).inc()
        if isinstance(exc, StoreUnavailable | KafkaError):
            log.warning(
                "consumer.batch_retry",
                stream=self._stream,
                error_type=type(exc).__name__,
                error=str(exc)[:300],
                retry_in_s=round(delay_s, 3),
            )
        else:
            log.error(
                "consumer.batch_failed",
                stream=self._stream,
                retry_in_s=round(delay_s, 3),
                exc_info=exc,
            )
        await asyncio.sleep(delay_s)
        await msg.nack()


def register_subscribers(
    broker: KafkaBroker, settings: MetricsSettings, services: IngestProvider
) -> None:
    """The three consumers: usage ingest and the two projections, all manual-commit batches."""
    dead_letters = settings.topic(topics.DEAD_LETTERS)

    def consumer(stream: str, process: BatchProcessor) -> BatchConsumer:
        def count_failure() -> None:
            services.ingest.stats.failed_attempts += 1

        return BatchConsumer(
            stream,
            process,
            broker=broker,
            dead_letter_topic=dead_letters,
            backoff=Backoff(settings.retry_initial_backoff_s, settings.retry_max_backoff_s),
            on_failure=count_failure,
        )

    # The service exists once the lifespan ran; look it up per batch.
    async def store_usage(records: Sequence[Any]) -> list[DeadLetter]:
        return await services.ingest.ingest_usage(records)

    async def project_integrations(records: Sequence[Any]) -> list[DeadLetter]:
        return await services.ingest.project_integrations(records)

    async def project_sync_status(records: Sequence[Any]) -> list[DeadLetter]:
        return await services.ingest.project_sync_status(records)

    usage = consumer("usage", store_usage)
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
    return authenticator.authenticate(request.headers.get("authorization"))


PrincipalDep = Annotated[Principal, Depends(_current_principal)]


async def org_admin(org_id: str, principal: PrincipalDep) -> Principal:
    """Checked before the body is read, so a member gets 403 whatever the body holds."""
    authorize(principal, org_id, admin_only=True)
    return principal


async def analytics_service(request: Request) -> AnalyticsService:
    service: AnalyticsService = request.app.state.analytics
    return service


AnalyticsDep = Annotated[AnalyticsService, Depends(analytics_service)]
OrgAdminDep = Annotated[Principal, Depends(org_admin)]
Days = Annotated[int, Query(ge=1, le=90, description="Days up to today (UTC), 1 to 90.")]
ProviderFilter = Annotated[Provider | None, Query(description="Only this provider.")]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing, malformed, expired or wrong token."},
    403: {"model": ErrorOut, "description": "Token for another org, or role too low."},
    422: {"model": ErrorOut, "description": "Invalid query or body (`invalid_request`)."},
}

router = APIRouter(prefix="/v1/orgs/{org_id}/ai-analytics", tags=["ai-analytics"])


@router.get(
    "/summary",
    response_class=ExactJSONResponse,
    responses={200: {"model": SummaryOut}, **_ERRORS},
    summary="Usage, models and (where allowed) spend per provider, as the viewer may see them",
)
async def get_summary(
    org_id: str,
    principal: PrincipalDep,
    analytics: AnalyticsDep,
    days: Days = 30,
    provider: ProviderFilter = None,
) -> Response:
    document = await analytics.summary(principal, org_id, days=days, provider=provider)
    return ExactJSONResponse(document)


@router.get(
    "/members",
    response_class=ExactJSONResponse,
    responses={200: {"model": MembersOut}, **_ERRORS},
    summary="Per-member activity and spend (admins only)",
)
async def get_members(
    org_id: str,
    principal: PrincipalDep,
    analytics: AnalyticsDep,
    days: Days = 30,
    provider: ProviderFilter = None,
) -> Response:
    document = await analytics.members(principal, org_id, days=days, provider=provider)
    return ExactJSONResponse(document)


@router.get(
    "/settings",
    response_class=ExactJSONResponse,
    responses={200: {"model": PolicyOut}, **_ERRORS},
    summary="The org's privacy policy (admins only)",
)
async def get_settings(org_id: str, principal: OrgAdminDep, analytics: AnalyticsDep) -> Response:
    return ExactJSONResponse(await analytics.policy(principal, org_id))


@router.put(
    "/settings",
    response_class=ExactJSONResponse,
    responses={200: {"model": PolicyOut}, **_ERRORS},
    summary="Set the org's privacy policy (admins only)",
)
async def put_settings(
    org_id: str, body: PolicyIn, principal: OrgAdminDep, analytics: AnalyticsDep
) -> Response:
    policy = Policy(body.members_can_see_spend, body.min_group_size)
    return ExactJSONResponse(await analytics.set_policy(principal, org_id, policy))
