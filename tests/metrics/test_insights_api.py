"""Insights and alerts through Kafka, PostgreSQL and the API, equal to independently computed
truth: a GitHub Copilot org from the sandbox (with a premium-request spike injected on one day)
and a Cursor team of five crafted members, side by side."""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from koalr_contracts import (
    Alert,
    AnyEvent,
    IdleSeatDetails,
    SyncStatusChanged,
    decode_event,
    topics,
)
from koalr_devstack.databases import scratch_database
from koalr_metrics.alerts import AlertsOutcome, AlertsPublisher
from koalr_metrics.background import PeriodicJob
from koalr_metrics.settings import MetricsSettings
from koalr_sandbox.testing import GithubSandboxClient, run_sandbox
from tests.metrics.copilot import premium_spend, seats_snapshot, usage_from_row
from tests.metrics.support import (
    Truth,
    all_committed,
    auth,
    connected,
    documented_body_checker,
    make_settings,
    new_id,
    producer,
    publish,
    running_app,
    snapshot,
    sync_status,
    today,
    usage,
    wait_until,
)

pytestmark = pytest.mark.integration

ORG = "org-insights"
INSIGHTS = f"/v1/orgs/{ORG}/ai-analytics/insights"
HISTORY = 70
"""Days of data published, ending today: the 30-day range plus its 28 baseline days, and more."""
RANGE = 30
K = Decimal("3.5")
MIN_DELTA = Decimal(1000)
CURSOR_PRICE = 3500
SPIKE_REQUESTS = 20_000
"""Premium requests injected on one day: 20,000 at 4 cents = 80,000 cents."""


@dataclass
class Seeded:
    app: FastAPI
    client: httpx.AsyncClient
    settings: MetricsSettings
    dsn: str
    copilot_id: uuid.UUID
    cursor_id: uuid.UUID
    range_truth: dict[str, Any]
    baseline_truth: dict[str, Any]
    seats: list[dict[str, Any]]
    rows: dict[date, list[dict[str, Any]]]
    fetched_at: datetime
    spike_day: date
    cursor: Truth
    cursor_data_through: date


def _day(n: int) -> date:
    return today() - timedelta(days=n)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _cursor_events(cursor_id: uuid.UUID, fetched_at: datetime) -> list[Any]:
    """ann: active every day (100 cents; 5000 on day -5); bob: active until day -40, then rows
    without activity; cat: rows every day, never active; dan: joins on day -20, active from
    day -15; eve: only in the spend snapshot."""
    events: list[Any] = []
    for n in range(HISTORY - 1, 0, -1):
        day = _day(n)

        def record(
            email: str, models: dict[str, tuple[int, str]], *, day: date = day, **kw: Any
        ) -> Any:
            return usage(ORG, cursor_id, day, email, models, fetched_at=fetched_at, **kw)

        events.append(record("ann@corp.example", {"gpt-5": (10, "5000" if n == 5 else "100")}))
        if n >= 40:
            events.append(record("bob@corp.example", {"gpt-5": (3, "50")}))
        else:
            events.append(record("bob@corp.example", {}, is_active=False))
        events.append(record("cat@corp.example", {}, is_active=False))
        if n <= 15:
            events.append(record("dan@corp.example", {"claude-4.5-sonnet": (2, "30")}))
        elif n <= 20:
            events.append(record("dan@corp.example", {}, is_active=False))
    events.append(
        snapshot(
            ORG,
            cursor_id,
            today().replace(day=1),
            {"ann@corp.example": "900", "eve@corp.example": "0"},
            fetched_at=fetched_at,
        )
    )
    return events


