"""PostgreSQL stopped mid-stream: the consumer commits nothing while it is down, loses nothing,
and the totals are exact once it is back. Runs on a dedicated PostgreSQL cluster (started and
dropped here with the project's infra script) so the shared one is never stopped."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from koalr_contracts import UsageRecord, topics
from koalr_devstack.processes import free_port
from tests.metrics.support import (
    Truth,
    auth,
    committed_offsets,
    connected,
    end_offsets,
    fully_committed,
    make_settings,
    new_id,
    producer,
    publish,
    range_days,
    running_app,
    today,
    usage,
    wait_until,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "deploy" / "local" / "infra.sh"
ORG = "org-outage"


async def _run(*args: str, env: dict[str, str], timeout_s: float = 120) -> str:
    process = await asyncio.create_subprocess_exec(
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=timeout_s)
    if process.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed: {stderr.decode()[-2000:]}")
    return stdout.decode()


class DedicatedPostgres:
    """A PostgreSQL cluster of its own, via ``deploy/local/infra.sh`` (Debian cluster tools)."""

    def __init__(self) -> None:
        self.name = f"koalr_metrics_{uuid.uuid4().hex[:8]}"
        self.env = {
            **os.environ,
            "KOALR_PG_CLUSTER": self.name,
            "KOALR_PG_PORT": str(free_port()),
        }
        self.database_url = ""
        versions = [p.name for p in Path("/usr/lib/postgresql").iterdir()]
        self.version = max(versions, key=lambda v: [int(x) for x in v.split(".") if x.isdigit()])

    async def start(self) -> None:
        out = await _run("bash", str(INFRA), "start", "postgres", env=self.env)
        for line in out.splitlines():
            if line.startswith("export DATABASE_URL="):
                self.database_url = line.removeprefix("export DATABASE_URL=").strip()
        assert self.database_url.endswith(f":{self.env['KOALR_PG_PORT']}/koalr")

    async def stop(self) -> None:
        await _run("bash", str(INFRA), "stop", "postgres", env=self.env)

    async def drop(self) -> None:
        await _run("pg_dropcluster", "--stop", self.version, self.name, env=self.env)


@pytest.fixture
async def dedicated_postgres() -> AsyncIterator[DedicatedPostgres]:
    cluster = DedicatedPostgres()
    try:
        await cluster.start()
        yield cluster
    finally:
        try:
            await cluster.stop()
        finally:
            await cluster.drop()


@pytest.mark.timeout(240)
async def test_postgres_down_mid_stream_commits_nothing_and_loses_nothing(
    kafka_bootstrap_servers: str, topic_namespace: str, dedicated_postgres: DedicatedPostgres
) -> None:
    settings = make_settings(
        kafka_bootstrap_servers, dedicated_postgres.database_url, topic_namespace
    )
    usage_topic = settings.topic(topics.USAGE_RECORDS)
    group = settings.group(settings.ingest_group)
    integration = new_id()
    t0 = datetime.now(UTC) - timedelta(hours=1)
    truth = Truth()

    def day_records(offset_days: int, fetched_at: datetime, base: int) -> list[UsageRecord]:
        day = today() - timedelta(days=offset_days)
        return [
            usage(
                ORG,
                integration,
                day,
                f"dev{m}@example.com",
                {"gpt-5": (base + m, f"{base}.{m}1"), "o3": (m, "0.5")},
                fetched_at=fetched_at,
            )
            for m in range(8)
        ]

    before = day_records(3, t0, 10) + day_records(2, t0, 20)
    during = (
        day_records(2, t0 + timedelta(minutes=30), 30)  # re-sync of a stored day
        + day_records(1, t0, 40)
        + before[:4]  # redelivered
    )
    async with producer(settings) as broker, running_app(settings) as (app, client):
        await publish(broker, settings.topic(topics.INTEGRATIONS), [connected(ORG, integration)])
        await publish(broker, usage_topic, before)
        truth.add(before)
        await wait_until(
            lambda: fully_committed(
                kafka_bootstrap_servers, group, usage_topic, records=len(before)
            ),
            what="first records committed",
        )
        committed_before = await committed_offsets(kafka_bootstrap_servers, group, usage_topic)

        await dedicated_postgres.stop()
        failures_at_stop = app.state.ingest.stats.failed_attempts
        await publish(broker, usage_topic, during)
        truth.add(during)
        await wait_until(
            lambda: _failed_more_than(app, failures_at_stop + 3),
            what="the consumer to retry against the stopped database",
        )
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert "postgres" in ready.json()["failed"]
        assert await committed_offsets(kafka_bootstrap_servers, group, usage_topic) == (
            committed_before
        )
        ends = await end_offsets(kafka_bootstrap_servers, usage_topic)
        assert sum(ends.values()) == sum(committed_before.values()) + len(during)

        await dedicated_postgres.start()
        await wait_until(
            lambda: fully_committed(
                kafka_bootstrap_servers, group, usage_topic, records=len(before) + len(during)
            ),
            timeout_s=60,
            what="records stored after the restart",
        )
        response = await client.get(
            f"/v1/orgs/{ORG}/ai-analytics/summary", params={"days": 7}, headers=auth(ORG)
        )
        assert response.status_code == 200
        body = json.loads(response.content, parse_float=Decimal)

    days = range_days(7)
    daily = truth.daily(integration, days)
    (entry,) = body["providers"]
    assert entry["requests"] == [
        {"date": d.isoformat(), "requests": daily[d]["requests"]} for d in days
    ]
    assert entry["dau"] == [
        {"date": d.isoformat(), "active_users": daily[d]["active"]} for d in days
    ]
    assert entry["spend"]["total_cents"] == sum((daily[d]["cents"] for d in days), Decimal(0))
    assert [(m["model"], m["requests"]) for m in entry["models"]] == truth.models(integration, days)
    # 8 members on three days; the re-synced day counts its newer figures only.
    assert sum(p["requests"] for p in entry["requests"]) == sum(
        10 + m + m + 30 + m + m + 40 + m + m for m in range(8)
    )


async def _failed_more_than(app: object, count: int) -> bool:
    return bool(app.state.ingest.stats.failed_attempts >= count)  # type: ignore[attr-defined]
