"""Erasure of a member (GDPR article 17) through the real app, Kafka and PostgreSQL: 202 and a
status that turns done, exact aggregates without the member, no trace of the member in any
table, tombstoned records dropped (and counted) when they come again, and the request rules."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker
from prometheus_client import REGISTRY

from koalr_contracts import MemberErased, ModelUsage, UsageRecord, decode_event, topics
from koalr_metrics.settings import MetricsSettings
from tests.metrics.support import (
    Truth,
    auth,
    connected,
    documented_body_checker,
    fully_committed,
    make_settings,
    new_id,
    producer,
    publish,
    range_days,
    rollups_match_member_rows,
    running_app,
    snapshot,
    today,
    usage,
    wait_until,
)

pytestmark = pytest.mark.integration

ORG = "org-erasure"
OTHER_ORG = "org-erasure-other"
EMAILS = ("alice@example.com", "bob@example.com", "carol@example.com", "dan@example.com")
LOGINS = ("OctoCat", "hubot", "mona")
MODELS = ("claude-4.5-sonnet", "gpt-5", "o3")
DAYS = 6


@dataclass
class Org:
    client: httpx.AsyncClient
    app: Any
    broker: KafkaBroker
    settings: MetricsSettings
    dsn: str
    truth: Truth
    cursor: UUID
    copilot: UUID
    other: UUID


def _cursor_records(org: str, integration: UUID, fetched_at: datetime) -> list[UsageRecord]:
    out = []
    for d in range(DAYS):
        day = today() - timedelta(days=DAYS - d)
        for m, email in enumerate(EMAILS):
            models = {MODELS[(m + d) % 3]: (10 * (m + 1) + d, f"{m + 1}.{d}5")}
            if (m + d) % 4 == 3:
                models = {}
            out.append(usage(org, integration, day, email, models, fetched_at=fetched_at))
    return out


def _copilot_record(
    org: str, integration: UUID, day: date, login: str, requests: int, *, fetched_at: datetime
) -> UsageRecord:
    return UsageRecord(
        org_id=org,
        integration_id=integration,
        provider="github_copilot",
        day=day,
        member={"login": login},  # type: ignore[arg-type]
        is_active=requests > 0,
        requests=requests,
        models=(ModelUsage(model="gpt-5", requests=requests, charged_cents=Decimal(0)),)
        if requests
        else (),
        charged_cents=Decimal(0),
        fetched_at=fetched_at,
    )


def _copilot_records(org: str, integration: UUID, fetched_at: datetime) -> list[UsageRecord]:
    return [
        _copilot_record(
            org,
            integration,
            today() - timedelta(days=DAYS - d),
            login,
            3 * m + d,
            fetched_at=fetched_at,
        )
        for d in range(DAYS)
        for m, login in enumerate(LOGINS)
    ]


async def _all_stored(settings: MetricsSettings) -> bool:
    kafka = settings.kafka_bootstrap_servers
    return await fully_committed(
        kafka, settings.group(settings.ingest_group), settings.topic(topics.USAGE_RECORDS)
    ) and await fully_committed(
        kafka, settings.group(settings.integrations_group), settings.topic(topics.INTEGRATIONS)
    )


@pytest.fixture(scope="module")
async def org(kafka_bootstrap_servers: str, database_url: str) -> AsyncIterator[Org]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = f"{database_url.rpartition('/')[0]}/{name}"
    settings = make_settings(
        kafka_bootstrap_servers, dsn, f"t{uuid.uuid4().hex[:12]}", erasure_interval_s=0.5
    )
    cursor, copilot, other = new_id(), new_id(), new_id()
    truth = Truth()
    fetched_at = datetime.now(UTC) - timedelta(hours=1)
    try:
        async with producer(settings) as broker, running_app(settings) as (app, client):
            await publish(
                broker,
                settings.topic(topics.INTEGRATIONS),
                [
                    connected(ORG, cursor),
                    connected(ORG, copilot, provider="github_copilot"),
                    connected(OTHER_ORG, other),
                ],
            )
            records = [
                *_cursor_records(ORG, cursor, fetched_at),
                *_copilot_records(ORG, copilot, fetched_at),
                # The same email in another org: an erasure is scoped to its org.
                *_cursor_records(OTHER_ORG, other, fetched_at),
            ]
            truth.add(records)
            await publish(broker, settings.topic(topics.USAGE_RECORDS), records)
            spends = {email: f"{100 * (m + 1)}.5" for m, email in enumerate(EMAILS)}
            await publish(
                broker,
                settings.topic(topics.USAGE_RECORDS),
                [snapshot(ORG, cursor, today().replace(day=1), spends, fetched_at=fetched_at)],
            )
            await wait_until(lambda: _all_stored(settings), what="seed data stored")
            yield Org(client, app, broker, settings, dsn, truth, cursor, copilot, other)
    finally:
        admin = await asyncpg.connect(database_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _erased_counter() -> float:
    value = REGISTRY.get_sample_value(
        "koalr_metrics_records_total", {"stream": "usage", "outcome": "erased_member"}
    )
    return value or 0.0


async def _erase(org: Org, member: str, org_id: str = ORG) -> dict[str, Any]:
    """Request an erasure and wait until it is done; returns its final status."""
    response = await org.client.delete(
        f"/v1/orgs/{org_id}/ai-analytics/members/{member}", headers=auth(org_id)
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert set(accepted) == {"erasure_id", "status"}
    assert accepted["status"] == "pending"
    url = f"/v1/orgs/{org_id}/ai-analytics/erasures/{accepted['erasure_id']}"
    final: dict[str, Any] = {}

    async def done() -> bool:
        status = await org.client.get(url, headers=auth(org_id))
        assert status.status_code == 200, status.text
        final.update(status.json())
        return bool(final["status"] == "done")

    await wait_until(done, what="erasure done")
    return final


async def _summary(org: Org) -> dict[UUID, Any]:
    response = await org.client.get(
        f"/v1/orgs/{ORG}/ai-analytics/summary", headers=auth(ORG), params={"days": DAYS + 1}
    )
    assert response.status_code == 200, response.text
    return {UUID(p["integration_id"]): p for p in response.json()["providers"]}


def _expected(
    truth: Truth, integration: UUID, without: Sequence[str]
) -> tuple[list[int], list[int], list[Decimal]]:
    """DAU, requests and spend per day of the range: the records' truth minus the members."""
    days = range_days(DAYS + 1)
    kept = Truth([r for r in truth.records if r.member.key not in without])
    daily = kept.daily(integration, days)
    return (
        [daily[d]["active"] for d in days],
        [daily[d]["requests"] for d in days],
        [daily[d]["cents"] for d in days],
    )


