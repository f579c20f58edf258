"""Kafka -> metrics -> PostgreSQL -> HTTP, with exact numbers against ground truth computed
from the published records: redelivered, replayed, out-of-order and overlapping records, a
poison message between good ones, projections, and a replay with a fresh consumer group."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from koalr_contracts import UsageRecord, encode_event, topics
from koalr_metrics.settings import MetricsSettings
from tests.metrics.support import (
    Truth,
    all_committed,
    auth,
    connected,
    disconnected,
    make_settings,
    new_id,
    producer,
    publish,
    range_days,
    read_dead_letters,
    rollups_match_member_rows,
    running_app,
    snapshot,
    sync_status,
    today,
    usage,
    wait_until,
)

pytestmark = pytest.mark.integration

ORG = "org-a"
MODELS = ("claude-4.5-sonnet", "gpt-5", "o3", "cursor-small")
DAYS = 7


def _member_records(
    integration_id: UUID, fetched_at: datetime, *, seed: int, members: int = 6
) -> list[UsageRecord]:
    """Members x the last 5 days, with varied models; member 5 is inactive on even days."""
    out = []
    for day_index in range(5):
        day = today() - timedelta(days=5 - day_index)
        for m in range(members):
            if m == 5 and day_index % 2 == 0:
                models: dict[str, tuple[int, str]] = {}
            else:
                models = {
                    MODELS[(m + k + seed) % len(MODELS)]: (
                        (m + 1) * (k + 2) + day_index + seed,
                        f"{(m + 1) * (k + 1)}.{(day_index * 7 + k + seed) % 100:02d}5",
                    )
                    for k in range(1 + (m + day_index) % 3)
                }
            out.append(
                usage(
                    ORG,
                    integration_id,
                    day,
                    f"member{m}@example.com",
                    models,
                    fetched_at=fetched_at,
                )
            )
    return out


async def _summary(client: httpx.AsyncClient, role: str = "admin", days: int = DAYS) -> Any:
    response = await client.get(
        f"/v1/orgs/{ORG}/ai-analytics/summary", params={"days": days}, headers=auth(ORG, role)
    )
    assert response.status_code == 200, response.text
    return json.loads(response.content, parse_float=Decimal)


def _expected_provider(truth: Truth, integration_id: UUID) -> dict[str, Any]:
    days = range_days(DAYS)
    daily = truth.daily(integration_id, days)
    models = truth.models(integration_id, days)
    total = sum(d["requests"] for d in daily.values())
    return {
        "dau": [{"date": d.isoformat(), "active_users": daily[d]["active"]} for d in days],
        "requests": [{"date": d.isoformat(), "requests": daily[d]["requests"]} for d in days],
        "models": [
            {
                "model": name,
                "requests": requests,
                "share": round(Decimal(requests) / Decimal(total), 4),
            }
            for name, requests in models
        ],
        "total_cents": sum((d["cents"] for d in daily.values()), Decimal(0)),
        "daily": [{"date": d.isoformat(), "cents": daily[d]["cents"]} for d in days],
        "days_with_data": sum(1 for d in days if daily[d]["rows"] > 0),
    }


def _check_provider(entry: dict[str, Any], expected: dict[str, Any]) -> None:
    assert entry["dau"] == expected["dau"]
    assert entry["requests"] == expected["requests"]
    assert entry["models"] == expected["models"]
    assert sum(m["requests"] for m in entry["models"]) == sum(
        p["requests"] for p in entry["requests"]
    )
    assert entry["spend"]["total_cents"] == expected["total_cents"]
    assert entry["spend"]["daily"] == expected["daily"]
    assert entry["freshness"]["days_with_data"] == expected["days_with_data"]
    assert entry["freshness"]["days_in_range"] == DAYS


async def test_exact_totals_through_kafka_with_duplicates_poison_and_replay(
    kafka_bootstrap_servers: str, fresh_database_url: str, topic_namespace: str
) -> None:
    settings = make_settings(kafka_bootstrap_servers, fresh_database_url, topic_namespace)
    usage_topic = settings.topic(topics.USAGE_RECORDS)
    truth = Truth()
    i1, i2, i3, i4 = new_id(), new_id(), new_id(), new_id()
    t0 = datetime.now(UTC) - timedelta(hours=3)

    first = _member_records(i1, t0, seed=0)
    # Overlapping re-sync of the last two days: newer, different figures, fewer models.
    resync = [
        usage(
            ORG,
            r.integration_id,
            r.day,
            r.member.key,
            {
                m.model: (m.requests + 3, str(m.charged_cents + Decimal("0.125")))
                for m in r.models[:1]
            },
            fetched_at=t0 + timedelta(hours=1),
        )
        for r in first
        if r.day >= today() - timedelta(days=2)
    ]
    day1 = today() - timedelta(days=4)
    newer = usage(
        ORG,
        i1,
        day1,
        "member2@example.com",
        {"o3": (40, "12.5")},
        fetched_at=t0 + timedelta(hours=2),
    )
    older = usage(
        ORG,
        i1,
        day1,
        "member2@example.com",
        {"o3": (99, "99")},
        fetched_at=t0 + timedelta(minutes=5),
    )
    day2 = today() - timedelta(days=3)
    tie_a = usage(
        ORG,
        i1,
        day2,
        "member3@example.com",
        {"gpt-5": (7, "1.1")},
        fetched_at=t0 + timedelta(hours=2),
    )
    tie_b = usage(
        ORG,
        i1,
        day2,
        "member3@example.com",
        {"gpt-5": (8, "2.2"), "o3": (1, "0.01")},
        fetched_at=t0 + timedelta(hours=2),
    )
    unknown_yet = _member_records(i3, t0, seed=1, members=5)
    bad = json.loads(encode_event(first[0]))
    bad["requests"] = bad["requests"] + 1

    async with producer(settings) as broker:
        await publish(
            broker,
            settings.topic(topics.INTEGRATIONS),
            [
                connected(ORG, i1),
                connected(ORG, i2),
                connected(ORG, i4),
                disconnected(ORG, i2, purge=False),
                disconnected(ORG, i4, purge=True),
            ],
        )
        await publish(broker, usage_topic, first[:10])
        poison_meta = [
            await broker.publish(b"not json {", usage_topic, key=str(i1).encode()),
            await broker.publish(json.dumps(bad).encode(), usage_topic, key=str(i1).encode()),
        ]
        await publish(broker, usage_topic, first[10:])
        await publish(broker, usage_topic, first[:3])  # redelivered duplicates
        await publish(broker, usage_topic, [newer, older, tie_a, tie_b])
        await publish(broker, usage_topic, resync)
        await publish(broker, usage_topic, unknown_yet)
        await publish(
            broker,
            usage_topic,
            [
                snapshot(
                    ORG,
                    i1,
                    today().replace(day=1),
                    {"member0@example.com": "120.5", "member1@example.com": "30"},
                    fetched_at=t0 + timedelta(hours=2),
                ),
                snapshot(
                    ORG, i1, today().replace(day=1), {"member0@example.com": "1"}, fetched_at=t0
                ),
            ],
        )
        last_success = t0 + timedelta(hours=2, minutes=30)
        await publish(
            broker,
            settings.topic(topics.SYNC_STATUS),
            [
                sync_status(ORG, i1, "syncing"),
                sync_status(
                    ORG,
                    i1,
                    "idle",
                    data_through=today() - timedelta(days=1),
                    last_success_at=last_success,
                ),
            ],
        )
        truth.add([*first, *first[:3], newer, older, tie_a, tie_b, *resync, *unknown_yet])

        async with running_app(settings) as (app, client):
            await wait_until(lambda: all_committed(settings), what="all offsets committed")
            body = await _summary(client)
            assert [p["integration_id"] for p in body["providers"]] == [str(i1)]
            entry = body["providers"][0]
            _check_provider(entry, _expected_provider(truth, i1))
            assert entry["spend"]["cycle"] == {
                "start": today().replace(day=1).isoformat(),
                "total_cents": Decimal("150.5"),
            }
            assert entry["freshness"]["state"] == "idle"
            assert entry["freshness"]["data_through"] == (today() - timedelta(days=1)).isoformat()
            assert entry["freshness"]["last_synced_at"] == last_success.isoformat().replace(
                "+00:00", "Z"
            )
            # The newer record won over the older one published after it, the later tie won.
            by_day = {p["date"]: p["requests"] for p in entry["requests"]}
            final = truth.final(i1)
            assert tie_b in final
            assert newer in final
            assert tie_a not in final
            assert older not in final
            assert by_day[day2.isoformat()] == sum(
                r.requests for r in truth.final(i1) if r.day == day2
            )

            letters = await read_dead_letters(
                kafka_bootstrap_servers, settings.topic(topics.DEAD_LETTERS), expected=2
            )
            assert sorted((d.source_partition, d.source_offset) for d in letters) == sorted(
                (m.partition, m.offset) for m in poison_meta
            )
            assert {d.source_topic for d in letters} == {usage_topic}
            assert {d.consumer_group for d in letters} == {settings.group(settings.ingest_group)}
            by_offset = {(d.source_partition, d.source_offset): d for d in letters}
            not_json = by_offset[(poison_meta[0].partition, poison_meta[0].offset)]
            invalid = by_offset[(poison_meta[1].partition, poison_meta[1].offset)]
            assert "Invalid JSON" in not_json.reason
            assert not_json.payload == "not json {"
            assert "the models' requests add up to" in invalid.reason
            assert {d.error_type for d in letters} == {"EventDecodeError"}

            # The integration known only from usage records shows once it is connected.
            await publish(broker, settings.topic(topics.INTEGRATIONS), [connected(ORG, i3)])
            await wait_until(lambda: all_committed(settings), what="i3 connected")
            body = await _summary(client)
            shown = {p["integration_id"]: p for p in body["providers"]}
            assert set(shown) == {str(i1), str(i3)}
            _check_provider(shown[str(i3)], _expected_provider(truth, i3))
            assert shown[str(i3)]["freshness"]["state"] == "pending"

            # Records for a purged integration are dropped.
            await publish(broker, usage_topic, _member_records(i4, t0, seed=2, members=2))
            await wait_until(lambda: all_committed(settings), what="purged records consumed")
            conn = await asyncpg.connect(fresh_database_url)
            try:
                assert (
                    await conn.fetchval(
                        "SELECT count(*) FROM metrics.member_days WHERE integration_id = $1", i4
                    )
                    == 0
                )
                assert (
                    await conn.fetchval(
                        "SELECT status FROM metrics.integrations WHERE integration_id = $1", i4
                    )
                    == "purged"
                )
            finally:
                await conn.close()
            await rollups_match_member_rows(fresh_database_url, "metrics")
            members = await client.get(
                f"/v1/orgs/{ORG}/ai-analytics/members", params={"days": DAYS}, headers=auth(ORG)
            )
            assert members.status_code == 200
            member_doc = json.loads(members.content, parse_float=Decimal)
            snapshot_before = body
            members_before = member_doc

    assert _expected_members(truth, [i1, i3]) == member_doc["members"]

    # Replay the whole topics with new consumer groups into a fresh schema: identical answers.
    replay = make_settings(
        kafka_bootstrap_servers,
        fresh_database_url,
        topic_namespace,
        db_schema="metrics_replay",
        ingest_group="metrics-ingest-replay",
        integrations_group="metrics-integrations-replay",
        sync_status_group="metrics-sync-status-replay",
    )
    async with running_app(replay) as (_, client):
        await wait_until(lambda: all_committed(replay), what="replay committed")
        assert await _summary(client) == snapshot_before
        members = await client.get(
            f"/v1/orgs/{ORG}/ai-analytics/members", params={"days": DAYS}, headers=auth(ORG)
        )
        assert json.loads(members.content, parse_float=Decimal) == members_before
    await rollups_match_member_rows(fresh_database_url, "metrics_replay")

    # Reset the original group to the start and replay into the same database: still identical.
    await _reset_group(settings, settings.group(settings.ingest_group), usage_topic)
    async with running_app(settings) as (app, client):
        await wait_until(
            lambda: _ingested_at_least(app, len(truth.records) + 2 + 2 + 10),
            what="whole topic re-read",
        )
        await wait_until(lambda: all_committed(settings), what="replay committed")
        assert await _summary(client) == snapshot_before
    await rollups_match_member_rows(fresh_database_url, "metrics")


async def _ingested_at_least(app: Any, count: int) -> bool:
    return bool(app.state.ingest.stats.records >= count)


async def _reset_group(settings: MetricsSettings, group: str, topic: str) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
        consumer.assign(partitions)
        await consumer.commit(dict.fromkeys(partitions, 0))
    finally:
        await consumer.stop()


def _expected_members(truth: Truth, integration_ids: list[UUID]) -> list[dict[str, Any]]:
    days = set(range_days(DAYS))
    rows = []
    for integration_id in integration_ids:
        per_member: dict[str, list[UsageRecord]] = {}
        for r in truth.final(integration_id):
            if r.day in days:
                per_member.setdefault(r.member.key, []).append(r)
        for email, records in per_member.items():
            model_totals: dict[str, int] = {}
            for r in records:
                for m in r.models:
                    model_totals[m.model] = model_totals.get(m.model, 0) + m.requests
            ranked = sorted(
                ((n, q) for n, q in model_totals.items() if q > 0), key=lambda kv: (-kv[1], kv[0])
            )
            latest = max(records, key=lambda r: r.day)
            rows.append(
                {
                    "provider": "cursor",
                    "email": email,
                    "login": None,
                    "name": latest.member.name,
                    "active_days": sum(1 for r in records if r.is_active),
                    "requests": sum(r.requests for r in records),
                    "top_model": ranked[0][0] if ranked else None,
                    "spend_cents": sum((r.charged_cents for r in records), Decimal(0)),
                }
            )
    return sorted(rows, key=lambda m: (-m["requests"], m["provider"], m["email"], m["name"]))
