"""Time from connect to data queryable, with every service as its own process, per provider.

- Cursor: the demo's Business-plan team of 50 members.
- GitHub Copilot: an organisation of 500 seats (Business plan).

Each is connected through the connector; the clock runs until the metrics API serves the full
30-day range through the provider's ``data_through`` with the numbers equal to the sandbox's
truth. The sandbox keeps each provider's real rate limits, so the figure includes the pacing.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from bench.common import Measurement
from koalr_devstack.databases import create_database, drop_database
from koalr_devstack.stack import Stack, StackConfig
from koalr_devstack.tokens import make_token
from koalr_runtime.settings import DEFAULT_DATABASE_URL, DEFAULT_KAFKA_BOOTSTRAP_SERVERS
from koalr_syncer.settings import newest_final_day

TIMEOUT_S = 600.0
COPILOT_SEATS = 500

Check = Callable[[dict[str, Any]], bool]
"""Whether a summary entry shows everything the truth says (the clock stops when it does)."""


def _cursor_matches(truth: dict[str, Any], yesterday: date) -> Check:
    days = {d["date"]: d for d in truth["days"]}
    through = newest_final_day(yesterday + timedelta(days=1)).isoformat()

    def check(entry: dict[str, Any]) -> bool:
        complete = [p for p in entry["requests"] if p["date"] <= yesterday.isoformat()]
        return (
            entry["freshness"]["data_through"] == through
            and bool(complete)
            and all(p["requests"] == days[p["date"]]["requests"] for p in complete)
        )

    return check


def _copilot_matches(truth: dict[str, Any]) -> Check:
    """Every day's DAU and requests, the range's spend (premium requests + seats) and the seats
    block equal the truth (architecture section 6b)."""
    days: dict[str, Any] = truth["days"]
    spend = sum(
        (Decimal(d["premium_cents"]) + Decimal(d["seat_cents"]) for d in days.values()), Decimal(0)
    )

    def check(entry: dict[str, Any]) -> bool:
        seats = entry.get("spend", {}).get("seats")
        return (
            entry["freshness"]["data_through"] == truth["data_through"]
            and all(p["active_users"] == days[p["date"]]["dau"] for p in entry["dau"])
            and all(p["requests"] == days[p["date"]]["requests"] for p in entry["requests"])
            and Decimal(str(entry["spend"]["total_cents"])) == spend
            and seats is not None
            and seats["total"] == truth["seats"]["total"]
            and Decimal(str(seats["monthly_cents"])) == Decimal(truth["seats"]["monthly_cents"])
        )

    return check


def _wait_queryable(
    http: httpx.Client, stack: Stack, org_id: str, integration_id: str, check: Check
) -> None:
    auth = {"Authorization": f"Bearer {make_token(stack.config.jwt_secret, org_id=org_id)}"}
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        summary = http.get(
            f"{stack.metrics.base_url}/v1/orgs/{org_id}/ai-analytics/summary",
            headers=auth,
            params={"days": 30},
        ).json()
        entry = next(
            (p for p in summary["providers"] if p["integration_id"] == integration_id), None
        )
        if entry and check(entry):
            return
        time.sleep(0.1)
    raise TimeoutError(f"integration {integration_id} did not become queryable in time")


def _connect(http: httpx.Client, stack: Stack, org_id: str, body: dict[str, str]) -> str:
    token = make_token(stack.config.jwt_secret, org_id=org_id)
    response = http.post(
        f"{stack.connector.base_url}/v1/orgs/{org_id}/integrations",
        headers={"Authorization": f"Bearer {token}"},
        json=body,
    )
    response.raise_for_status()
    integration_id: str = response.json()["id"]
    return integration_id


def _cursor_time_to_queryable(http: httpx.Client, stack: Stack) -> tuple[float, int]:
    assert stack.sandbox is not None
    sandbox = stack.sandbox.base_url
    team = http.post(
        f"{sandbox}/_sandbox/teams",
        json={"plan": "business", "members": 50, "days": 60, "seed": 7},
    ).json()
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    started = time.perf_counter()
    integration_id = _connect(
        http,
        stack,
        "org_bench_e2e",
        {"provider": "cursor", "api_key": team["api_key"], "team_id": team["team_id"]},
    )
    truth = http.get(
        f"{sandbox}/_sandbox/teams/{team['team_id']}/truth",
        params={
            "start": (yesterday - timedelta(days=28)).isoformat(),
            "end": yesterday.isoformat(),
        },
    ).json()
    _wait_queryable(http, stack, "org_bench_e2e", integration_id, _cursor_matches(truth, yesterday))
    elapsed = time.perf_counter() - started
    calls = http.get(f"{sandbox}/_sandbox/teams/{team['team_id']}/requests").json()["requests"]
    return elapsed, len(calls)


def _copilot_time_to_queryable(http: httpx.Client, stack: Stack) -> tuple[float, int]:
    assert stack.sandbox is not None
    sandbox = stack.sandbox.base_url
    today = datetime.now(UTC).date()
    midnight = datetime.combine(today, datetime.min.time(), tzinfo=UTC)
    org = http.post(
        f"{sandbox}/_sandbox/github/orgs",
        json={
            "plan": "business",
            "seats": COPILOT_SEATS,
            "days": 60,
            "seed": 17,
            # Publication and billing stop at the end of yesterday, so the truth stays still.
            "visible_until_ms": int(midnight.timestamp() * 1000) - 1,
        },
    ).json()
    truth = http.get(
        f"{sandbox}/_sandbox/github/orgs/{org['org']}/truth",
        params={"start": (today - timedelta(days=29)).isoformat(), "end": today.isoformat()},
    ).json()
    started = time.perf_counter()
    integration_id = _connect(
        http,
        stack,
        "org_bench_e2e_copilot",
        {"provider": "github_copilot", "token": org["token"], "github_org": org["org"]},
    )
    _wait_queryable(http, stack, "org_bench_e2e_copilot", integration_id, _copilot_matches(truth))
    elapsed = time.perf_counter() - started
    calls = http.get(f"{sandbox}/_sandbox/github/orgs/{org['org']}/requests").json()["requests"]
    return elapsed, len(calls)


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
        with Stack(config) as stack, httpx.Client(timeout=60) as http:
            cursor_s, cursor_calls = _cursor_time_to_queryable(http, stack)
            copilot_s, copilot_calls = _copilot_time_to_queryable(http, stack)
    finally:
        asyncio.run(drop_database(admin_url, name))
    return [
        Measurement(
            benchmark="e2e",
            metric="demo org: connect to 30 days queryable (50 members, real limits)",
            value=cursor_s,
            unit="s",
            notes=f"{cursor_calls} Cursor API calls; 2 syncer workers; summary equal to truth",
        ),
        Measurement(
            benchmark="e2e",
            metric=f"connect to 30 days queryable, {COPILOT_SEATS}-seat Copilot org",
            value=copilot_s,
            unit="s",
            notes=(
                f"{copilot_calls} GitHub calls and report downloads; 2 syncer workers; every "
                "day's DAU and requests, the spend and the seats equal to truth"
            ),
        ),
    ]


if __name__ == "__main__":
    from bench.common import report

    report(run())