def _shown(entry: dict[str, Any]) -> tuple[list[int], list[int], list[Decimal]]:
    return (
        [p["active_users"] for p in entry["dau"]],
        [p["requests"] for p in entry["requests"]],
        [Decimal(str(p["cents"])) for p in entry["spend"]["daily"]],
    )


async def _rows_mentioning(org: Org, needle: str) -> list[str]:
    """Every table.column of the metrics schema with a text value containing ``needle``, in
    rows of the erasing org (other orgs' rows, by ``org_id`` or ``integration_id``, aside)."""
    conn = await asyncpg.connect(org.dsn)
    try:
        columns = await conn.fetch(
            "SELECT table_name, column_name, "
            "  EXISTS (SELECT 1 FROM information_schema.columns k WHERE k.table_schema = "
            "    c.table_schema AND k.table_name = c.table_name AND k.column_name = 'org_id') "
            "    AS has_org, "
            "  EXISTS (SELECT 1 FROM information_schema.columns k WHERE k.table_schema = "
            "    c.table_schema AND k.table_name = c.table_name "
            "    AND k.column_name = 'integration_id') AS has_integration "
            "FROM information_schema.columns c "
            "WHERE table_schema = 'metrics' AND data_type IN ('text', 'character varying')"
        )
        found = []
        for c in columns:
            scope = ""
            if c["has_org"]:
                scope = " AND org_id IS DISTINCT FROM $2"
            elif c["has_integration"]:
                scope = " AND integration_id IS DISTINCT FROM $3"
            hits = await conn.fetchval(
                f'SELECT count(*) FROM metrics."{c["table_name"]}" '  # noqa: S608 - catalog names
                f'WHERE lower("{c["column_name"]}") LIKE $1'
                f"{scope} AND $2::text IS NOT NULL AND $3::uuid IS NOT NULL",
                f"%{needle.lower()}%",
                OTHER_ORG,
                org.other,
            )
            if hits:
                found.append(f"{c['table_name']}.{c['column_name']}")
    finally:
        await conn.close()
    return found