@pytest.fixture(scope="module")
async def seeded(kafka_bootstrap_servers: str, database_url: str) -> AsyncIterator[Seeded]:
    async with scratch_database(database_url) as dsn:
        settings = make_settings(
            kafka_bootstrap_servers,
            dsn,
            f"t{uuid.uuid4().hex[:12]}",
            alerts_interval_s=0,  # the tests run the evaluations themselves
            alerts_lookback_days=7,
            anomaly_mad_k=K,
            anomaly_min_delta_cents=MIN_DELTA,
        )
        copilot_id, cursor_id = new_id(), new_id()
        frozen_ms = int(time.time() * 1000)
        fetched_at = datetime.fromtimestamp(frozen_ms / 1000, UTC)
        events: list[AnyEvent] = []
        rows: dict[date, list[dict[str, Any]]] = {}
        with run_sandbox() as base_url:
            async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
                github = GithubSandboxClient(http)
                org = await github.create_org(
                    seats=40,
                    days=90,
                    seed=31,
                    plan="business",
                    rate_limits_enabled=False,
                    visible_until_ms=frozen_ms,
                )
                probe = await github.truth(org, _day(1).isoformat(), today().isoformat())
                data_through = date.fromisoformat(probe["data_through"])
                spike_day = data_through - timedelta(days=1)
                await github.add_premium_spike(org, spike_day.isoformat(), SPIKE_REQUESTS)
                range_start = _day(RANGE - 1)
                range_truth = await github.truth(org, range_start.isoformat(), _day(0).isoformat())
                baseline_truth = await github.truth(
                    org, (range_start - timedelta(days=28)).isoformat(), _day(0).isoformat()
                )
                for n in range(HISTORY - 1, -1, -1):
                    day = _day(n)
                    if day <= data_through:
                        rows[day] = await github.report_rows(org, "users-1-day", day.isoformat())
                        events.extend(
                            usage_from_row(ORG, copilot_id, r, fetched_at=fetched_at)
                            for r in rows[day]
                        )
                    if n > 0:
                        premium = await github.call_ok(
                            org,
                            f"/organizations/{org.org}/settings/billing/premium_request/usage",
                            params={"year": day.year, "month": day.month, "day": day.day},
                        )
                        events.append(
                            premium_spend(ORG, copilot_id, day, premium, fetched_at=fetched_at)
                        )
                seats = await github.seats(org)
        events.append(seats_snapshot(ORG, copilot_id, "business", seats, fetched_at=fetched_at))
        cursor_events = _cursor_events(cursor_id, fetched_at)
        cursor_truth = Truth()
        cursor_truth.add(e for e in cursor_events if e.event_type == "UsageRecord")
        cursor_data_through = _day(1)
        statuses = [
            SyncStatusChanged(
                org_id=ORG,
                integration_id=copilot_id,
                provider="github_copilot",
                state="idle",
                data_through=data_through,
                last_success_at=fetched_at,
            ),
            sync_status(
                ORG,
                cursor_id,
                "idle",
                data_through=cursor_data_through,
                last_success_at=fetched_at,
            ),
        ]
        async with producer(settings) as broker, running_app(settings) as (app, client):
            await publish(
                broker,
                settings.topic(topics.INTEGRATIONS),
                [connected(ORG, copilot_id, "github_copilot"), connected(ORG, cursor_id)],
            )
            await publish(broker, settings.topic(topics.USAGE_RECORDS), [*events, *cursor_events])
            await publish(broker, settings.topic(topics.SYNC_STATUS), statuses)

            async def stored() -> bool:
                return await all_committed(settings)

            await wait_until(stored, timeout_s=90, what="events stored")
            response = await client.put(
                f"/v1/orgs/{ORG}/ai-analytics/settings",
                headers=auth(ORG),
                json={"cursor_seat_price_cents": CURSOR_PRICE},
            )
            assert response.status_code == 200, response.text
            yield Seeded(
                app,
                client,
                settings,
                dsn,
                copilot_id,
                cursor_id,
                range_truth,
                baseline_truth,
                seats,
                rows,
                fetched_at,
                spike_day,
                cursor_truth,
                cursor_data_through,
            )


async def _insights(seeded: Seeded, **params: Any) -> dict[str, Any]:
    response = await seeded.client.get(INSIGHTS, headers=auth(ORG), params=params)
    assert response.status_code == 200, response.text
    spec = (await seeded.client.get("/openapi.json")).json()
    documented_body_checker(spec)("insights", "get", response)
    body: dict[str, Any] = json.loads(response.content, parse_float=Decimal)
    return body


