"""People view benchmark: p50/p99 latency of ``GET .../ai-analytics/people?days=90`` (the first
page, 500 rows) with a few keep-alive clients against the metrics service running as its own
process, over one org with 2,000 Cursor members and 2,000 Copilot seats, each with 90 days of
member rows, 1,500 of them mapped across the two tools; plus the time of one full CSV export.

Reads ``KAFKA_BOOTSTRAP_SERVERS`` and ``DATABASE_URL``; creates its own database (generated in
SQL) and drops it at the end. Run alone with ``python -m bench people``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import jwt
from pydantic import SecretStr

from bench.bench_metrics import (
    JWT_SECRET,
    _Client,
    _database_url,
    _drop_database,
    _start_server,
    _stop_server,
    _wait_ready,
    generate_in_sql,
)
from bench.common import Measurement, cpu_seconds
from koalr_devstack.processes import free_port
from koalr_metrics.settings import MetricsSettings

BENCH = "metrics"
ORG = "org-people"
MEMBERS = 2_000
DAYS = 90
MAPPED = 1_500
CLIENTS = 4
WARMUP_S = 2.0
MEASURE_S = 15.0
CURSOR_ID = "00000000-0000-4000-8000-000000000001"
COPILOT_ID = "00000000-0000-4000-8000-000000000002"

_GENERATE = [
    f"""
    INSERT INTO metrics.integrations
        (integration_id, org_id, provider, external_id, status, connected_at)
    VALUES ('{CURSOR_ID}', '{ORG}', 'cursor', 'team-people', 'connected', now()),
           ('{COPILOT_ID}', '{ORG}', 'github_copilot', 'gh-people', 'connected', now())
    """,  # noqa: S608 - constants only
    # Cursor: members by email; Copilot: members by login (charged_cents 0, spend is the seat).
    f"""
    INSERT INTO metrics.member_days
        (integration_id, day, member_key, email, name, is_active, requests, charged_cents,
         fetched_at, login)
    SELECT '{CURSOR_ID}'::uuid, current_date - d, 'dev' || m || '@people.example',
           'dev' || m || '@people.example', 'Dev ' || m, (m + d) % 7 <> 0,
           CASE WHEN (m + d) % 7 = 0 THEN 0 ELSE 1 + (m * 13 + d * 7) % 90 END,
           CASE WHEN (m + d) % 7 = 0 THEN 0 ELSE ((m * 37 + d * 11) % 5000) / 100.0 END,
           now(), NULL
    FROM generate_series(0, {DAYS - 1}) AS d CROSS JOIN generate_series(0, {MEMBERS - 1}) AS m
    UNION ALL
    SELECT '{COPILOT_ID}'::uuid, current_date - d, 'github:user-' || m, NULL, NULL, true,
           1 + (m * 7 + d * 3) % 60, 0, now(), 'user-' || m
    FROM generate_series(0, {DAYS - 1}) AS d CROSS JOIN generate_series(0, {MEMBERS - 1}) AS m
    WHERE (m + d) % 5 <> 0
    ORDER BY 1, 2, 3
    """,  # noqa: S608 - constants only
    f"""
    INSERT INTO metrics.seat_snapshots
        (integration_id, plan, total, never_used, active_30d, monthly_cents, cost_from,
         cost_monthly_cents, fetched_at)
    VALUES ('{COPILOT_ID}', 'business', {MEMBERS}, 0, {MEMBERS}, {MEMBERS * 1900},
            ARRAY[current_date - 400], ARRAY[{MEMBERS * 1900}]::bigint[], now())
    """,  # noqa: S608 - constants only
    f"""
    INSERT INTO metrics.seats
        (integration_id, member_key, login, plan_type, price_cents, created_day,
         pending_cancellation_date, last_activity_at)
    SELECT '{COPILOT_ID}'::uuid, 'github:user-' || m, 'user-' || m, 'business', 1900,
           current_date - 400 + m % 300,
           CASE WHEN m % 50 = 0 THEN current_date - m % 40 END, now()
    FROM generate_series(0, {MEMBERS - 1}) AS m
    """,  # noqa: S608 - constants only
    f"""
    INSERT INTO metrics.identities (org_id, email, github_login)
    SELECT '{ORG}', 'dev' || m || '@people.example', 'user-' || m
    FROM generate_series(0, {MAPPED - 1}) AS m
    """,  # noqa: S608 - constants only
    "ANALYZE",
]


def run() -> list[Measurement]:
    return asyncio.run(_run())


async def _run() -> list[Measurement]:
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    base_url = os.environ.get("DATABASE_URL", "postgresql://koalr:koalr@127.0.0.1:55432/koalr")
    name = f"bench_people_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(base_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    settings = MetricsSettings(
        kafka_bootstrap_servers=kafka,
        database_url=_database_url(base_url, name),
        topic_namespace=f"bench{uuid.uuid4().hex[:8]}",
        jwt_secret=SecretStr(JWT_SECRET),
        log_level="WARNING",
    )
    try:
        return await _people(settings)
    finally:
        await _drop_database(base_url, name)


async def _load(port: int, token: str, clients: int) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    measuring = False
    path = f"/v1/orgs/{ORG}/ai-analytics/people?days={DAYS}"

    async def client_loop(stop_at: float) -> None:
        nonlocal errors
        client = _Client(port)
        try:
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                status, body = await client.get(path, token)
                elapsed = time.perf_counter() - started
                if status != 200 or b'"next":"' not in body:
                    errors += 1
                if measuring:
                    latencies.append(elapsed)
        finally:
            await client.close()

    warm_until = time.monotonic() + WARMUP_S
    await asyncio.gather(*(client_loop(warm_until) for _ in range(clients)))
    measuring = True
    started = time.perf_counter()
    stop_at = time.monotonic() + MEASURE_S
    await asyncio.gather(*(client_loop(stop_at) for _ in range(clients)))
    return latencies, errors, time.perf_counter() - started


async def _csv_export(port: int, token: str) -> tuple[float, int]:
    """One full CSV export (every row, streamed), timed to its last byte; returns the time and
    the number of lines (header included)."""
    path = f"http://127.0.0.1:{port}/v1/orgs/{ORG}/ai-analytics/people"
    async with httpx.AsyncClient(timeout=120) as client:
        started = time.perf_counter()
        response = await client.get(
            path,
            params={"days": DAYS, "format": "csv"},
            headers={"Authorization": f"Bearer {token}"},
        )
        elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"the CSV export failed: {response.status_code} {response.text[:200]}")
    return elapsed, response.text.count("\r\n")


async def _people(settings: MetricsSettings) -> list[Measurement]:
    port = free_port()
    process = _start_server(settings, port)  # its start-up applies the migrations
    try:
        await _wait_ready(port, process)
        print(
            f"[bench] metrics: generating {MEMBERS} Cursor members and {MEMBERS} Copilot seats "
            f"x {DAYS} days ({MAPPED} mapped) in SQL",
            flush=True,
        )
        member_days, generate_s = await generate_in_sql(settings.database_url, _GENERATE)
        token = jwt.encode(
            {
                "sub": "bench",
                "org_id": ORG,
                "role": "admin",
                "exp": datetime.now(UTC) + timedelta(hours=1),
            },
            JWT_SECRET,
            algorithm="HS256",
        )
        print(f"[bench] metrics: people view, {CLIENTS} clients for {MEASURE_S:.0f} s", flush=True)
        load_before = os.getloadavg()[0]
        server_before = cpu_seconds(process.pid)
        load_started = time.perf_counter()
        latencies, errors, elapsed = await _load(port, token, CLIENTS)
        server_cpu = (cpu_seconds(process.pid) - server_before) / (
            time.perf_counter() - load_started
        )
        alone, alone_errors, _ = await _load(port, token, 1)
        errors += alone_errors
        csv_s, csv_lines = await _csv_export(port, token)
    finally:
        _stop_server(process)
    if errors:
        raise RuntimeError(f"{errors} people requests failed")
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    note = (
        f"{member_days:,} member days in the database (generated in {generate_s:.0f} s); "
        f"{CLIENTS} keep-alive clients, first page (500 rows) of people?days={DAYS}, "
        f"{len(latencies)} requests in {elapsed:.1f} s; server busy {server_cpu:.0%} of one "
        f"core; load average {load_before:.2f} before the load"
    )
    label = f"people view (2,000 members x 2 tools x {DAYS} days)"
    alone_note = (
        f"one client alone after the load, {len(alone)} requests in {MEASURE_S:.0f} s: the "
        f"cost of one request without queueing; load average {os.getloadavg()[0]:.2f} after"
    )
    return [
        Measurement(BENCH, f"{label} p50", p50, "ms", notes=note),
        Measurement(
            BENCH,
            f"{label} p99",
            p99,
            "ms",
            target="<= 500 ms",
            meets_target=p99 <= 500,
            notes=note,
        ),
        Measurement(
            BENCH,
            f"{label} one client p50",
            statistics.median(alone) * 1000,
            "ms",
            notes=alone_note,
        ),
        Measurement(
            BENCH,
            f"{label} CSV export, every row",
            csv_s * 1000,
            "ms",
            notes=f"{csv_lines} CSV lines (header included), one request after the load",
        ),
    ]
