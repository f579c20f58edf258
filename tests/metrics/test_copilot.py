"""GitHub Copilot through Kafka into the API, equal to the sandbox's ground truth (section 6b):
usage, models with "unattributed", spend per day (premium requests + seat cost), seats, members,
side by side with Cursor, redelivered and overtaken events, and the privacy matrix."""

from __future__ import annotations

import calendar
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import asyncpg
import httpx
import pytest
from faststream.kafka import KafkaBroker

from koalr_contracts import AnyEvent, SyncStatusChanged, topics
from koalr_metrics.settings import MetricsSettings
from koalr_sandbox.testing import GithubSandboxClient, SandboxOrg, run_sandbox
from tests.metrics.copilot import premium_spend, seats_snapshot, usage_from_row
from tests.metrics.support import (
    all_committed,
    auth,
    connected,
    disconnected,
    documented_body_checker,
    make_settings,
    new_id,
    producer,
    publish,
    running_app,
    today,
    usage,
    wait_until,
)

pytestmark = pytest.mark.integration

ORG = "org-gh"
DAYS = 45
"""Long enough to cross a month boundary whatever the date."""
SUMMARY = f"/v1/orgs/{ORG}/ai-analytics/summary"
MEMBERS = f"/v1/orgs/{ORG}/ai-analytics/members"
SETTINGS = f"/v1/orgs/{ORG}/ai-analytics/settings"


@dataclass
class Seeded:
    client: httpx.AsyncClient
    truth: dict[str, Any]
    copilot_id: uuid.UUID
    cursor_id: uuid.UUID
    seats: list[dict[str, Any]]
    broker: KafkaBroker
    settings: MetricsSettings
    dsn: str
    all_committed: Callable[[], Awaitable[bool]]


def _iso(day: date) -> str:
    return day.isoformat()


async def _copilot_events(
    github: GithubSandboxClient,
    org: SandboxOrg,
    integration_id: uuid.UUID,
    *,
    fetched_at: datetime,
    data_through: date,
) -> tuple[list[AnyEvent], list[dict[str, Any]]]:
    """What a sync publishes: a record per row of each published day, the seats, the premium
    requests of each complete day."""
    end = today()
    start = end - timedelta(days=DAYS - 1)
    events: list[AnyEvent] = []
    day = start
    while day <= data_through:
        rows = await github.report_rows(org, "users-1-day", _iso(day))
        events.extend(usage_from_row(ORG, integration_id, r, fetched_at=fetched_at) for r in rows)
        day += timedelta(days=1)
    seats = await github.seats(org)
    events.append(seats_snapshot(ORG, integration_id, "business", seats, fetched_at=fetched_at))
    day = start
    while day < end:  # premium usage of complete days
        premium = await github.call_ok(
            org,
            f"/organizations/{org.org}/settings/billing/premium_request/usage",
            params={"year": day.year, "month": day.month, "day": day.day},
        )
        events.append(premium_spend(ORG, integration_id, day, premium, fetched_at=fetched_at))
        day += timedelta(days=1)
    return events, seats


@pytest.fixture(scope="module")
async def seeded(kafka_bootstrap_servers: str, database_url: str) -> AsyncIterator[Seeded]:
    async with _database(database_url) as dsn:
        async for prepared in _seeded(kafka_bootstrap_servers, dsn):
            yield prepared