async def test_erasing_a_cursor_member_removes_every_row_and_keeps_it_out(org: Org) -> None:
    before = await _summary(org)
    assert _shown(before[org.cursor]) == _expected(org.truth, org.cursor, ())
    member_days = len([r for r in org.truth.final(org.cursor) if r.member.key == EMAILS[0]])
    model_rows = sum(
        len(r.models) for r in org.truth.final(org.cursor) if r.member.key == EMAILS[0]
    )

    # Named with other capitals and spaces: normalised like the usage records.
    final = await _erase(org, "  Alice@Example.COM ")

    assert final["member"] == "a***@example.com"
    assert final["completed_at"] is not None
    # Her member days, their model rows and her row of the cycle snapshot.
    assert final["rows_removed"] == member_days + model_rows + 1
    after = await _summary(org)
    assert _shown(after[org.cursor]) == _expected(org.truth, org.cursor, (EMAILS[0],))
    assert _shown(after[org.copilot]) == _shown(before[org.copilot])
    members = await org.client.get(
        f"/v1/orgs/{ORG}/ai-analytics/members", headers=auth(ORG), params={"days": DAYS + 1}
    )
    assert EMAILS[0] not in members.text
    assert EMAILS[1] in members.text
    assert await _rows_mentioning(org, "alice") == []
    await rollups_match_member_rows(org.dsn, "metrics")
    # The other org's member of the same email is untouched.
    other = await org.client.get(
        f"/v1/orgs/{OTHER_ORG}/ai-analytics/members",
        headers=auth(OTHER_ORG),
        params={"days": DAYS + 1},
    )
    assert EMAILS[0] in other.text

    # A re-sync sends her records again, newer: they are dropped (counted, not dead-lettered).
    counted = _erased_counter()
    again = [
        r.model_copy(update={"fetched_at": datetime.now(UTC)})
        for r in _cursor_records(ORG, org.cursor, datetime.now(UTC))
    ]
    await publish(org.broker, org.settings.topic(topics.USAGE_RECORDS), again)
    await wait_until(lambda: _all_stored(org.settings), what="re-sync stored")
    assert _erased_counter() - counted == member_days
    assert await _rows_mentioning(org, "alice") == []
    after_resync = await _summary(org)
    assert _shown(after_resync[org.cursor]) == _expected(org.truth, org.cursor, (EMAILS[0],))
    await rollups_match_member_rows(org.dsn, "metrics")


