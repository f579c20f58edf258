"""Retention: the per-org ``retention_days`` setting and the job that deletes older member days
with their models, rollups and day spend, against the real PostgreSQL (seeded through the
ingest's own SQL), with exact counts of what remains."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import asyncpg
import httpx
import pytest

from koalr_metrics.ingest import DaySpendRow, usage_copy
from koalr_metrics.privacy_repository import PrivacyRepository
from koalr_metrics.repository import MetricsRepository, integration_lock_key
from koalr_metrics.retention import apply_retention
from tests.metrics.support import auth, make_settings, new_id, running_app, today, usage

pytestmark = pytest.mark.integration

DEFAULT_ORG = "org-retention-default"
SHORT_ORG = "org-retention-short"
EMAILS = ("ann@example.com", "ben@example.com", "cleo@example.com")
#: Days ago seeded per org; the retention keeps days from (today - retention_days) on. Days next
#: to the cut-off are left out so the test does not depend on the second it runs at.
SEEDED = {
    DEFAULT_ORG: (450, 402, 398, 10),
    SHORT_ORG: (100, 40, 33, 29, 1),
}
EXPIRED = {DEFAULT_ORG: (450, 402), SHORT_ORG: (100, 40, 33)}
#: Rows one seeded day holds in each table.
PER_DAY = {
    "member_days": len(EMAILS),
    "member_day_models": 2 * len(EMAILS),
    "daily_rollups": 1,
    "daily_model_rollups": 2,
    "day_spend": 1,
}
TABLES = ("member_days", "member_day_models", "daily_rollups", "daily_model_rollups", "day_spend")


@dataclass
class Seeded:
    client: httpx.AsyncClient
    dsn: str
    privacy: PrivacyRepository
    integrations: dict[str, UUID]


@pytest.fixture
async def seeded(kafka_bootstrap_servers: str, database_url: str) -> AsyncIterator[Seeded]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = f"{database_url.rpartition('/')[0]}/{name}"
    # The job's own schedule stays out of the way: the test runs it once, by hand.
    settings = make_settings(
        kafka_bootstrap_servers, dsn, f"t{uuid.uuid4().hex[:12]}", retention_interval_s=86_400
    )
    try:
        async with running_app(settings) as (app, client):
            repository: MetricsRepository = app.state.repository
            integrations = {org: new_id() for org in SEEDED}
            fetched_at = datetime.now(UTC)
            for org, days_ago in SEEDED.items():
                integration = integrations[org]
                records = [
                    usage(
                        org,
                        integration,
                        today() - timedelta(days=ago),
                        email,
                        {"gpt-5": (m + 1, "1.5"), "o3": (ago % 7 + m, "0.25")},
                        fetched_at=fetched_at,
                    )
                    for ago in days_ago
                    for m, email in enumerate(EMAILS)
                ]
                spend = [
                    DaySpendRow(
                        integration,
                        org,
                        "cursor",
                        today() - timedelta(days=ago),
                        "premium_requests",
                        Decimal(250),
                        fetched_at,
                    )
                    for ago in days_ago
                ]
                await repository.store_usage(usage_copy(records), [], [], spend)
            yield Seeded(client, dsn, app.state.privacy, integrations)
    finally:
        admin = await asyncpg.connect(database_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _counts(dsn: str, integration: UUID) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            table: await conn.fetchval(
                f"SELECT count(*) FROM metrics.{table} WHERE integration_id = $1",  # noqa: S608
                integration,
            )
            for table in TABLES
        }
    finally:
        await conn.close()


async def _days(dsn: str, integration: UUID) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT DISTINCT day FROM metrics.member_days WHERE integration_id = $1 ORDER BY day",
            integration,
        )
    finally:
        await conn.close()
    return sorted(((today() - r["day"]).days for r in rows), reverse=True)


async def test_the_setting_is_validated_and_read_back(seeded: Seeded) -> None:
    url = f"/v1/orgs/{SHORT_ORG}/ai-analytics/settings"
    default = await seeded.client.get(url, headers=auth(SHORT_ORG))
    assert default.json()["retention_days"] == 400
    for bad in (30, 3651, "90", 40.5):
        refused = await seeded.client.put(
            url, headers=auth(SHORT_ORG), json={"retention_days": bad}
        )
        assert refused.status_code == 422, bad
        assert refused.json()["error"]["code"] == "invalid_request"
    saved = await seeded.client.put(url, headers=auth(SHORT_ORG), json={"retention_days": 31})
    assert saved.status_code == 200
    assert saved.json() == {
        "org_id": SHORT_ORG,
        "members_can_see_spend": False,
        "min_group_size": 5,
        "cursor_seat_price_cents": 4000,
        "retention_days": 31,
    }
    assert (await seeded.client.get(url, headers=auth(SHORT_ORG))).json()["retention_days"] == 31


async def test_one_run_deletes_exactly_the_expired_days_in_batches(seeded: Seeded) -> None:
    put = await seeded.client.put(
        f"/v1/orgs/{SHORT_ORG}/ai-analytics/settings",
        headers=auth(SHORT_ORG),
        json={"retention_days": 31},
    )
    assert put.status_code == 200
    before = {org: await _counts(seeded.dsn, i) for org, i in seeded.integrations.items()}
    for org, integration in seeded.integrations.items():
        assert before[org] == {t: n * len(SEEDED[org]) for t, n in PER_DAY.items()}
        assert await _days(seeded.dsn, integration) == list(SEEDED[org])

    run = await apply_retention(seeded.privacy, default_days=400, batch_days=2)

    expired_days = sum(len(days) for days in EXPIRED.values())
    assert run.days == expired_days
    assert run.member_days == expired_days * len(EMAILS)
    # Two days per transaction: 2 days in one batch, 3 days in two.
    assert run.batches == 3
    assert run.integrations == 2
    removed = 0
    for org, integration in seeded.integrations.items():
        kept = [d for d in SEEDED[org] if d not in EXPIRED[org]]
        assert await _days(seeded.dsn, integration) == kept
        after = await _counts(seeded.dsn, integration)
        assert after == {t: n * len(kept) for t, n in PER_DAY.items()}
        removed += sum(before[org].values()) - sum(after.values())
    assert run.rows_removed == removed

    again = await apply_retention(seeded.privacy, default_days=400, batch_days=2)
    assert (again.days, again.rows_removed, again.batches) == (0, 0, 0)


async def test_an_integration_being_written_is_left_for_the_next_run(seeded: Seeded) -> None:
    writing = seeded.integrations[DEFAULT_ORG]
    ingest = await asyncpg.connect(seeded.dsn)
    try:
        # The ingest holds this integration's write lock: retention does not wait for it.
        await ingest.execute("SELECT pg_advisory_lock($1)", integration_lock_key(writing))
        run = await apply_retention(seeded.privacy, default_days=400, batch_days=2)
        assert run.busy == 1
        assert await _days(seeded.dsn, writing) == list(SEEDED[DEFAULT_ORG])
        await ingest.execute("SELECT pg_advisory_unlock($1)", integration_lock_key(writing))
    finally:
        await ingest.close()
    again = await apply_retention(seeded.privacy, default_days=400, batch_days=2)
    assert again.busy == 0
    kept = [d for d in SEEDED[DEFAULT_ORG] if d not in EXPIRED[DEFAULT_ORG]]
    assert await _days(seeded.dsn, writing) == kept
