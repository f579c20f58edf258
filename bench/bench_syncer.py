"""Syncer benchmarks against the sandbox, with real Kafka, PostgreSQL and worker processes.

(a) UsageRecords produced per second for a large team, the sandbox's rate limits lifted.
(b) Pacing efficiency over a backfill that waits through at least five rate windows (Cursor's
    limits scaled to a 9 s window): the shortest time the limits allow for its calls, divided by
    the time it took; and the 429s it received.
(c) Two worker processes against one, over many teams with injected latency.

Needs ``KAFKA_BOOTSTRAP_SERVERS`` and ``DATABASE_URL`` (``make bench`` sets both). Each scenario
gets its own topic namespace and database. The sandbox runs as its own process, like the workers,
so none of them shares an interpreter. Run alone with ``uv run python -m bench syncer``.
"""

from __future__ import annotations

import asyncio
import math
import os
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import murmur2

from bench.common import Measurement
from koalr_contracts import IntegrationConnected, SyncStatusChanged, decode_event, topics
from koalr_devstack.databases import scratch_database
from koalr_devstack.kafka import wait_for_group
from koalr_devstack.processes import ServiceProcess, free_port
from koalr_runtime.kafka import ensure_topics, make_broker, publish_event
from koalr_runtime.sealing import Sealer, generate_key_entry
from koalr_runtime.settings import (
    DEFAULT_DATABASE_URL,
    DEFAULT_KAFKA_BOOTSTRAP_SERVERS,
    ServiceSettings,
)

BENCHMARK = "syncer"
ORG = "org_bench"
PARTITIONS = 6
WINDOW_S = 9.0
LIMITS = {"default": 3, "usage_events": 9}
MIN_WINDOWS = 5
READY_TIMEOUT_S = 60.0
LOGS = Path(os.environ.get("BENCH_LOG_DIR") or tempfile.gettempdir()) / "koalr-bench-syncer"


def _infra() -> tuple[str, str]:
    return (
        os.environ.get("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_KAFKA_BOOTSTRAP_SERVERS),
        os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL),
    )


@asynccontextmanager
async def sandbox_process() -> AsyncIterator[str]:
    port = free_port()
    process = ServiceProcess(
        name="sandbox",
        module="koalr_sandbox",
        args=[],
        env={"SANDBOX_PORT": str(port), "SANDBOX_LOG_LEVEL": "warning"},
        port=port,
        log_dir=LOGS,
        ready_path="/healthz",
    )
    process.start()
    try:
        await process.wait_ready_async(READY_TIMEOUT_S)
        yield process.base_url
    finally:
        process.stop()


@dataclass
class Scenario:
    """One namespace and one database, with its worker processes."""

    namespace: str
    database_url: str
    keys: str
    sandbox_url: str
    kafka: str

    @property
    def settings(self) -> ServiceSettings:
        return ServiceSettings(
            kafka_bootstrap_servers=self.kafka,
            database_url=self.database_url,
            topic_namespace=self.namespace,
            topic_partitions=PARTITIONS,
        )

    def worker_env(self, port: int, extra: dict[str, str]) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka,
            "DATABASE_URL": self.database_url,
            "KOALR_TOPIC_NAMESPACE": self.namespace,
            "KOALR_TOPIC_PARTITIONS": str(PARTITIONS),
            "KOALR_SEALING_KEYS": self.keys,
            "CURSOR_API_BASE_URL": self.sandbox_url,
            "LOG_LEVEL": "WARNING",
            "LOG_FORMAT": "json",
            "SYNCER_PORT": str(port),
            **extra,
        }

    async def start_workers(self, count: int, extra: dict[str, str]) -> list[ServiceProcess]:
        workers = []
        for i in range(count):
            port = free_port()
            worker = ServiceProcess(
                name=f"{self.namespace}-worker-{i}",
                module="koalr_syncer",
                args=["serve"],
                env=self.worker_env(port, extra),
                port=port,
                log_dir=LOGS,
                drop_env_prefixes=("SYNCER_",),
            )
            worker.start()
            workers.append(worker)
        for worker in workers:
            await worker.wait_ready_async(READY_TIMEOUT_S)
        consumers = count * int(extra.get("SYNCER_WORKER_CONCURRENCY", "3"))
        groups = {"syncer-workers": consumers, "syncer-registry": count}
        for group, members in groups.items():
            await wait_for_group(self.kafka, f"{self.namespace}.{group}", members, READY_TIMEOUT_S)
        return workers


