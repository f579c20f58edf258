"""The real broker works the way the services rely on it."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import pytest
import structlog
from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaMessage

from koalr_contracts import UsageRecord, decode_event, topics
from koalr_runtime.kafka import ensure_topics, make_broker, publish_event, wait_for_kafka
from koalr_runtime.settings import ServiceSettings
from tests.contracts.factories import usage_record_fields

pytestmark = pytest.mark.integration


async def test_faststream_round_trip_of_a_contract_event(
    kafka_bootstrap_servers: str, topic_namespace: str
) -> None:
    settings = ServiceSettings(
        kafka_bootstrap_servers=kafka_bootstrap_servers, topic_namespace=topic_namespace
    )
    topic = settings.topic(topics.USAGE_RECORDS)
    await ensure_topics(kafka_bootstrap_servers, [topic], partitions=3)
    broker = make_broker(settings, client_id="smoke")
    received: asyncio.Queue[tuple[UsageRecord, dict[str, str], dict[str, object]]] = asyncio.Queue()

    @broker.subscriber(topic, group_id=f"{topic_namespace}-smoke", auto_offset_reset="earliest")
    async def on_record(msg: KafkaMessage) -> None:
        event = decode_event(topic, msg.body)
        assert isinstance(event, UsageRecord)
        await received.put((event, dict(msg.headers), structlog.contextvars.get_contextvars()))

    sent = UsageRecord(**usage_record_fields())
    async with broker:
        await broker.start()
        await publish_event(broker, topic, sent)
        got, headers, log_context = await asyncio.wait_for(received.get(), timeout=30)
    assert got == sent
    assert log_context == {"correlation_id": str(sent.correlation_id), "topic": topic}
    assert headers["event_type"] == "UsageRecord"
    assert headers["correlation_id"] == str(sent.correlation_id)


async def test_keyed_messages_keep_per_key_order_across_partitions(
    kafka_bootstrap_servers: str, topic_namespace: str
) -> None:
    settings = ServiceSettings(
        kafka_bootstrap_servers=kafka_bootstrap_servers, topic_namespace=topic_namespace
    )
    topic = settings.topic("order-check")
    await ensure_topics(kafka_bootstrap_servers, [topic], partitions=6)
    keys = [f"integration-{i}" for i in range(12)]
    per_key = 50
    broker = make_broker(settings, client_id="smoke-order")
    async with broker:
        await broker.start()
        futures = []
        for seq in range(per_key):
            for key in keys:
                payload = f"{key}:{seq}".encode()
                futures.append(
                    await broker.publish(payload, topic, key=key.encode(), no_confirm=True)
                )
        await asyncio.gather(*futures)

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap_servers,
        group_id=f"{topic_namespace}-order",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: dict[str, list[int]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    try:
        deadline = time.monotonic() + 30
        while sum(map(len, seen.values())) < len(keys) * per_key and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                for record in records:
                    key, seq = record.value.decode().rsplit(":", 1)
                    seen[key].append(int(seq))
                    partitions[key].add(tp.partition)
    finally:
        await consumer.stop()
    assert dict(seen) == {k: list(range(per_key)) for k in keys}
    assert all(len(p) == 1 for p in partitions.values())
    assert len(set().union(*partitions.values())) > 1, "keys should spread over partitions"


async def test_unreachable_broker_fails_fast_with_a_clear_message() -> None:
    started = time.monotonic()
    with pytest.raises(ConnectionError, match="make services-up"):
        await wait_for_kafka("127.0.0.1:1", timeout_s=3)
    assert time.monotonic() - started < 10