async def _member_erasures(org: Org, count: int) -> list[MemberErased]:
    """The first ``count`` events of the member-erasures topic."""
    consumer = AIOKafkaConsumer(
        org.settings.topic(topics.MEMBER_ERASURES),
        bootstrap_servers=org.settings.kafka_bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    events: list[MemberErased] = []
    try:
        while len(events) < count:
            batches = await consumer.getmany(timeout_ms=10_000)
            if not batches:
                break
            for records in batches.values():
                for record in records:
                    event = decode_event(record.topic, record.value)
                    assert isinstance(event, MemberErased)
                    events.append(event)
    finally:
        await consumer.stop()
    return events


async def test_other_services_are_told_by_hash_once_per_integration(org: Org) -> None:
    """The first erasure of the module (alice) was announced on the member-erasures topic: one
    event per integration of the org, naming her by the hash only."""
    expected_hash = hashlib.sha256(f"{ORG}\n{EMAILS[0]}".encode()).hexdigest()
    events = await _member_erasures(org, 2)
    alice = [e for e in events if e.member_hash == expected_hash]
    assert sorted(e.integration_id for e in alice) == sorted([org.cursor, org.copilot])
    assert {e.org_id for e in alice} == {ORG}
    assert EMAILS[0] not in str([e.model_dump() for e in events])


async def test_erasing_a_copilot_member_by_login(org: Org) -> None:
    final = await _erase(org, "github:octocat")

    member_days = len([r for r in org.truth.final(org.copilot) if r.member.login == "OctoCat"])
    models = sum(len(r.models) for r in org.truth.final(org.copilot) if r.member.login == "OctoCat")
    assert final["member"] == "github:o***"
    assert final["rows_removed"] == member_days + models
    after = await _summary(org)
    assert _shown(after[org.copilot]) == _expected(org.truth, org.copilot, ("github:OctoCat",))
    assert await _rows_mentioning(org, "octocat") == []
    await rollups_match_member_rows(org.dsn, "metrics")


async def test_erasure_bodies_are_the_documented_ones(org: Org) -> None:
    spec = (await org.client.get("/openapi.json")).json()
    check = documented_body_checker(spec)
    accepted = await org.client.delete(
        f"/v1/orgs/{ORG}/ai-analytics/members/github:mona", headers=auth(ORG)
    )
    body = check("members/{member}", "delete", accepted)
    status = await org.client.get(
        f"/v1/orgs/{ORG}/ai-analytics/erasures/{body['erasure_id']}", headers=auth(ORG)
    )
    check("erasures/{erasure_id}", "get", status)
    for route, method, response in (
        (
            "members/{member}",
            "delete",
            await org.client.delete(f"/v1/orgs/{ORG}/ai-analytics/members/x", headers=auth(ORG)),
        ),
        (
            "erasures/{erasure_id}",
            "get",
            await org.client.get(f"/v1/orgs/{ORG}/ai-analytics/erasures/nope", headers=auth(ORG)),
        ),
    ):
        assert response.status_code in {404, 422}
        check(route, method, response)


async def test_an_unknown_member_is_accepted_and_done_with_nothing_removed(org: Org) -> None:
    final = await _erase(org, "nobody@example.com")
    assert final["rows_removed"] == 0
    assert await _rows_mentioning(org, "nobody") == []


async def test_erasure_removes_the_members_cross_tool_mapping(org: Org) -> None:
    url = f"/v1/orgs/{ORG}/ai-analytics/identities"
    mapping = [
        {"email": "mapped@example.com", "github_login": "mapped-login"},
        {"email": "kept@example.com", "github_login": "kept-login"},
    ]
    put = await org.client.put(url, headers=auth(ORG), json={"identities": mapping})
    assert put.status_code == 200, put.text

    final = await _erase(org, "mapped@example.com")

    assert final["rows_removed"] == 1  # the mapping row: the member has no usage stored
    left = await org.client.get(url, headers=auth(ORG))
    assert left.json() == {"identities": [mapping[1]]}
    erased = await _erase(org, "github:kept-login")
    assert erased["rows_removed"] == 1
    assert (await org.client.get(url, headers=auth(ORG))).json() == {"identities": []}


async def test_erasure_requests_are_validated_and_scoped(org: Org) -> None:
    base = f"/v1/orgs/{ORG}/ai-analytics"
    for bad in ("not-an-email", "@example.com", "a@", "github:", "github:bad login", "a@b@c"):
        response = await org.client.delete(f"{base}/members/{bad}", headers=auth(ORG))
        assert response.status_code == 422, bad
        assert response.json()["error"]["code"] == "invalid_request"
    member = await org.client.delete(f"{base}/members/bob@example.com", headers=auth(ORG, "member"))
    assert member.status_code == 403
    assert member.json()["error"]["code"] == "admin_only"
    elsewhere = await org.client.delete(f"{base}/members/bob@example.com", headers=auth(OTHER_ORG))
    assert elsewhere.status_code == 403

    accepted = await org.client.delete(f"{base}/members/dan@example.com", headers=auth(ORG))
    erasure_id = accepted.json()["erasure_id"]
    mine = await org.client.get(f"{base}/erasures/{erasure_id}", headers=auth(ORG))
    assert mine.status_code == 200
    theirs = await org.client.get(
        f"/v1/orgs/{OTHER_ORG}/ai-analytics/erasures/{erasure_id}", headers=auth(OTHER_ORG)
    )
    assert theirs.status_code == 404
    assert theirs.json()["error"]["code"] == "not_found"
    garbage = await org.client.get(f"{base}/erasures/not-a-uuid", headers=auth(ORG))
    assert garbage.status_code == 404
    as_member = await org.client.get(f"{base}/erasures/{erasure_id}", headers=auth(ORG, "member"))
    assert as_member.status_code == 403