@asynccontextmanager
async def scenario(sandbox_url: str) -> AsyncIterator[Scenario]:
    kafka, base_dsn = _infra()
    async with scratch_database(base_dsn, prefix="bench") as dsn:
        yield Scenario(
            namespace=f"bench{uuid.uuid4().hex[:10]}",
            database_url=dsn,
            keys=generate_key_entry("bench"),
            sandbox_url=sandbox_url,
            kafka=kafka,
        )


def _integration_id(partition: int, taken: set[uuid.UUID]) -> uuid.UUID:
    """An id whose key lands on ``partition``, so the teams spread evenly over partitions."""
    while True:
        candidate = uuid.uuid4()
        index = (murmur2(str(candidate).encode()) & 0x7FFFFFFF) % PARTITIONS
        if index == partition and candidate not in taken:
            taken.add(candidate)
            return candidate


async def _create_team(http: httpx.AsyncClient, **spec: Any) -> tuple[str, str]:
    body = {"plan": "enterprise", "days": 40, "visibility_delay_s": 0} | spec
    response = await http.post("/_sandbox/teams", json=body)
    response.raise_for_status()
    created = response.json()
    return created["team_id"], created["api_key"]


async def _backfill(
    run: Scenario, teams: Sequence[tuple[str, str]], ids: Sequence[uuid.UUID]
) -> float:
    """Connect every team and wait until each integration reports idle; returns the seconds."""
    settings = run.settings
    status_topic = settings.topic(topics.SYNC_STATUS)
    await ensure_topics(run.kafka, [status_topic], partitions=PARTITIONS)
    consumer = AIOKafkaConsumer(
        status_topic, bootstrap_servers=run.kafka, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    sealer = Sealer.from_config(run.keys)
    events = [
        IntegrationConnected(
            org_id=ORG,
            integration_id=integration_id,
            provider="cursor",
            external_id=team_id,
            plan="enterprise",
            sealed_credential=sealer.seal(api_key, context=str(integration_id)),
            backfill_days=30,
        )
        for (team_id, api_key), integration_id in zip(teams, ids, strict=True)
    ]
    broker = make_broker(settings, client_id="bench")
    try:
        async with broker:
            await broker.start()
            started = time.perf_counter()
            for event in events:
                await publish_event(broker, settings.topic(topics.INTEGRATIONS), event)
        waiting = set(ids)
        deadline = time.monotonic() + 900
        while waiting:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(waiting)} backfills did not finish; see {LOGS}")
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    status = decode_event(record.topic, record.value)
                    if isinstance(status, SyncStatusChanged):
                        if status.state == "error":
                            raise RuntimeError(
                                f"sync failed: {status.reason_code} {status.message}"
                            )
                        if status.state == "idle":
                            waiting.discard(status.integration_id)
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def _records_published(workers: Sequence[ServiceProcess]) -> float:
    return sum([await w.metric_total("koalr_syncer_usage_records_total") for w in workers])


async def throughput(sandbox_url: str) -> list[Measurement]:
    members = 500
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=120) as http:
        team = await _create_team(http, members=members, seed=41, rate_limits_enabled=False)
        today = datetime.now(UTC).date()
        truth = (
            await http.get(
                f"/_sandbox/teams/{team[0]}/truth",
                params={"start": (today - timedelta(days=29)).isoformat(), "end": str(today)},
            )
        ).json()
    events = sum(day["requests"] for day in truth["days"])
    lifted = {
        "SYNCER_RATE_LIMIT_DEFAULT": "1000000",
        "SYNCER_RATE_LIMIT_USAGE_EVENTS": "1000000",
        "SYNCER_RATE_LIMIT_ANALYTICS": "1000000",
    }
    async with scenario(sandbox_url) as run:
        workers = await run.start_workers(1, lifted)
        try:
            seconds = await _backfill(run, [team], [uuid.uuid4()])
            records = await _records_published(workers)
        finally:
            for worker in workers:
                worker.stop()
    rate = records / seconds
    return [
        Measurement(
            BENCHMARK,
            f"(a) records/s, {members}-member team, 30-day backfill, limits lifted",
            rate,
            "records/s",
            notes=(
                f"{records:.0f} UsageRecords and {events} usage events ({events / seconds:,.0f} "
                f"events/s) in {seconds:.1f} s; one worker process, its own pacing lifted too"
            ),
        )
    ]