async def _seeded(kafka_bootstrap_servers: str, dsn: str) -> AsyncIterator[Seeded]:
    settings = make_settings(kafka_bootstrap_servers, dsn, f"t{uuid.uuid4().hex[:12]}")
    copilot_id, cursor_id = new_id(), new_id()
    frozen_ms = int(time.time() * 1000)
    fetched_at = datetime.fromtimestamp(frozen_ms / 1000, UTC)
    with run_sandbox() as base_url:
        async with httpx.AsyncClient(base_url=base_url) as http:
            github = GithubSandboxClient(http)
            org = await github.create_org(
                seats=40,
                days=90,
                seed=12,
                plan="business",
                rate_limits_enabled=False,
                visible_until_ms=frozen_ms,
            )
            end = today()
            truth = await github.truth(org, _iso(end - timedelta(days=DAYS - 1)), _iso(end))
            data_through = date.fromisoformat(truth["data_through"])
            events, seats = await _copilot_events(
                github, org, copilot_id, fetched_at=fetched_at, data_through=data_through
            )
    # Overtaken versions, published after the newer ones: a seats snapshot without the
    # last seat and a premium day of 1 cent, both read an hour earlier.
    earlier = fetched_at - timedelta(hours=1)
    stale_seats = seats_snapshot(ORG, copilot_id, "business", seats[:-1], fetched_at=earlier)
    stale_spend = premium_spend(
        ORG,
        copilot_id,
        end - timedelta(days=3),
        {"usageItems": [{"netAmount": "0.01"}]},
        fetched_at=earlier,
    )
    cursor_days = [end - timedelta(days=d) for d in (1, 2)]
    cursor = [
        usage(
            ORG,
            cursor_id,
            d,
            f"dev{m}@corp.example",
            {"gpt-5": (m + 1, "0.5")},
            fetched_at=fetched_at,
        )
        for d in cursor_days
        for m in range(3)
    ]
    status = SyncStatusChanged(
        org_id=ORG,
        integration_id=copilot_id,
        provider="github_copilot",
        state="idle",
        data_through=data_through,
        last_success_at=fetched_at,
    )
    async with producer(settings) as broker, running_app(settings) as (_, client):
        await publish(
            broker,
            settings.topic(topics.INTEGRATIONS),
            [connected(ORG, copilot_id, "github_copilot"), connected(ORG, cursor_id)],
        )
        usage_topic = settings.topic(topics.USAGE_RECORDS)
        # Everything twice (a redelivery), then the overtaken versions.
        await publish(broker, usage_topic, events)
        await publish(broker, usage_topic, [*events, stale_seats, stale_spend, *cursor])
        await publish(broker, settings.topic(topics.SYNC_STATUS), [status])

        async def done() -> bool:
            return await all_committed(settings)

        await wait_until(done, what="copilot events stored")
        yield Seeded(client, truth, copilot_id, cursor_id, seats, broker, settings, dsn, done)


