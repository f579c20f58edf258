"""A usage batch whose write fails while the next batch is already read: nothing of either is
committed, both come again in offset order, and the totals are exact (nothing skipped, nothing
counted twice)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import asyncpg
import pytest
from aiokafka import TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import ConsumerRecord

from koalr_contracts import UsageRecord, topics
from koalr_metrics.handlers import batch_follows, offset_ranges, rewind_targets
from koalr_metrics.repository import integration_lock_key
from tests.metrics.support import (
    Truth,
    auth,
    committed_offsets,
    connected,
    fully_committed,
    make_settings,
    new_id,
    producer,
    publish,
    range_days,
    rollups_match_member_rows,
    running_app,
    today,
    usage,
    wait_until,
)

ORG = "org-redelivery"
DAYS = 7
_WAITING_WRITER = """
SELECT pid FROM pg_locks
WHERE locktype = 'advisory' AND NOT granted
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def _two_integrations_on_two_partitions() -> tuple[UUID, UUID]:
    """Two integration ids whose records land on partitions 0 and 1 (keyed by the id)."""
    partitioner = DefaultPartitioner()
    by_partition: dict[int, UUID] = {}
    while len(by_partition) < 2:
        integration = new_id()
        by_partition.setdefault(partitioner(str(integration).encode(), [0, 1], [0, 1]), integration)
    return by_partition[0], by_partition[1]


def _records(integration_id: UUID, fetched_at: datetime, base: int) -> list[UsageRecord]:
    return [
        usage(
            ORG,
            integration_id,
            today() - timedelta(days=day),
            f"dev{m}@example.com",
            {"gpt-5": (base + m + day, f"{base}.{m}{day}"), "o3": (m % 3, "0.25")},
            fetched_at=fetched_at,
        )
        for day in (1, 2, 3)
        for m in range(10)
    ]


def test_a_batch_read_before_a_seek_goes_back_on_every_partition_it_had_moved() -> None:
    p0, p1 = TopicPartition("usage", 0), TopicPartition("usage", 1)
    stale = offset_ranges(
        [
            ConsumerRecord("usage", partition, offset, 0, 0, b"k", b"{}", None, 1, 2, ())
            for partition, offset in [(0, 10), (1, 0), (0, 11), (1, 1), (0, 12), (1, 2)]
        ]
    )
    assert stale == {p0: (10, 12), p1: (0, 2)}
    assert batch_follows(stale, {p0: 13, p1: 3})
    # The batch before it (partition 0 only) failed and sought partition 0 back to 0: the
    # stale batch no longer follows, and partition 1 goes back too; partition 0 stays at 0.
    assert not batch_follows(stale, {p0: 0, p1: 3})
    assert rewind_targets(stale, {p0: 0, p1: 3}) == {p1: 0}
    # The failed batch itself is sought back to its first offsets.
    assert rewind_targets({p0: (0, 9)}, {p0: 13, p1: 3}) == {p0: 0}
    # A partition a rebalance took away is left to its new owner.
    assert not batch_follows(stale, {p1: 3})
    assert rewind_targets(stale, {p1: 3}) == {p1: 0}


@pytest.mark.integration
@pytest.mark.timeout(120)
async def test_a_failed_write_sends_back_the_batch_read_after_it(
    kafka_bootstrap_servers: str, fresh_database_url: str, topic_namespace: str
) -> None:
    # Batches of 10 records over two partitions: while a batch of the blocked integration is
    # being written, the next batch (perhaps of the other partition only) is already read.
    settings = make_settings(
        kafka_bootstrap_servers,
        fresh_database_url,
        topic_namespace,
        topic_partitions=2,
        ingest_max_records=10,
    )
    usage_topic = settings.topic(topics.USAGE_RECORDS)
    group = settings.group(settings.ingest_group)
    blocked, other = _two_integrations_on_two_partitions()
    t0 = datetime.now(UTC) - timedelta(hours=2)
    records: list[UsageRecord] = []
    for integration in (blocked, other):
        records += _records(integration, t0, 10)
        records += _records(integration, t0 + timedelta(hours=1), 50)[:10]  # newer, one day
    truth = Truth()
    truth.add(records)

    blocker = await asyncpg.connect(fresh_database_url)
    try:
        async with producer(settings) as broker, running_app(settings) as (app, client):
            stats = app.state.ingest.stats
            await publish(
                broker,
                settings.topic(topics.INTEGRATIONS),
                [connected(ORG, blocked), connected(ORG, other)],
            )
            # Hold one integration's write lock: a transaction writing it waits on the lock.
            await blocker.execute("SELECT pg_advisory_lock($1)", integration_lock_key(blocked))
            await publish(broker, usage_topic, records)

            async def write_waits_and_next_batch_read() -> bool:
                waiting = await blocker.fetch(_WAITING_WRITER)
                return bool(waiting) and stats.batches_received - stats.batches >= 2

            await wait_until(write_waits_and_next_batch_read, what="a blocked write, next read")
            committed_while_blocked = await committed_offsets(
                kafka_bootstrap_servers, group, usage_topic
            )
            # The write fails (its connection is terminated), then the lock is released.
            (pid,) = [row["pid"] for row in await blocker.fetch(_WAITING_WRITER)]
            assert await blocker.fetchval("SELECT pg_terminate_backend($1)", pid)
            await blocker.execute("SELECT pg_advisory_unlock($1)", integration_lock_key(blocked))
            await wait_until(
                lambda: fully_committed(
                    kafka_bootstrap_servers, group, usage_topic, records=len(records)
                ),
                what="every record committed",
            )
            assert stats.failed_attempts >= 1
            assert stats.batches_left_for_later >= 1
            response = await client.get(
                f"/v1/orgs/{ORG}/ai-analytics/summary", params={"days": DAYS}, headers=auth(ORG)
            )
            assert response.status_code == 200
            body = json.loads(response.content, parse_float=Decimal)
    finally:
        await blocker.close()

    # Nothing of the blocked integration's partition was committed while its write waited.
    assert committed_while_blocked.get(0, 0) == 0
    days = range_days(DAYS)
    providers = {UUID(p["integration_id"]): p for p in body["providers"]}
    assert set(providers) == {blocked, other}
    for integration, entry in providers.items():
        daily = truth.daily(integration, days)
        assert entry["requests"] == [
            {"date": d.isoformat(), "requests": daily[d]["requests"]} for d in days
        ]
        assert entry["dau"] == [
            {"date": d.isoformat(), "active_users": daily[d]["active"]} for d in days
        ]
        assert entry["spend"]["daily"] == [
            {"date": d.isoformat(), "cents": daily[d]["cents"]} for d in days
        ]
        models = [(m["model"], m["requests"]) for m in entry["models"]]
        assert models == truth.models(integration, days)
    await rollups_match_member_rows(fresh_database_url, settings.db_schema)
