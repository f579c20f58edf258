"""Wiring of the connector service: HTTP app, and a lifespan owning the pool, the HTTP client to
the providers, the Kafka broker (started in the background) and the outbox relay."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI

from koalr_connector.copilot import CopilotValidator
from koalr_connector.handlers import (
    audit_router,
    install_error_handler,
    register_sync_status_subscriber,
    router,
)
from koalr_connector.kafka_link import BrokerSupervisor
from koalr_connector.outbox import KafkaPublisher, OutboxRelay
from koalr_connector.repository import Repository
from koalr_connector.service import ConnectorService
from koalr_connector.settings import ConnectorSettings
from koalr_contracts import topics
from koalr_providers.cursor import CursorPlanDetector
from koalr_providers.github import GitHubDetector
from koalr_runtime.auth import JwtAuthenticator
from koalr_runtime.db import create_pool, wait_for_postgres
from koalr_runtime.edge import EdgeAPI, install_edge
from koalr_runtime.http import install_error_handlers, install_observability
from koalr_runtime.kafka import make_broker, wait_for_kafka
from koalr_runtime.logs import get_logger
from koalr_runtime.migrations import migrate
from koalr_runtime.sealing import Sealer

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

log = get_logger(__name__)


def _log_if_crashed(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background_task.crashed", task=task.get_name(), exc_info=task.exception())


def create_app(settings: ConnectorSettings) -> FastAPI:
    authenticator = JwtAuthenticator.from_settings(settings)
    sealer = Sealer.from_config(settings.sealing_keys.get_secret_value())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await migrate(settings.database_url, settings.db_schema, MIGRATIONS)
        pool = await create_pool(settings.database_url)
        http = httpx.AsyncClient(
            base_url=settings.cursor_api_base_url,
            timeout=httpx.Timeout(settings.provider_timeout_s),
            headers={"Accept": "application/json", "User-Agent": "koalr-connector"},
        )
        github_http = httpx.AsyncClient(
            base_url=settings.github_api_base_url,
            timeout=httpx.Timeout(settings.provider_timeout_s),
            headers={"User-Agent": "koalr-connector"},
        )
        repository = Repository(pool, settings.db_schema)
        broker = make_broker(settings, client_id="koalr-connector")
        supervisor = BrokerSupervisor(
            broker,
            settings.kafka_bootstrap_servers,
            [
                settings.topic(name)
                for name in (
                    topics.INTEGRATIONS,
                    topics.SYNC_JOBS,
                    topics.SYNC_STATUS,
                    topics.DEAD_LETTERS,
                )
            ],
            partitions=settings.topic_partitions,
            retry_max_s=settings.kafka_start_retry_max_s,
        )
        relay = OutboxRelay(
            repository,
            KafkaPublisher(broker, settings.topic),
            ready=supervisor.started,
            interval_s=settings.outbox_relay_interval_s,
            batch_size=settings.outbox_batch_size,
            retry_initial_s=settings.outbox_retry_initial_s,
            retry_max_s=settings.outbox_retry_max_s,
            retention=timedelta(hours=settings.outbox_retention_h),
        )
        service = ConnectorService(
            repository,
            CursorPlanDetector(http, timeout_s=settings.provider_timeout_s),
            CopilotValidator(GitHubDetector(github_http, timeout_s=settings.provider_timeout_s)),
            sealer,
            backfill_days=settings.backfill_days,
            claim_ttl_s=settings.connect_claim_ttl_s,
            on_outbox_write=relay.wake,
        )
        register_sync_status_subscriber(broker, settings, service)
        app.state.service = service
        app.state.repository = repository
        app.state.relay = relay
        app.state.kafka = supervisor
        supervisor.start_in_background()
        relay_task = asyncio.create_task(relay.run(), name="connector-outbox-relay")
        relay_task.add_done_callback(_log_if_crashed)
        try:
            yield
        finally:
            relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay_task
            await supervisor.stop()
            await http.aclose()
            await github_http.aclose()
            await pool.close()
            await authenticator.aclose()

    app = EdgeAPI(
        title="koalr-connector",
        version="0.1.0",
        description="Connects AI coding-assistant providers to an organisation.",
        lifespan=lifespan,
    )
    app.state.authenticator = authenticator
    install_error_handlers(app)
    install_error_handler(app)
    install_edge(app, settings)
    app.include_router(router)
    app.include_router(audit_router)

    async def kafka_reachable() -> None:
        await wait_for_kafka(settings.kafka_bootstrap_servers, timeout_s=3)

    async def postgres_reachable() -> None:
        await wait_for_postgres(settings.database_url, timeout_s=3)

    install_observability(
        app, "connector", [("kafka", kafka_reachable), ("postgres", postgres_reachable)]
    )
    return app
