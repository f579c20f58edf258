"""Wiring of the metrics service: HTTP app, lifespan owning the pool and the broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from koalr_metrics.settings import MetricsSettings
from koalr_runtime.db import create_pool, wait_for_postgres
from koalr_runtime.http import install_error_handlers, install_observability
from koalr_runtime.kafka import wait_for_kafka
from koalr_runtime.migrations import migrate

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def create_app(settings: MetricsSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await migrate(settings.database_url, settings.db_schema, MIGRATIONS)
        app.state.pool = await create_pool(settings.database_url)
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(title="koalr-metrics", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)

    async def kafka_reachable() -> None:
        await wait_for_kafka(settings.kafka_bootstrap_servers, timeout_s=3)

    async def postgres_reachable() -> None:
        await wait_for_postgres(settings.database_url, timeout_s=3)

    install_observability(
        app, "metrics", [("kafka", kafka_reachable), ("postgres", postgres_reachable)]
    )
    return app
