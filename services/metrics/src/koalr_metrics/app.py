"""Wiring of the metrics service: HTTP app, lifespan owning the pool and the broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from faststream.kafka import KafkaBroker

from koalr_contracts import topics
from koalr_metrics.alerts import AlertsPublisher, kafka_publisher
from koalr_metrics.analytics import DEFAULT_RETENTION_DAYS
from koalr_metrics.background import PeriodicJob
from koalr_metrics.decoder import create_decoder
from koalr_metrics.erasure import ErasureService, member_erased_events, run_pending_erasures
from koalr_metrics.handlers import BEARER_SCHEME, audit_router, register_subscribers, router
from koalr_metrics.insights import AnomalyRule
from koalr_metrics.people_handlers import router as people_router
from koalr_metrics.people_repository import PeopleRepository
from koalr_metrics.people_service import PeopleService
from koalr_metrics.privacy_repository import ErasureNotice, PrivacyRepository
from koalr_metrics.repository import InsightsRepository, MetricsRepository
from koalr_metrics.retention import apply_retention
from koalr_metrics.service import AnalyticsService, IngestService, InsightsService, utc_today
from koalr_metrics.settings import MetricsSettings
from koalr_runtime.auth import JwtAuthenticator
from koalr_runtime.db import create_pool
from koalr_runtime.edge import EdgeAPI, install_edge
from koalr_runtime.http import install_error_handlers, install_observability
from koalr_runtime.kafka import ensure_topics, make_broker, publish_events, wait_for_kafka
from koalr_runtime.logs import get_logger
from koalr_runtime.migrations import migrate

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: The built dashboard page (`make dashboard`), served at /dashboard/.
DASHBOARD = Path(__file__).resolve().parent / "dashboard"
CONSUMED_TOPICS = (topics.USAGE_RECORDS, topics.INTEGRATIONS, topics.SYNC_STATUS)

log = get_logger(__name__)


class Services:
    """The services the lifespan builds; subscribers registered before start look them up here."""

    def __init__(self) -> None:
        self._ingest: IngestService | None = None

    @property
    def ingest(self) -> IngestService:
        if self._ingest is None:
            raise RuntimeError("the metrics ingest is used before the app started")
        return self._ingest

    @ingest.setter
    def ingest(self, service: IngestService) -> None:
        self._ingest = service


def create_app(settings: MetricsSettings, *, broker: KafkaBroker | None = None) -> FastAPI:
    """The metrics service: query API plus the ingest and projection consumers.

    The lifespan applies migrations, opens the pool, creates the topics it reads and writes,
    then starts the broker (and so the consumers); on shutdown it stops them in reverse order.
    """
    broker = broker or make_broker(settings, client_id="metrics")
    services = Services()
    usage_consumer = register_subscribers(broker, settings, services)
    authenticator = JwtAuthenticator.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await migrate(settings.database_url, settings.db_schema, MIGRATIONS)
        pool = await create_pool(
            settings.database_url,
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
            command_timeout_s=settings.db_command_timeout_s,
            server_settings={"search_path": settings.db_schema},
            init=MetricsRepository.prepare_connection,
            reset=MetricsRepository.reset_connection,
        )
        decoder = create_decoder(settings.ingest_decode_workers)
        try:
            await decoder.start()
            repository = MetricsRepository(pool)
            services.ingest = IngestService(
                repository,
                decoder=decoder,
                usage_group=settings.group(settings.ingest_group),
                integrations_group=settings.group(settings.integrations_group),
                sync_status_group=settings.group(settings.sync_status_group),
                chunk_records=settings.ingest_chunk_records,
            )
            app.state.repository = repository
            app.state.ingest = services.ingest
            app.state.analytics = AnalyticsService(
                repository, summary_cache_entries=settings.summary_cache_entries
            )
            app.state.insights, app.state.alerts = _insights(settings, pool, repository, broker)
            app.state.people = PeopleService(PeopleRepository(pool), utc_today)
            erasures, retention = _privacy_jobs(app, PrivacyRepository(pool), settings, broker)
            produced = (topics.MEMBER_ERASURES, topics.DEAD_LETTERS, topics.ALERTS)
            await ensure_topics(
                settings.kafka_bootstrap_servers,
                [settings.topic(t) for t in (*CONSUMED_TOPICS, *produced)],
                partitions=settings.topic_partitions,
            )
            await broker.start()
            jobs = [erasures, retention]
            if settings.alerts_interval_s > 0:
                jobs.append(
                    PeriodicJob("alerts", app.state.alerts.run_once, settings.alerts_interval_s)
                )
            for job in jobs:
                job.start()
            log.info("metrics.started", schema=settings.db_schema)
            try:
                yield
            finally:
                for job in reversed(jobs):
                    await job.stop()
                await usage_consumer.close()
                await broker.stop()
        finally:
            await decoder.close()
            await pool.close()
            await authenticator.aclose()

    app = MetricsAPI(
        title="koalr-metrics",
        version="0.1.0",
        description="Role-filtered AI coding-assistant analytics (DAU, requests, models, spend).",
        lifespan=lifespan,
    )
    app.state.authenticator = authenticator
    app.state.broker = broker
    _install_http(app, settings)
    return app


def _install_http(app: FastAPI, settings: MetricsSettings) -> None:
    """Error shapes, the edge checks, health and metrics routes, the API and the page."""
    install_error_handlers(app)
    install_edge(app, settings)

    async def kafka_reachable() -> None:
        await wait_for_kafka(settings.kafka_bootstrap_servers, timeout_s=3)

    async def postgres_reachable() -> None:
        repository: MetricsRepository = app.state.repository
        await repository.ping()

    install_observability(
        app, "metrics", [("kafka", kafka_reachable), ("postgres", postgres_reachable)]
    )
    app.include_router(router)
    app.include_router(audit_router)
    app.include_router(people_router)
    app.mount(
        "/dashboard", StaticFiles(directory=DASHBOARD, html=True, check_dir=False), name="dashboard"
    )


def _insights(
    settings: MetricsSettings,
    pool: asyncpg.Pool[Any],
    repository: MetricsRepository,
    broker: KafkaBroker,
) -> tuple[InsightsService, AlertsPublisher]:
    """The insights service and the alerts outbox that publishes what it finds."""
    insights_repository = InsightsRepository(pool)
    insights = InsightsService(
        repository,
        insights_repository,
        AnomalyRule(settings.anomaly_mad_k, settings.anomaly_min_delta_cents),
    )
    alerts = AlertsPublisher(
        insights,
        insights_repository,
        kafka_publisher(broker, settings.topic(topics.ALERTS)),
        lookback_days=settings.alerts_lookback_days,
    )
    return insights, alerts


def _privacy_jobs(
    app: FastAPI, privacy: PrivacyRepository, settings: MetricsSettings, broker: KafkaBroker
) -> tuple[PeriodicJob, PeriodicJob]:
    """The erasure and retention jobs (started by the lifespan) and the erasure routes'
    service, which wakes the erasure job on each request."""

    async def announce(notice: ErasureNotice) -> None:
        await publish_events(
            broker, settings.topic(topics.MEMBER_ERASURES), member_erased_events(notice)
        )

    erasures = PeriodicJob(
        "erasure", lambda: run_pending_erasures(privacy, announce), settings.erasure_interval_s
    )
    retention = PeriodicJob(
        "retention",
        lambda: apply_retention(
            privacy, default_days=DEFAULT_RETENTION_DAYS, batch_days=settings.retention_batch_days
        ),
        settings.retention_interval_s,
    )
    app.state.privacy = privacy
    app.state.erasures = ErasureService(privacy, on_request=erasures.wake)
    return erasures, retention


class MetricsAPI(EdgeAPI):
    """The FastAPI app whose OpenAPI document declares the bearer JWT on every ``/v1`` route."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            schema = super().openapi()
            schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = (
                BEARER_SCHEME
            )
            for path, operations in schema.get("paths", {}).items():
                if path.startswith("/v1/"):
                    for operation in operations.values():
                        operation["security"] = [{"bearer": []}]
            self.openapi_schema = schema
        return self.openapi_schema