async def pacing(sandbox_url: str) -> list[Measurement]:
    """A backfill that has to wait through at least five rate windows, limits scaled down.

    Cursor's limits (20 admin and 60 usage-event calls per rolling 60 s) are scaled to the same
    rates over a 9 s window (3 and 9 calls), on the sandbox and in the syncer alike, so many
    windows fit in well under a minute.
    """
    members = 100  # about 48 usage-event pages for 30 days: 5 full windows of 9 calls
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=120) as http:
        team_id, api_key = await _create_team(
            http,
            members=members,
            seed=43,
            rate_limits_enabled=True,
            rate_window_s=WINDOW_S,
            rate_limits=LIMITS,
        )
        paced = {
            "SYNCER_RATE_WINDOW_S": str(WINDOW_S),
            "SYNCER_RATE_LIMIT_DEFAULT": str(LIMITS["default"]),
            "SYNCER_RATE_LIMIT_USAGE_EVENTS": str(LIMITS["usage_events"]),
        }
        async with scenario(sandbox_url) as run:
            workers = await run.start_workers(1, paced)
            try:
                seconds = await _backfill(run, [(team_id, api_key)], [uuid.uuid4()])
            finally:
                for worker in workers:
                    worker.stop()
        log = (await http.get(f"/_sandbox/teams/{team_id}/requests")).json()["requests"]
    calls = Counter(
        "usage_events" if r["path"] == "/teams/filtered-usage-events" else "default" for r in log
    )
    throttled = sum(1 for r in log if r["status"] == 429)
    windows = max(math.ceil(n / LIMITS[bucket]) - 1 for bucket, n in calls.items())
    shortest = windows * WINDOW_S
    efficiency = shortest / seconds
    long_enough = windows >= MIN_WINDOWS
    summary = ", ".join(f"{n} {bucket}" for bucket, n in sorted(calls.items()))
    return [
        Measurement(
            BENCHMARK,
            "pacing efficiency, backfill of at least 5 rate windows",
            efficiency,
            "ratio",
            target=">= 0.95",
            meets_target=efficiency >= 0.95 and long_enough,
            notes=(
                f"{members}-member team, 30-day backfill in {seconds:.1f} s, shortest allowed "
                f"{shortest:.0f} s ({windows} full windows); calls: {summary}; limits "
                f"{LIMITS['default']} admin and {LIMITS['usage_events']} usage-event calls per "
                f"rolling {WINDOW_S:g} s (Cursor's per-minute limits scaled to the window, same rates); "
                f"shortest = (ceil(calls/limit)-1)*window over the busiest bucket"
            ),
        ),
        Measurement(
            BENCHMARK,
            "429s received during the long backfill",
            throttled,
            "responses",
            target="0",
            meets_target=throttled == 0,
            notes="sandbox sends Retry-After on half of its 429s",
        ),
    ]


async def scaling(sandbox_url: str) -> list[Measurement]:
    teams_count = 12
    latency_ms = 400
    concurrency = 3
    timings: dict[int, float] = {}
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=120) as http:
        for workers_count in (1, 2):
            teams = [
                await _create_team(
                    http,
                    members=10,
                    seed=200 + i,
                    rate_limits_enabled=False,
                    latency_ms=latency_ms,
                )
                for i in range(teams_count)
            ]
            taken: set[uuid.UUID] = set()
            ids = [_integration_id(i % PARTITIONS, taken) for i in range(teams_count)]
            async with scenario(sandbox_url) as run:
                extra = {"SYNCER_WORKER_CONCURRENCY": str(concurrency)}
                workers = await run.start_workers(workers_count, extra)
                try:
                    timings[workers_count] = await _backfill(run, teams, ids)
                finally:
                    for worker in workers:
                        worker.stop()
    speedup = timings[1] / timings[2]
    return [
        Measurement(
            BENCHMARK,
            f"(c) speed-up of 2 workers over 1, {teams_count} teams, {latency_ms} ms latency",
            speedup,
            "x",
            target=">= 1.7",
            meets_target=speedup >= 1.7,
            notes=(
                f"1 worker {timings[1]:.1f} s, 2 workers {timings[2]:.1f} s; "
                f"{concurrency} consumers per worker, {PARTITIONS} partitions, teams spread "
                "evenly over partitions; 30-day backfills of 10-member teams"
            ),
        )
    ]


async def _run_all() -> list[Measurement]:
    results: list[Measurement] = []
    async with sandbox_process() as sandbox_url:
        for part in (throughput, scaling, pacing):
            print(f"[bench] syncer: {part.__name__}", flush=True)
            results.extend(await part(sandbox_url))
    return results


def run() -> list[Measurement]:
    return asyncio.run(_run_all())


if __name__ == "__main__":
    from bench.common import report

    report(run())