@asynccontextmanager
async def _database(database_url: str) -> AsyncIterator[str]:
    """A new database, dropped on exit; yields its URL."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield f"{database_url.rpartition('/')[0]}/{name}"
    finally:
        admin = await asyncpg.connect(database_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _get(client: httpx.AsyncClient, path: str, role: str = "admin", **params: Any) -> Any:
    response = await client.get(path, headers=auth(ORG, role), params=params)
    return response.status_code, json.loads(response.content, parse_float=Decimal)


def _nonzero(models: dict[str, int]) -> dict[str, int]:
    return {m: r for m, r in models.items() if r}


def _day_cents(day: dict[str, Any]) -> Decimal:
    return Decimal(day["premium_cents"]) + Decimal(day["seat_cents"])


async def test_the_org_exercises_unknown_plan_seats_and_pending_cancellations(
    seeded: Seeded,
) -> None:
    plan_types = Counter(s["plan_type"] for s in seeded.seats)
    assert plan_types["unknown"] > 0
    assert any(s["pending_cancellation_date"] for s in seeded.seats)
    assert any(s["last_activity_at"] is None for s in seeded.seats)


async def test_admin_summary_equals_the_sandbox_truth(seeded: Seeded) -> None:
    truth = seeded.truth
    status, body = await _get(seeded.client, SUMMARY, provider="github_copilot", days=DAYS)
    assert status == 200
    (entry,) = body["providers"]
    assert entry["provider"] == "github_copilot"
    assert entry["integration_id"] == str(seeded.copilot_id)
    days = truth["days"]
    assert [p["date"] for p in entry["dau"]] == sorted(days)
    assert {p["date"]: p["active_users"] for p in entry["dau"]} == {
        d: v["dau"] for d, v in days.items()
    }
    assert {p["date"]: p["requests"] for p in entry["requests"]} == {
        d: v["requests"] for d, v in days.items()
    }
    total_models: Counter[str] = Counter()
    for v in days.values():
        total_models.update(v["models"])
    assert {m["model"]: m["requests"] for m in entry["models"] if m["requests"]} == _nonzero(
        dict(total_models)
    )
    assert "unattributed" in total_models
    assert entry["freshness"]["data_through"] == truth["data_through"]
    assert entry["freshness"]["days_with_data"] == sum(1 for v in days.values() if v["dau"])

    spend = entry["spend"]
    assert {p["date"]: p["cents"] for p in spend["daily"]} == {
        d: _day_cents(v) for d, v in days.items()
    }
    assert spend["total_cents"] == sum((_day_cents(v) for v in days.values()), Decimal(0))
    # Days after data_through carry their seat cost.
    assert all(Decimal(v["seat_cents"]) > 0 for d, v in days.items() if d > truth["data_through"])
    assert spend["seats"] == {
        "total": truth["seats"]["total"],
        "never_used": truth["seats"]["never_used"],
        "active_30d": truth["seats"]["active_30d"],
        "monthly_cents": int(truth["seats"]["monthly_cents"]),
    }
    month_start = today().replace(day=1).isoformat()
    assert spend["cycle"] == {
        "start": month_start,
        "total_cents": sum(
            (_day_cents(v) for d, v in days.items() if d >= month_start), Decimal(0)
        ),
    }


async def test_members_list_copilot_members_by_login_with_their_seat_cost(seeded: Seeded) -> None:
    status, body = await _get(seeded.client, MEMBERS, provider="github_copilot", days=DAYS)
    assert status == 200
    got = {m["login"]: m for m in body["members"]}
    expected = seeded.truth["members"]
    assert sorted(got) == sorted(expected)
    for login, member in expected.items():
        assert got[login] == {
            "provider": "github_copilot",
            "email": None,
            "login": login,
            "name": None,
            "active_days": member["active_days"],
            "requests": member["requests"],
            "top_model": member["top_model"],
            "spend_cents": Decimal(member["spend_cents"]),
        }, login
    assert any(m["active_days"] == 0 for m in expected.values())  # seat holders without use
    assert [m["requests"] for m in body["members"]] == sorted(
        (m["requests"] for m in body["members"]), reverse=True
    )


async def test_without_provider_cursor_and_copilot_come_side_by_side(seeded: Seeded) -> None:
    status, body = await _get(seeded.client, SUMMARY, days=DAYS)
    assert status == 200
    assert [(p["provider"], p["integration_id"]) for p in body["providers"]] == [
        ("cursor", str(seeded.cursor_id)),
        ("github_copilot", str(seeded.copilot_id)),
    ]
    cursor = body["providers"][0]
    assert "seats" not in cursor["spend"]
    assert sum(p["requests"] for p in cursor["requests"]) == 2 * (1 + 2 + 3)
    status, body = await _get(seeded.client, MEMBERS, days=DAYS)
    assert {m["provider"] for m in body["members"]} == {"cursor", "github_copilot"}
    assert {m["email"] for m in body["members"] if m["provider"] == "cursor"} == {
        f"dev{m}@corp.example" for m in range(3)
    }


async def test_a_member_sees_aggregates_only_suppressed_below_the_group_size(
    seeded: Seeded,
) -> None:
    days = seeded.truth["days"]
    status, body = await _get(
        seeded.client, SUMMARY, role="member", provider="github_copilot", days=DAYS
    )
    assert status == 200
    (entry,) = body["providers"]
    assert "spend" not in entry
    visible = {d for d, v in days.items() if v["dau"] >= 5}
    assert visible  # both kinds of day are exercised
    assert len(visible) < len(days)
    assert entry["dau"] == [
        {"date": d, "active_users": days[d]["dau"], "suppressed": False}
        if d in visible
        else {"date": d, "active_users": None, "suppressed": True}
        for d in sorted(days)
    ]
    assert entry["requests"] == [
        {"date": d, "requests": days[d]["requests"], "suppressed": False}
        if d in visible
        else {"date": d, "requests": None, "suppressed": True}
        for d in sorted(days)
    ]
    seen: Counter[str] = Counter()
    for d in visible:
        seen.update(days[d]["models"])
    assert {m["model"]: m["requests"] for m in entry["models"] if m["requests"]} == _nonzero(
        dict(seen)
    )
    assert entry["freshness"]["days_with_data"] == len(visible)
    response = await seeded.client.get(MEMBERS, headers=auth(ORG, "member"))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "admin_only"


async def test_members_allowed_to_see_spend_get_no_seats_and_suppressed_days(
    seeded: Seeded,
) -> None:
    days = seeded.truth["days"]
    response = await seeded.client.put(
        SETTINGS,
        headers=auth(ORG),
        json={"members_can_see_spend": True, "min_group_size": 8},
    )
    assert response.status_code == 200
    try:
        status, body = await _get(
            seeded.client, SUMMARY, role="member", provider="github_copilot", days=DAYS
        )
    finally:
        await seeded.client.put(SETTINGS, headers=auth(ORG), json={})
    assert status == 200
    spend = body["providers"][0]["spend"]
    assert "seats" not in spend
    visible = {d for d, v in days.items() if v["dau"] >= 8}
    assert visible
    assert len(visible) < len(days)
    assert spend["daily"] == [
        {"date": d, "cents": _day_cents(days[d]), "suppressed": False}
        if d in visible
        else {"date": d, "cents": None, "suppressed": True}
        for d in sorted(days)
    ]
    assert spend["total_cents"] == sum((_day_cents(days[d]) for d in visible), Decimal(0))
    month_start = today().replace(day=1).isoformat()
    assert spend["cycle"] == {
        "start": month_start,
        "total_cents": sum(
            (_day_cents(v) for d, v in days.items() if d >= month_start), Decimal(0)
        ),
        "suppressed": False,
    }


async def test_a_purge_deletes_seats_and_day_spend_and_late_ones_are_dropped(
    seeded: Seeded,
) -> None:
    org, integration = "org-purged", new_id()
    fetched_at = datetime.now(UTC)
    stored: list[AnyEvent] = [
        seats_snapshot(org, integration, "enterprise", seeded.seats[:3], fetched_at=fetched_at),
        premium_spend(
            org,
            integration,
            today() - timedelta(days=1),
            {"usageItems": [{"netAmount": "1.25"}]},
            fetched_at=fetched_at,
        ),
    ]
    usage_topic = seeded.settings.topic(topics.USAGE_RECORDS)
    integrations_topic = seeded.settings.topic(topics.INTEGRATIONS)

    async def counts() -> tuple[int, int, int]:
        conn = await asyncpg.connect(seeded.dsn)
        try:
            row = await conn.fetchrow(
                """
                SELECT (SELECT count(*) FROM metrics.seat_snapshots WHERE integration_id = $1),
                       (SELECT count(*) FROM metrics.seats WHERE integration_id = $1),
                       (SELECT count(*) FROM metrics.day_spend WHERE integration_id = $1)
                """,
                integration,
            )
        finally:
            await conn.close()
        assert row is not None
        return (row[0], row[1], row[2])

    await publish(
        seeded.broker, integrations_topic, [connected(org, integration, "github_copilot")]
    )
    await publish(seeded.broker, usage_topic, stored)
    await wait_until(seeded.all_committed, what="seats and day spend stored")
    assert await counts() == (1, 3, 1)
    await publish(
        seeded.broker,
        integrations_topic,
        [disconnected(org, integration, purge=True, provider="github_copilot")],
    )
    await wait_until(seeded.all_committed, what="purge applied")
    assert await counts() == (0, 0, 0)
    await publish(seeded.broker, usage_topic, stored)
    await wait_until(seeded.all_committed, what="late events consumed")
    assert await counts() == (0, 0, 0)


async def test_copilot_bodies_validate_against_the_openapi_document(seeded: Seeded) -> None:
    spec = (await seeded.client.get("/openapi.json")).json()
    check = documented_body_checker(spec)
    params = {"days": DAYS}
    response = await seeded.client.get(SUMMARY, headers=auth(ORG), params=params)
    body = check("summary", "get", response)
    assert [("seats" in p["spend"]) for p in body["providers"]] == [False, True]
    response = await seeded.client.get(MEMBERS, headers=auth(ORG), params=params)
    members = check("members", "get", response)["members"]
    assert {m["login"] is None for m in members} == {True, False}
    seats = spec["components"]["schemas"]["SeatsOut"]
    assert sorted(seats["required"]) == ["active_30d", "monthly_cents", "never_used", "total"]


async def test_seat_cost_through_the_api_across_a_month_with_a_cancellation_and_an_unknown_plan(
    seeded: Seeded,
) -> None:
    """Seats made by hand, expectations by exact fractions: a seat granted two days before this
    month, one whose cancellation took effect on the first of this month, an ``unknown`` seat
    priced at the org's enterprise plan, and one granted after the range."""
    org, integration = "org-seats", new_id()
    end = today()
    month = end.replace(day=1)
    start = end - timedelta(days=DAYS - 1)
    fetched_at = datetime.now(UTC)

    def seat(login: str, created: date, **fields: Any) -> dict[str, Any]:
        return {
            "assignee": {"login": login, "id": len(login)},
            "created_at": f"{created.isoformat()}T23:30:00-01:00",  # the next UTC day
            **fields,
        }

    long_ago = start - timedelta(days=100)
    seats = [
        seat("ann", month - timedelta(days=3), plan_type="business"),
        seat(
            "bob",
            long_ago,
            plan_type="business",
            pending_cancellation_date=month.isoformat(),
            last_activity_at=(fetched_at - timedelta(days=31)).isoformat(),
        ),
        seat("cy", long_ago, plan_type="unknown", last_activity_at=fetched_at.isoformat()),
        seat("dee", end + timedelta(days=1), plan_type="enterprise"),
    ]
    # UTC created days: ann the second to last day of last month, bob and cy long before the
    # range, dee after today.
    billed = {
        "ann": (1900, month - timedelta(days=2), None),
        "bob": (1900, long_ago + timedelta(days=1), month),
        "cy": (3900, long_ago + timedelta(days=1), None),
        "dee": (3900, end + timedelta(days=2), None),
    }

    def costs(login: str, day: date) -> Fraction:
        price, first, ends = billed[login]
        if day < first or (ends is not None and day >= ends):
            return Fraction(0)
        return Fraction(price, calendar.monthrange(day.year, day.month)[1])

    def rounded(value: Fraction) -> Decimal:
        return Decimal(round(value * 100_000)) / 100_000

    days = [start + timedelta(days=i) for i in range(DAYS)]
    await publish(
        seeded.broker,
        seeded.settings.topic(topics.INTEGRATIONS),
        [connected(org, integration, "github_copilot")],
    )
    await publish(
        seeded.broker,
        seeded.settings.topic(topics.USAGE_RECORDS),
        [seats_snapshot(org, integration, "enterprise", seats, fetched_at=fetched_at)],
    )
    await wait_until(seeded.all_committed, what="hand-made seats stored")
    response = await seeded.client.get(
        f"/v1/orgs/{org}/ai-analytics/summary", headers=auth(org), params={"days": DAYS}
    )
    spend = json.loads(response.content, parse_float=Decimal)["providers"][0]["spend"]
    expected_daily = {d: rounded(sum((costs(s, d) for s in billed), Fraction(0))) for d in days}
    assert {date.fromisoformat(p["date"]): p["cents"] for p in spend["daily"]} == expected_daily
    assert spend["total_cents"] == sum(expected_daily.values(), Decimal(0))
    assert spend["cycle"] == {
        "start": month.isoformat(),
        "total_cents": sum((v for d, v in expected_daily.items() if d >= month), Decimal(0)),
    }
    assert spend["seats"] == {
        "total": 4,
        "never_used": 2,
        "active_30d": 1,
        "monthly_cents": 1900 + 1900 + 3900 + 3900,
    }
    response = await seeded.client.get(
        f"/v1/orgs/{org}/ai-analytics/members", headers=auth(org), params={"days": DAYS}
    )
    members = json.loads(response.content, parse_float=Decimal)["members"]
    assert {m["login"]: m["spend_cents"] for m in members} == {
        login: rounded(sum((costs(login, d) for d in days), Fraction(0))) for login in billed
    }
    assert {(m["active_days"], m["requests"], m["top_model"]) for m in members} == {(0, 0, None)}
    assert next(m["spend_cents"] for m in members if m["login"] == "dee") == 0
    assert next(m["spend_cents"] for m in members if m["login"] == "bob") > 0


async def test_a_replay_into_a_new_database_gives_the_same_documents(
    seeded: Seeded, database_url: str
) -> None:
    """The topics read again from the start by new consumer groups into an empty database: the
    same summary and members, redelivered and overtaken events included."""
    paths: list[tuple[str, dict[str, str | int]]] = [
        (SUMMARY, {"days": DAYS}),
        (SUMMARY, {"days": DAYS, "provider": "github_copilot"}),
        (MEMBERS, {"days": DAYS}),
    ]
    before = [
        (await seeded.client.get(path, headers=auth(ORG), params=params)).content
        for path, params in paths
    ]
    async with _database(database_url) as dsn:
        replay = seeded.settings.model_copy(
            update={
                "database_url": dsn,
                "ingest_group": "metrics-ingest-replay",
                "integrations_group": "metrics-integrations-replay",
                "sync_status_group": "metrics-sync-status-replay",
            }
        )
        async with running_app(replay) as (_, client):
            await wait_until(lambda: all_committed(replay), what="topics replayed")
            after = [
                (await client.get(path, headers=auth(ORG), params=params)).content
                for path, params in paths
            ]
    assert after == before
