"""Wiring of the syncer: one process runs the registry consumer, the job workers, the scheduler
loop and the HTTP health endpoints. :class:`SyncerRuntime` owns the pool, the broker, the HTTP
client and the background task; the FastAPI lifespan starts and stops it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from koalr_contracts import AnyEvent, Provider, topics
from koalr_runtime.db import create_pool, wait_for_postgres
from koalr_runtime.http import install_error_handlers, install_observability
from koalr_runtime.kafka import ensure_topics, make_broker, publish_events, wait_for_kafka
from koalr_runtime.logs import get_logger
from koalr_runtime.migrations import migrate
from koalr_runtime.sealing import Sealer
from koalr_syncer.handlers import register_handlers
from koalr_syncer.repository import (
    IntegrationRepository,
    MemberRepository,
    RunRepository,
    ScheduleRepository,
    StatusRepository,
)
from koalr_syncer.service import (
    Clock,
    Erasures,
    JobRunner,
    Publisher,
    Registry,
    Scheduler,
    StatusReporter,
    utc_now,
)
from koalr_syncer.service.readers import Readers
from koalr_syncer.settings import SyncerSettings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

log = get_logger(__name__)


class KafkaPublisher:
    """Publishes events keyed by integration id and waits for Kafka's acknowledgement."""

    def __init__(self, broker: KafkaBroker, settings: SyncerSettings) -> None:
        self._broker = broker
        self._settings = settings

    async def publish(self, topic: str, events: Sequence[AnyEvent]) -> None:
        await publish_events(self._broker, self._settings.topic(topic), events)


class SyncerRuntime:
    """Everything one syncer process runs; ``start()``/``stop()`` from a lifespan or a test.

    ``now`` is the one clock every date is computed from; ``transport`` carries the provider's
    HTTP calls (default: the network); ``wrap_publisher`` wraps what publishes on Kafka.
    """

    def __init__(
        self,
        settings: SyncerSettings,
        *,
        now: Clock = utc_now,
        transport: httpx.AsyncBaseTransport | None = None,
        wrap_publisher: Callable[[Publisher], Publisher] | None = None,
    ) -> None:
        self.settings = settings
        self.broker = make_broker(settings, client_id="syncer")
        register_handlers(self.broker, settings, self)
        self._now = now
        self._transport = transport
        self._wrap_publisher = wrap_publisher
        self._registry: Registry | None = None
        self._jobs: JobRunner | None = None
        self._erasures: Erasures | None = None
        self._scheduler: Scheduler | None = None
        self._pool: asyncpg.Pool[Any] | None = None
        self._http: dict[Provider, httpx.AsyncClient] = {}
        self._loop_task: asyncio.Task[None] | None = None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            raise RuntimeError("the syncer runtime is not started")
        return self._registry

    @property
    def jobs(self) -> JobRunner:
        if self._jobs is None:
            raise RuntimeError("the syncer runtime is not started")
        return self._jobs

    @property
    def erasures(self) -> Erasures:
        if self._erasures is None:
            raise RuntimeError("the syncer runtime is not started")
        return self._erasures

    @property
    def scheduler(self) -> Scheduler:
        if self._scheduler is None:
            raise RuntimeError("the syncer runtime is not started")
        return self._scheduler

    @property
    def running(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    async def start(self, *, run_scheduler: bool = True) -> None:
        settings = self.settings
        await migrate(settings.database_url, settings.db_schema, MIGRATIONS)
        self._pool = await create_pool(
            settings.database_url,
            min_size=1,
            max_size=settings.db_pool_size + settings.worker_concurrency,
            server_settings={"search_path": settings.db_schema},
        )
        await ensure_topics(
            settings.kafka_bootstrap_servers,
            [settings.topic(t) for t in topics.ALL_TOPICS],
            partitions=settings.topic_partitions,
        )
        base_urls: dict[Provider, str] = {
            "cursor": settings.cursor_api_base_url,
            "github_copilot": settings.github_api_base_url,
        }
        self._http = {
            provider: httpx.AsyncClient(
                base_url=base_url,
                timeout=httpx.Timeout(
                    settings.http_read_timeout_s, connect=settings.http_connect_timeout_s
                ),
                headers={"Accept": "application/json", "User-Agent": "koalr-syncer/0.1"},
                transport=self._transport,
            )
            for provider, base_url in base_urls.items()
        }
        publisher: Publisher = KafkaPublisher(self.broker, settings)
        if self._wrap_publisher is not None:
            publisher = self._wrap_publisher(publisher)
        sealer = Sealer.from_config(settings.sealing_keys.get_secret_value())
        integrations = IntegrationRepository(self._pool)
        status = StatusReporter(publisher, StatusRepository(self._pool))
        self._registry = Registry(
            settings=settings,
            integrations=integrations,
            publisher=publisher,
            status=status,
            sealer=sealer,
            now=self._now,
        )
        members = MemberRepository(self._pool)
        self._erasures = Erasures(members)
        self._jobs = JobRunner(
            settings=settings,
            integrations=integrations,
            runs=RunRepository(self._pool),
            readers=Readers(settings=settings, http=self._http, members=members),
            publisher=publisher,
            status=status,
            sealer=sealer,
            now=self._now,
        )
        self._scheduler = Scheduler(
            settings=settings,
            schedules=ScheduleRepository(self._pool),
            publisher=publisher,
            now=self._now,
        )
        await self.broker.start()
        if run_scheduler:
            self._loop_task = asyncio.create_task(self._schedule_forever(), name="syncer-scheduler")
        log.info(
            "syncer.started",
            worker_concurrency=settings.worker_concurrency,
            chunk_days=settings.chunk_days,
            incremental_interval_s=settings.incremental_interval_s,
        )

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        await self.broker.stop()
        for client in self._http.values():
            await client.aclose()
        self._http = {}
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _schedule_forever(self) -> None:
        scheduler = self.scheduler
        while True:
            try:
                await scheduler.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the loop survives any failure and retries
                log.warning("scheduler.tick_failed", error_type=type(exc).__name__, error=str(exc))
            await asyncio.sleep(self.settings.scheduler_poll_s)


def create_app(settings: SyncerSettings) -> FastAPI:
    runtime = SyncerRuntime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title="koalr-syncer", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)

    async def kafka_reachable() -> None:
        await wait_for_kafka(settings.kafka_bootstrap_servers, timeout_s=3)

    async def postgres_reachable() -> None:
        await wait_for_postgres(settings.database_url, timeout_s=3)

    async def worker_running() -> None:
        if not runtime.running:
            raise RuntimeError("the scheduler loop is not running")

    install_observability(
        app,
        "syncer",
        [("kafka", kafka_reachable), ("postgres", postgres_reachable), ("worker", worker_running)],
    )
    return app