def _exact(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.00001"), rounding=ROUND_HALF_EVEN)


def _median(values: Sequence[Decimal]) -> Decimal:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def _expected_anomalies(
    spend: dict[date, Decimal], days: Sequence[date], last_day: date, first_day: date
) -> list[dict[str, Any]]:
    """Median + k·MAD of the 28 days before, recomputed here from the truth's daily spend."""
    out = []
    for day in days:
        window = [day - timedelta(days=28 - i) for i in range(28)]
        if day > last_day or window[0] < first_day:
            continue
        base = [spend.get(d, Decimal(0)) for d in window]
        mid = _median(base)
        mad = _median([abs(x - mid) for x in base])
        cents = spend.get(day, Decimal(0))
        if cents > mid + K * mad and cents - mid >= MIN_DELTA:
            out.append(
                {
                    "date": day.isoformat(),
                    "spend_cents": cents,
                    "baseline_median_cents": mid,
                    "baseline_mad_cents": mad,
                    "threshold_cents": mid + K * mad,
                }
            )
    return out


def _copilot_spend(seeded: Seeded) -> dict[date, Decimal]:
    return {
        date.fromisoformat(d): Decimal(v["premium_cents"]) + Decimal(v["seat_cents"])
        for d, v in seeded.baseline_truth["days"].items()
    }


def _range_days() -> list[date]:
    return [_day(n) for n in range(RANGE - 1, -1, -1)]


async def test_copilot_insights_equal_the_sandbox_truth(seeded: Seeded) -> None:
    body = await _insights(seeded, provider="github_copilot")
    assert body["range"] == {"start": _day(RANGE - 1).isoformat(), "end": today().isoformat()}
    (entry,) = body["providers"]
    truth = seeded.range_truth
    spend = sum(
        (Decimal(v["premium_cents"]) + Decimal(v["seat_cents"]) for v in truth["days"].values()),
        Decimal(0),
    )
    active = sum(1 for m in truth["members"].values() if m["active_days"] > 0)
    assert entry["spend_cents"] == spend
    assert entry["active_members"] == active
    assert entry["cost_per_active_user"] == _exact(spend / active)

    # Idle: the seats the summary does not count as active in the last 30 days.
    since = seeded.fetched_at - timedelta(days=30)
    idle = [
        s
        for s in seeded.seats
        if s["last_activity_at"] is None or _instant(s["last_activity_at"]) < since
    ]
    assert len(idle) == truth["seats"]["total"] - truth["seats"]["active_30d"] > 0

    def last_day(seat: dict[str, Any]) -> date | None:
        last = seat["last_activity_at"]
        return None if last is None else _instant(last).date()

    def last_iso(seat: dict[str, Any]) -> str | None:
        last = last_day(seat)
        return None if last is None else last.isoformat()

    def price(seat: dict[str, Any]) -> int:
        return 3900 if seat["plan_type"] == "enterprise" else 1900  # unknown: the org's plan

    idle.sort(key=lambda s: (last_day(s) or date.min, s["assignee"]["login"]))
    assert entry["idle_seats"] == {
        "count": len(idle),
        "monthly_cents": sum(price(s) for s in idle),
        "seats": [
            {
                "email": None,
                "login": s["assignee"]["login"],
                "name": None,
                "last_active": last_iso(s),
                "seat_since": _instant(s["created_at"]).date().isoformat(),
            }
            for s in idle
        ],
    }

    # Activation: seat day to the first day with a report row on or after it, for seats
    # created within the data published (from the first day of history on).
    first_day = _day(HISTORY - 1)
    waits, unobserved = [], 0
    for seat in seeded.seats:
        if seat["last_activity_at"] is None:
            continue  # never used
        login = seat["assignee"]["login"]
        created = _instant(seat["created_at"]).date()
        days_used = sorted(
            d
            for d, rows in seeded.rows.items()
            if d >= created and any(r["user_login"] == login for r in rows)
        )
        if created >= first_day and days_used:
            waits.append((days_used[0] - created).days)
        else:
            unobserved += 1
    never = sorted(s["assignee"]["login"] for s in seeded.seats if s["last_activity_at"] is None)
    activation = entry["seat_activation"]
    assert activation["activated"] == len(waits) > 0
    assert activation["median_days"] == Decimal(statistics.median(waits))
    assert activation["first_use_unobserved"] == unobserved
    assert activation["never_used"]["count"] == truth["seats"]["never_used"] == len(never)
    assert [s["login"] for s in activation["never_used"]["seats"]] == never

    # Anomalies: the injected spike, and exactly what the rule says of the truth's spend.
    expected = _expected_anomalies(
        _copilot_spend(seeded),
        _range_days(),
        date.fromisoformat(truth["data_through"]),
        _day(HISTORY - 1),
    )
    assert seeded.spike_day.isoformat() in [a["date"] for a in expected]
    assert entry["spend_anomalies"] == {"k": K, "min_delta_cents": MIN_DELTA, "days": expected}


async def test_cursor_insights_equal_the_seeded_members(seeded: Seeded) -> None:
    body = await _insights(seeded, provider="cursor")
    (entry,) = body["providers"]
    days = _range_days()
    daily = seeded.cursor.daily(seeded.cursor_id, days)
    spend = sum((v["cents"] for v in daily.values()), Decimal(0))
    assert spend == 28 * 100 + 5000 + 15 * 30  # ann every day but today, dan for 15 days
    assert entry["spend_cents"] == spend
    assert entry["active_members"] == 2  # ann and dan; bob's last activity was 40 days ago
    assert entry["cost_per_active_user"] == _exact(spend / 2)

    def who(email: str, last: int | None, since: int | None) -> dict[str, Any]:
        return {
            "email": email,
            "login": None,
            "name": email.split("@", maxsplit=1)[0].title() if since is not None else None,
            "last_active": None if last is None else _day(last).isoformat(),
            "seat_since": None if since is None else _day(since).isoformat(),
        }

    cat = who("cat@corp.example", None, HISTORY - 1)
    eve = who("eve@corp.example", None, None)
    bob = who("bob@corp.example", 40, HISTORY - 1)
    assert entry["idle_seats"] == {
        "count": 3,
        "monthly_cents": 3 * CURSOR_PRICE,
        "seats": [cat, eve, bob],  # never used first (by email), then by last activity
    }
    assert entry["seat_activation"] == {
        "median_days": Decimal(5),  # dan, who joined after the first day of data
        "activated": 1,
        "never_used": {"count": 2, "seats": [cat, eve]},
        "first_use_unobserved": 2,  # ann and bob, there since the first day of data
    }
    spend_by_day = {
        d: v["cents"]
        for d, v in seeded.cursor.daily(
            seeded.cursor_id, [_day(n) for n in range(HISTORY - 1, -1, -1)]
        ).items()
    }
    expected = _expected_anomalies(
        spend_by_day, days, seeded.cursor_data_through, _day(HISTORY - 1)
    )
    assert [a["date"] for a in expected] == [_day(5).isoformat()]
    assert entry["spend_anomalies"]["days"] == expected


async def test_both_providers_side_by_side_and_members_get_403(seeded: Seeded) -> None:
    body = await _insights(seeded)
    assert [(p["provider"], p["integration_id"]) for p in body["providers"]] == [
        ("cursor", str(seeded.cursor_id)),
        ("github_copilot", str(seeded.copilot_id)),
    ]
    assert body["currency"] == "USD"
    for role_policy in (False, True):
        response = await seeded.client.put(
            f"/v1/orgs/{ORG}/ai-analytics/settings",
            headers=auth(ORG),
            json={"members_can_see_spend": role_policy, "cursor_seat_price_cents": CURSOR_PRICE},
        )
        assert response.status_code == 200
        response = await seeded.client.get(INSIGHTS, headers=auth(ORG, "member"))
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "admin_only"
    other = await seeded.client.get(INSIGHTS, headers=auth("another-org"))
    assert other.status_code == 403


async def _read_alerts(settings: MetricsSettings, *, settle_s: float = 1.5) -> list[Alert]:
    """Every alert on the topic so far (reads until nothing arrives for ``settle_s``)."""
    consumer = AIOKafkaConsumer(
        settings.topic(topics.ALERTS),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    alerts: list[Alert] = []
    try:
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < settle_s:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                for record in records:
                    event = decode_event(settings.topic(topics.ALERTS), record.value)
                    assert isinstance(event, Alert)
                    alerts.append(event)
                    idle_since = time.monotonic()
    finally:
        await consumer.stop()
    return alerts


async def test_anomalies_and_idle_seats_are_published_once(seeded: Seeded) -> None:
    publisher: AlertsPublisher = seeded.app.state.alerts
    first = await publisher.run_once()
    alerts = await _read_alerts(seeded.settings)
    keys = [a.alert_key for a in alerts]
    assert len(keys) == len(set(keys)) == first.new == first.published == first.found

    # What the alerts must be: the anomalies of the last 7 days, the idle seats whose idle
    # period began by data_through.
    lookback = [_day(n) for n in range(6, -1, -1)]
    copilot_through = date.fromisoformat(seeded.range_truth["data_through"])
    copilot_anomalies = _expected_anomalies(
        _copilot_spend(seeded), lookback, copilot_through, _day(HISTORY - 1)
    )
    anomalies = {(a.provider, a.day.isoformat()) for a in alerts if a.kind == "spend_anomaly"}
    assert anomalies == {("github_copilot", a["date"]) for a in copilot_anomalies} | {
        ("cursor", _day(5).isoformat())
    }
    assert ("github_copilot", seeded.spike_day.isoformat()) in anomalies
    spike = next(a for a in alerts if a.day == seeded.spike_day and a.kind == "spend_anomaly")
    expected_spike = next(a for a in copilot_anomalies if a["date"] == seeded.spike_day.isoformat())
    assert spike.details.model_dump(exclude={"kind"}) == {
        k: v for k, v in expected_spike.items() if k != "date"
    }

    idle_copilot = set()
    for seat in seeded.seats:
        last = seat["last_activity_at"]
        start = _instant(last if last is not None else seat["created_at"]).date()
        if (
            last is None or _instant(last) < seeded.fetched_at - timedelta(days=30)
        ) and start + timedelta(days=30) <= copilot_through:
            idle_copilot.add((seat["assignee"]["login"], (start + timedelta(days=30)).isoformat()))
    idle = {
        (a.provider, a.details.member.login or a.details.member.email, a.day.isoformat())
        for a in alerts
        if isinstance(a.details, IdleSeatDetails)
    }
    assert idle == {("github_copilot", login, day) for login, day in idle_copilot} | {
        ("cursor", "bob@corp.example", _day(10).isoformat()),
        ("cursor", "cat@corp.example", _day(HISTORY - 1 - 30).isoformat()),
    }

    # A second evaluation finds the same alerts and publishes nothing.
    again = await publisher.run_once()
    assert again == AlertsOutcome(found=first.found, new=0, published=0)
    assert sorted(a.alert_key for a in await _read_alerts(seeded.settings)) == sorted(keys)

    # A crash after the publish but before the mark: the next run publishes the very same
    # event again (same event_id and alert_key), so consumers can dedupe.
    conn = await asyncpg.connect(seeded.dsn)
    try:
        await conn.execute(
            f"UPDATE {seeded.settings.db_schema}.alerts SET published_at = NULL "  # noqa: S608
            "WHERE alert_key = $1",
            spike.alert_key,
        )
    finally:
        await conn.close()
    assert await publisher.run_once() == AlertsOutcome(found=first.found, new=0, published=1)
    replayed = await _read_alerts(seeded.settings)
    assert len(replayed) == len(alerts) + 1
    assert Counter(a.alert_key for a in replayed) == Counter([*keys, spike.alert_key])
    assert [a for a in replayed if a.alert_key == spike.alert_key] == [spike, spike]


async def test_the_periodic_evaluation_publishes_what_is_pending(seeded: Seeded) -> None:
    publisher: AlertsPublisher = seeded.app.state.alerts
    await publisher.run_once()
    before = await _read_alerts(seeded.settings, settle_s=0.5)
    conn = await asyncpg.connect(seeded.dsn)
    schema = seeded.settings.db_schema
    try:
        key = await conn.fetchval(
            f"UPDATE {schema}.alerts SET published_at = NULL "  # noqa: S608 - test schema
            f"WHERE alert_key = (SELECT min(alert_key) FROM {schema}.alerts) RETURNING alert_key"
        )
        job = PeriodicJob("alerts", publisher.run_once, 0.05)
        job.start()
        try:

            async def marked() -> bool:
                published = await conn.fetchval(
                    f"SELECT published_at FROM {schema}.alerts WHERE alert_key = $1",  # noqa: S608
                    key,
                )
                return published is not None

            await wait_until(marked, timeout_s=20, what="the pending alert published")
        finally:
            await job.stop()
    finally:
        await conn.close()
    after = await _read_alerts(seeded.settings, settle_s=0.5)
    assert Counter(a.alert_key for a in after) == Counter(a.alert_key for a in before) + Counter(
        [key]
    )
