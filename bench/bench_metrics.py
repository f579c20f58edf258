"""Metrics service benchmarks.

(a) Ingest: usage records already on Kafka -> committed PostgreSQL rows (member days, models,
    both rollups), through the real service (FastStream batch consumer, decode and validation,
    COPY into staging, upsert, rollups, offset commit), beside a raw ``COPY`` of the very same
    rows into the same tables in the same run.
(b) Summary: p50/p99 latency and requests per second of ``GET .../ai-analytics/summary`` with 20
    concurrent keep-alive clients against the service running as its own process (uvicorn), over
    a database of 2,000 integrations x 50 members x 90 days (generated in SQL).

Reads ``KAFKA_BOOTSTRAP_SERVERS`` and ``DATABASE_URL``; creates its own database and topic
namespace and drops the database at the end. ``BENCH_METRICS_PARTS=ingest`` (or ``summary``)
runs one part only; ``BENCH_METRICS_DATABASE=name`` keeps the database under that name and
reuses its generated summary data (to measure two revisions on the very same data); ``BENCH_METRICS_EXPLAIN=1`` prints the summary queries' plans at full size;
``METRICS_*`` settings in the environment reach the service under test.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg
import jwt
import psutil
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError
from pydantic import SecretStr

from bench.common import Measurement, _git_revision, cpu_seconds
from koalr_contracts import ModelUsage, UsageRecord, encode_event, topics
from koalr_devstack.processes import free_port
from koalr_metrics import repository
from koalr_metrics.__main__ import MIGRATIONS
from koalr_metrics.analytics import DEFAULT_POLICY, DayRange
from koalr_metrics.ingest import UsageRows, usage_rows
from koalr_metrics.repository import _PROVIDERS, MEMBER_DAY_COLUMNS, MODEL_COLUMNS
from koalr_metrics.settings import MetricsSettings
from koalr_runtime.kafka import ensure_topics, make_broker
from koalr_runtime.migrations import migrate

BENCH = "metrics"
INGEST_INTEGRATIONS = 200
INGEST_MEMBERS = 50
INGEST_DAYS = 10  # 200 x 50 x 10 = 100,000 records
MODELS = ("claude-4.5-sonnet", "gpt-5", "o3", "cursor-small", "gemini-2.5-pro")
SUMMARY_INTEGRATIONS = 2_000
SUMMARY_MEMBERS = 50
SUMMARY_DAYS = 90
CLIENTS = 20
WARMUP_S = 2.0
MEASURE_S = 15.0
MAX_REQUESTS_PER_CLIENT = 20_000
JWT_SECRET = "bench-secret-bench-secret-bench-secret-0123"  # noqa: S105 - local benchmark only
ROOT = Path(__file__).resolve().parents[1]


def run() -> list[Measurement]:
    return asyncio.run(_run())


def _database_url(base: str, name: str) -> str:
    return f"{base.rpartition('/')[0]}/{name}"


async def _run() -> list[Measurement]:
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    base_url = os.environ.get("DATABASE_URL", "postgresql://koalr:koalr@127.0.0.1:55432/koalr")
    shared = os.environ.get("BENCH_METRICS_DATABASE")
    name = shared or f"bench_metrics_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(base_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    except asyncpg.DuplicateDatabaseError:
        if not shared:
            raise
    finally:
        await admin.close()
    settings = MetricsSettings(
        kafka_bootstrap_servers=kafka,
        database_url=_database_url(base_url, name),
        topic_namespace=f"bench{uuid.uuid4().hex[:8]}",
        jwt_secret=SecretStr(JWT_SECRET),
        log_level="WARNING",
    )
    parts = os.environ.get("BENCH_METRICS_PARTS", "ingest,summary").split(",")
    measurements: list[Measurement] = []
    try:
        if "ingest" in parts:
            measurements += await _ingest(settings)
        if "summary" in parts:
            measurements += await _summary(settings)
    finally:
        if not shared:
            await _drop_database(base_url, name)
    return measurements


async def _drop_database(base_url: str, name: str) -> None:
    """Drop the bench database. A plain DROP ends autovacuum workers busy with the fresh rows
    (``WITH (FORCE)`` may not: they are not ours to terminate); FORCE is the fallback for a
    session of ours still closing."""
    admin = await asyncpg.connect(base_url)
    try:
        for attempt in range(10):
            try:
                if attempt % 2 == 0:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
                else:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except (asyncpg.ObjectInUseError, asyncpg.InsufficientPrivilegeError):
                await asyncio.sleep(1)
            else:
                return
        raise RuntimeError(f"could not drop the bench database {name}; drop it by hand")
    finally:
        await admin.close()


# --- (a) ingest -------------------------------------------------------------------------------


def _records() -> list[UsageRecord]:
    rng = random.Random(11)
    fetched_at = datetime.now(UTC) - timedelta(hours=1)
    today = fetched_at.date()
    records = []
    for i in range(INGEST_INTEGRATIONS):
        integration = uuid.UUID(int=i + 1)
        for d in range(INGEST_DAYS):
            day = today - timedelta(days=d + 1)
            for m in range(INGEST_MEMBERS):
                count = rng.randint(0, 4)
                models = tuple(
                    ModelUsage(
                        model=name,
                        requests=rng.randint(1, 60),
                        charged_cents=Decimal(rng.randint(0, 250_000)) / 1000,
                    )
                    for name in rng.sample(MODELS, count)
                )
                records.append(
                    UsageRecord(
                        org_id=f"org-{i}",
                        integration_id=integration,
                        provider="cursor",
                        day=day,
                        member={"email": f"dev{m}@team{i}.example", "name": f"Dev {m}"},  # type: ignore[arg-type]
                        is_active=count > 0,
                        requests=sum(x.requests for x in models),
                        models=models,
                        charged_cents=sum((x.charged_cents for x in models), Decimal(0)),
                        fetched_at=fetched_at,
                    )
                )
    return records


async def _produce(settings: MetricsSettings, records: list[UsageRecord]) -> float:
    topic = settings.topic(topics.USAGE_RECORDS)
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        [
            settings.topic(t)
            for t in (
                topics.USAGE_RECORDS,
                topics.INTEGRATIONS,
                topics.SYNC_STATUS,
                topics.DEAD_LETTERS,
            )
        ],
        partitions=settings.topic_partitions,
    )
    payloads = [(encode_event(r), r.kafka_key()) for r in records]
    broker = make_broker(settings, client_id="bench-producer")
    started = time.perf_counter()
    async with broker:
        await broker.start()
        futures = [
            await broker.publish(value, topic, key=key, no_confirm=True) for value, key in payloads
        ]
        await asyncio.gather(*futures)
    return len(records) / (time.perf_counter() - started)


async def _committed(admin: AIOKafkaAdminClient, group: str) -> int:
    """Offsets the ingest group committed so far (0 while the broker has no coordinator for it
    yet: the group forms when the service's consumer joins)."""
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except GroupCoordinatorNotAvailableError:
        return 0
    return sum(meta.offset for meta in offsets.values() if meta.offset > 0)


Totals: TypeAlias = tuple[int, int, int, int, Decimal, int, int, Decimal]


def _truth(rows: UsageRows) -> Totals:
    """(member days, active, requests, model rows, cents) of the generated records, and the same
    totals (member days, requests, cents) the daily rollups must hold."""
    requests = sum(r[6] for r in rows.member_days)
    cents = sum((r[7] for r in rows.member_days), Decimal(0))
    active = sum(1 for r in rows.member_days if r[5])
    total = len(rows.member_days)
    return (total, active, requests, len(rows.models), cents, total, requests, cents)


async def _stored_totals(conn: asyncpg.Connection[Any]) -> Totals:
    """The same totals as :func:`_truth`, read from the member rows and the daily rollups."""
    days = await conn.fetchrow(
        "SELECT count(*) AS n, count(*) FILTER (WHERE is_active) AS active,"
        " coalesce(sum(requests), 0) AS requests, coalesce(sum(charged_cents), 0) AS cents"
        " FROM metrics.member_days"
    )
    models = await conn.fetchval("SELECT count(*) FROM metrics.member_day_models")
    rollups = await conn.fetchrow(
        "SELECT coalesce(sum(member_days), 0) AS n, coalesce(sum(requests), 0) AS requests,"
        " coalesce(sum(charged_cents), 0) AS cents FROM metrics.daily_rollups"
    )
    assert days is not None
    assert rollups is not None
    return (
        days["n"],
        days["active"],
        days["requests"],
        models,
        days["cents"],
        rollups["n"],
        rollups["requests"],
        rollups["cents"],
    )


async def _ingest(settings: MetricsSettings) -> list[Measurement]:
    print("[bench] metrics: generating and producing ingest records", flush=True)
    records = _records()
    total = len(records)
    produce_rate = await _produce(settings, records)
    rows = usage_rows(records)
    del records
    model_rows = len(rows.models)
    truth = _truth(rows)

    load_before = os.getloadavg()[0]
    port = free_port()
    process = _start_server(settings, port)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    group = settings.group(settings.ingest_group)
    try:
        started = time.perf_counter()
        deadline = time.monotonic() + 600
        first_count = 0
        while first_count == 0 and time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError("the metrics server exited")
            first_count = await _committed(admin, group)
            await asyncio.sleep(0.01)
        first_at = time.perf_counter()
        cpu_first = cpu_seconds(process.pid)
        workers_first = _children_cpu_seconds(process.pid)
        done = first_count
        while done < total and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            done = await _committed(admin, group)
        done_at = time.perf_counter()
        service_cpu = (cpu_seconds(process.pid) - cpu_first) / (done_at - first_at)
        workers_cpu = (_children_cpu_seconds(process.pid) - workers_first) / (done_at - first_at)
    finally:
        await admin.close()
        _stop_server(process)
    if done < total:
        raise RuntimeError(f"ingest stalled at {done} of {total} records")
    ingest_rate = (total - first_count) / (done_at - first_at)
    end_to_end_rate = total / (done_at - started)

    conn = await asyncpg.connect(settings.database_url)
    try:
        stored = await _stored_totals(conn)
        if stored != truth:
            raise RuntimeError(f"stored {stored}, expected {truth}")
        await conn.execute("TRUNCATE metrics.member_days, metrics.member_day_models")
        copy_started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table(
                "member_days",
                schema_name="metrics",
                records=rows.member_days,
                columns=MEMBER_DAY_COLUMNS,
            )
            await conn.copy_records_to_table(
                "member_day_models",
                schema_name="metrics",
                records=rows.models,
                columns=MODEL_COLUMNS,
            )
        copy_rate = total / (time.perf_counter() - copy_started)
    finally:
        await conn.close()

    meets = ingest_rate / copy_rate >= 0.5
    note = (
        f"{total} records ({model_rows} model rows; member rows, models and rollups "
        "equal to the generated totals), batches of "
        f"{settings.ingest_max_records} in chunks of {settings.ingest_chunk_records}, "
        f"{settings.topic_partitions} partitions; "
        f"end-to-end incl. service start {end_to_end_rate:,.0f}/s; "
        f"produce {produce_rate:,.0f}/s; service in its own process, busy {service_cpu:.0%} "
        f"of one core while ingesting, its {settings.ingest_decode_workers} decoding "
        f"worker(s) {workers_cpu:.0%}; "
        f"{(service_cpu + workers_cpu) / ingest_rate * 1e6:.0f} µs of their CPU per record; "
        f"load average {load_before:.2f} before the run; "
        f"revision {_git_revision()}"
    )
    return [
        Measurement(
            BENCH,
            "ingest records/s (Kafka -> committed rows + rollups)",
            ingest_rate,
            "records/s",
            baseline_metric="raw COPY",
            baseline_value=copy_rate,
            target="ratio >= 0.5",
            meets_target=meets,
            notes=note,
        ),
        Measurement(
            BENCH,
            "raw COPY of the same rows",
            copy_rate,
            "records/s",
            notes="member_days + member_day_models, one transaction, no upsert or rollups",
        ),
    ]


# --- (b) summary ------------------------------------------------------------------------------

_GENERATE = [
    (
        "TRUNCATE metrics.integrations, metrics.member_days, metrics.member_day_models, "
        "metrics.daily_rollups, metrics.daily_model_rollups, metrics.sync_status"
    ),
    f"""
    INSERT INTO metrics.integrations
        (integration_id, org_id, provider, external_id, status, connected_at)
    SELECT md5('integration-' || i)::uuid, 'org-' || (i / 2),
           CASE WHEN i % 2 = 0 THEN 'cursor' ELSE 'github_copilot' END,
           'team-' || i, 'connected', now()
    FROM generate_series(0, {SUMMARY_INTEGRATIONS - 1}) AS i
    """,  # noqa: S608 - constants only
    f"""
    INSERT INTO metrics.member_days
        (integration_id, day, member_key, email, name, is_active, requests, charged_cents,
         fetched_at)
    SELECT i.integration_id, current_date - d, 'dev' || m || '@' || i.external_id || '.example',
           'dev' || m || '@' || i.external_id || '.example', 'Dev ' || m,
           (m + d) % 7 <> 0,
           CASE WHEN (m + d) % 7 = 0 THEN 0 ELSE 1 + (m * 13 + d * 7) % 90 END,
           CASE WHEN (m + d) % 7 = 0 THEN 0 ELSE ((m * 37 + d * 11) % 5000) / 100.0 END,
           now()
    FROM metrics.integrations i
    CROSS JOIN generate_series(0, {SUMMARY_DAYS - 1}) AS d
    CROSS JOIN generate_series(0, {SUMMARY_MEMBERS - 1}) AS m
    ORDER BY 1, 2, 3
    """,  # noqa: S608 - constants only
    """
    INSERT INTO metrics.member_day_models
        (integration_id, day, member_key, model, requests, charged_cents)
    SELECT md.integration_id, md.day, md.member_key,
           (ARRAY['claude-4.5-sonnet', 'gpt-5', 'o3'])[1 + (md.requests + k) % 3],
           CASE WHEN k = 0 THEN md.requests - md.requests / 3 ELSE md.requests / 3 END,
           CASE WHEN k = 0 THEN md.charged_cents - round(md.charged_cents / 3, 2)
                ELSE round(md.charged_cents / 3, 2) END
    FROM metrics.member_days md CROSS JOIN generate_series(0, 1) AS k
    WHERE md.requests > 0
    ORDER BY 1, 2, 3, 4
    """,
    """
    INSERT INTO metrics.daily_rollups
        (integration_id, day, member_days, active_users, requests, charged_cents)
    SELECT integration_id, day, count(*), count(*) FILTER (WHERE is_active), sum(requests),
           sum(charged_cents)
    FROM metrics.member_days GROUP BY integration_id, day
    """,
    """
    INSERT INTO metrics.daily_model_rollups (integration_id, day, model, requests, charged_cents)
    SELECT integration_id, day, model, sum(requests), sum(charged_cents)
    FROM metrics.member_day_models GROUP BY integration_id, day, model
    """,
    """
    INSERT INTO metrics.sync_status
        (integration_id, state, data_through, last_success_at)
    SELECT integration_id, 'idle', current_date - 1, now() FROM metrics.integrations
    """,
    "ANALYZE",
]


async def _generated_before(dsn: str) -> int | None:
    """The member days of a database an earlier run generated and kept, else None."""
    conn = await asyncpg.connect(dsn)
    try:
        integrations = await conn.fetchval("SELECT count(*) FROM metrics.integrations")
        if integrations != SUMMARY_INTEGRATIONS:
            return None
        count: int = await conn.fetchval("SELECT count(*) FROM metrics.member_days")
        return count if count == SUMMARY_INTEGRATIONS * SUMMARY_MEMBERS * SUMMARY_DAYS else None
    finally:
        await conn.close()


async def generate_in_sql(dsn: str, statements: Sequence[str]) -> tuple[int, float]:
    """Run ``statements`` (which generate member days in SQL); the member days in the database
    and the seconds it took."""
    conn = await asyncpg.connect(dsn)
    started = time.perf_counter()
    try:
        for statement in statements:
            await conn.execute(statement)
        member_days = int(await conn.fetchval("SELECT count(*) FROM metrics.member_days"))
    finally:
        await conn.close()
    return member_days, time.perf_counter() - started


class _Client:
    """A minimal HTTP/1.1 keep-alive client: the load generator must cost less than the server."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, token: str) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self._port)
        assert self._reader is not None
        request = f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\r\n"
        self._writer.write(request.encode())
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await self._reader.readexactly(length)
        return status, body

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()


def _start_server(settings: MetricsSettings, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DATABASE_URL": settings.database_url,
        "KOALR_TOPIC_NAMESPACE": settings.topic_namespace,
        "KOALR_JWT_SECRET": JWT_SECRET,
        "METRICS_PORT": str(port),
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen([sys.executable, "-m", "koalr_metrics", "serve"], env=env, cwd=ROOT)


def _children_cpu_seconds(pid: int) -> float:
    """CPU time of the service's child processes (its decoding workers)."""
    total = 0.0
    for child in psutil.Process(pid).children(recursive=True):
        try:
            total += cpu_seconds(child.pid)
        except psutil.NoSuchProcess:
            continue
    return total


def _stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


async def _wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the metrics server exited during start-up")
        try:
            client = _Client(port)
            status, _ = await client.get("/readyz", "none")
            await client.close()
            if status == 200:
                return
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("the metrics server was not ready within 60 s")


async def _load(port: int) -> tuple[list[float], int, float]:
    orgs = SUMMARY_INTEGRATIONS // 2
    exp = datetime.now(UTC) + timedelta(hours=1)
    tokens = {
        (org, role): jwt.encode(
            {"sub": "bench", "org_id": f"org-{org}", "role": role, "exp": exp},
            JWT_SECRET,
            algorithm="HS256",
        )
        for org in range(orgs)
        for role in ("admin", "member")
    }
    latencies: list[float] = []
    errors = 0
    measuring = False

    async def client_loop(seed: int, stop_at: float) -> None:
        nonlocal errors
        rng = random.Random(seed)
        client = _Client(port)
        try:
            for _ in range(MAX_REQUESTS_PER_CLIENT):
                if time.monotonic() >= stop_at:
                    break
                org = rng.randrange(orgs)
                role = "admin" if rng.random() < 0.5 else "member"
                path = f"/v1/orgs/org-{org}/ai-analytics/summary?days=30"
                started = time.perf_counter()
                status, body = await client.get(path, tokens[(org, role)])
                elapsed = time.perf_counter() - started
                if status != 200 or b'"providers":[{' not in body:
                    errors += 1
                if measuring:
                    latencies.append(elapsed)
        finally:
            await client.close()

    warm_until = time.monotonic() + WARMUP_S
    await asyncio.gather(*(client_loop(i, warm_until) for i in range(CLIENTS)))
    measuring = True
    started = time.perf_counter()
    stop_at = time.monotonic() + MEASURE_S
    await asyncio.gather(*(client_loop(100 + i, stop_at) for i in range(CLIENTS)))
    return latencies, errors, time.perf_counter() - started


async def _check_summaries(port: int, dsn: str) -> int:
    """Compare the admin summaries of a few orgs with the member rows summed in SQL (requests
    and active members per day, charged cents over the range); returns the orgs checked."""
    orgs = (0, 7, SUMMARY_INTEGRATIONS // 2 - 1)
    day_range = DayRange.ending(datetime.now(UTC).date(), 30)
    exp = datetime.now(UTC) + timedelta(hours=1)
    client = _Client(port)
    conn = await asyncpg.connect(dsn)
    try:
        for org in orgs:
            org_id = f"org-{org}"
            token = jwt.encode(
                {"sub": "bench", "org_id": org_id, "role": "admin", "exp": exp},
                JWT_SECRET,
                algorithm="HS256",
            )
            status, body = await client.get(
                f"/v1/orgs/{org_id}/ai-analytics/summary?days=30", token
            )
            if status != 200:
                raise RuntimeError(f"summary of {org_id}: HTTP {status}")
            document = json.loads(body, parse_float=Decimal)
            for entry in document["providers"]:
                rows = await conn.fetch(
                    "SELECT day, count(*) FILTER (WHERE is_active) AS active,"
                    " sum(requests) AS requests, sum(charged_cents) AS cents"
                    " FROM metrics.member_days WHERE integration_id = $1"
                    " AND day BETWEEN $2 AND $3 GROUP BY day",
                    uuid.UUID(entry["integration_id"]),
                    day_range.start,
                    day_range.end,
                )
                truth = {
                    r["day"].isoformat(): (r["active"], r["requests"])
                    for r in rows
                    if r["active"] or r["requests"]
                }
                served = {
                    p["date"]: (a["active_users"], p["requests"])
                    for p, a in zip(entry["requests"], entry["dau"], strict=True)
                    if a["active_users"] or p["requests"]
                }
                cents = sum((r["cents"] for r in rows), Decimal(0))
                if served != truth or entry["spend"]["total_cents"] != cents:
                    raise RuntimeError(f"summary of {org_id} differs from its member rows")
    finally:
        await conn.close()
        await client.close()
    return len(orgs)


async def _explain(dsn: str) -> None:
    """Print the plans of the summary's queries (admin and member) for one org of the data."""
    day_range = DayRange.ending(datetime.now(UTC).date(), 30)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "metrics"})
    try:
        for is_admin in (True, False):
            rows = await conn.fetch(
                f"EXPLAIN (ANALYZE, BUFFERS) {_PROVIDERS}",
                "org-7",
                None,
                day_range.start,
                day_range.end,
                is_admin,
                DEFAULT_POLICY.min_group_size,
                day_range.first_spend_day,
            )
            print(f"[bench] providers query, admin={is_admin}:", flush=True)
            print("\n".join(row[0] for row in rows), flush=True)
        # The data version lookup exists from migration 0009 on (absent in older revisions).
        version_sql = getattr(repository, "_DATA_VERSION", None)
        if version_sql is not None:
            plan = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {version_sql}", "org-7")
            print("[bench] data version lookup:\n" + "\n".join(r[0] for r in plan), flush=True)
    finally:
        await conn.close()


