"""The demo org's time from connect to data queryable, with every service as its own process.

A Business-plan team of 50 members (the demo's) is connected through the connector; the clock runs
until the metrics API serves the full 30-day range through yesterday with the numbers equal to the
sandbox's truth. The sandbox keeps Cursor's real rate limits, so the figure includes the pacing.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.common import Measurement
from koalr_devstack.databases import create_database, drop_database
from koalr_devstack.stack import Stack, StackConfig
from koalr_devstack.tokens import make_token
from koalr_runtime.settings import DEFAULT_DATABASE_URL, DEFAULT_KAFKA_BOOTSTRAP_SERVERS
from koalr_syncer.settings import newest_final_day

ORG = "org_bench_e2e"
TIMEOUT_S = 600.0


def _matches_truth(entry: dict[str, Any], truth: dict[str, Any], yesterday: date) -> bool:
    days = {d["date"]: d for d in truth["days"]}
    complete = [p for p in entry["requests"] if p["date"] <= yesterday.isoformat()]
    return bool(complete) and all(p["requests"] == days[p["date"]]["requests"] for p in complete)


def _time_to_queryable(stack: Stack) -> tuple[float, int]:
    token = make_token(stack.config.jwt_secret, org_id=ORG)
    auth = {"Authorization": f"Bearer {token}"}
    assert stack.sandbox is not None
    with httpx.Client(timeout=30) as http:
        team = http.post(
            f"{stack.sandbox.base_url}/_sandbox/teams",
            json={"plan": "business", "members": 50, "days": 60, "seed": 7},
        ).json()
        yesterday = datetime.now(UTC).date() - timedelta(days=1)
        started = time.perf_counter()
        response = http.post(
            f"{stack.connector.base_url}/v1/orgs/{ORG}/integrations",
            headers=auth,
            json={"provider": "cursor", "api_key": team["api_key"], "team_id": team["team_id"]},
        )
        response.raise_for_status()
        integration_id = response.json()["id"]
        truth = http.get(
            f"{stack.sandbox.base_url}/_sandbox/teams/{team['team_id']}/truth",
            params={
                "start": (yesterday - timedelta(days=28)).isoformat(),
                "end": yesterday.isoformat(),
            },
        ).json()
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            summary = http.get(
                f"{stack.metrics.base_url}/v1/orgs/{ORG}/ai-analytics/summary",
                headers=auth,
                params={"days": 30},
            ).json()
            entry = next(
                (p for p in summary["providers"] if p["integration_id"] == integration_id), None
            )
            if (
                entry
                and entry["freshness"]["data_through"]
                == newest_final_day(yesterday + timedelta(days=1)).isoformat()
                and _matches_truth(entry, truth, yesterday)
            ):
                elapsed = time.perf_counter() - started
                calls = http.get(
                    f"{stack.sandbox.base_url}/_sandbox/teams/{team['team_id']}/requests"
                ).json()["requests"]
                return elapsed, len(calls)
            time.sleep(0.1)
    raise TimeoutError("the demo org's data did not become queryable in time")


def run() -> list[Measurement]:
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_KAFKA_BOOTSTRAP_SERVERS)
    admin_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    name = f"bench_e2e_{uuid.uuid4().hex[:8]}"
    bench_database = asyncio.run(create_database(admin_url, name))
    config = StackConfig(
        kafka_bootstrap_servers=kafka,
        database_url=bench_database,
        log_dir=Path(tempfile.mkdtemp(prefix="koalr-bench-e2e-")),
        topic_namespace=f"benche2e{uuid.uuid4().hex[:8]}",
        syncer_workers=2,
    )
    try:
        with Stack(config) as stack:
            elapsed, calls = _time_to_queryable(stack)
    finally:
        asyncio.run(drop_database(admin_url, name))
    return [
        Measurement(
            benchmark="e2e",
            metric="demo org: connect to 30 days queryable (50 members, real limits)",
            value=elapsed,
            unit="s",
            notes=f"{calls} Cursor API calls; 2 syncer workers; summary equal to truth",
        )
    ]


if __name__ == "__main__":
    from bench.common import report

    report(run())