async def _summary(settings: MetricsSettings) -> list[Measurement]:
    print(
        f"[bench] metrics: generating {SUMMARY_INTEGRATIONS} integrations x "
        f"{SUMMARY_MEMBERS} members x {SUMMARY_DAYS} days in SQL",
        flush=True,
    )
    await migrate(settings.database_url, settings.db_schema, MIGRATIONS)
    reused = await _generated_before(settings.database_url)
    if reused is None:
        member_days, generate_s = await generate_in_sql(settings.database_url, _GENERATE)
        generated = f"generated in {generate_s:.0f} s"
    else:
        member_days, generated = reused, "generated by an earlier run"
    port = free_port()
    process = _start_server(settings, port)
    try:
        await _wait_ready(port, process)
        print(f"[bench] metrics: {CLIENTS} clients for {MEASURE_S:.0f} s", flush=True)
        load_before = os.getloadavg()[0]
        server_before, client_before = cpu_seconds(process.pid), time.process_time()
        load_started = time.perf_counter()
        latencies, errors, elapsed = await _load(port)
        load_s = time.perf_counter() - load_started
        server_cpu = (cpu_seconds(process.pid) - server_before) / load_s
        client_cpu = (time.process_time() - client_before) / load_s
        checked = await _check_summaries(port, settings.database_url)
    finally:
        _stop_server(process)
    if os.environ.get("BENCH_METRICS_EXPLAIN"):
        await _explain(settings.database_url)
    if errors:
        raise RuntimeError(f"{errors} summary requests failed")
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    rps = len(latencies) / elapsed
    note = (
        f"{member_days:,} member days in the database ({generated}); "
        f"{CLIENTS} keep-alive clients, 30-day summaries, half admin half member, "
        f"admin summaries of {checked} orgs equal to their member rows summed in SQL, "
        f"{len(latencies)} requests in {elapsed:.1f} s; server: one uvicorn process, busy "
        f"{server_cpu:.0%} of one core, {server_cpu / rps * 1000:.2f} ms of CPU per request; "
        f"client (the benchmark process) {client_cpu:.0%}; "
        f"load average {load_before:.2f} before the load; revision {_git_revision()}"
    )
    return [
        Measurement(BENCH, "summary latency p50", p50, "ms", notes=note),
        Measurement(
            BENCH,
            "summary latency p99",
            p99,
            "ms",
            target="<= 20 ms",
            meets_target=p99 <= 20,
            notes=note,
        ),
        Measurement(BENCH, "summary throughput", rps, "req/s", notes=note),
    ]
