"""``koalr lag``: committed against end offsets, per consumer group and partition."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from koalr_contracts import topics
from koalr_runtime.kafka import ensure_topics
from tests.cli.conftest import Koalr

pytestmark = pytest.mark.integration


async def produce(servers: str, topic: str, per_partition: dict[int, int]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=servers)
    await producer.start()
    try:
        for partition, count in per_partition.items():
            for i in range(count):
                await producer.send_and_wait(topic, f"m{i}".encode(), partition=partition)
    finally:
        await producer.stop()


async def commit(servers: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
    finally:
        await consumer.stop()


async def test_lag_shows_committed_end_and_lag_per_group_and_partition(
    koalr: Koalr, kafka_bootstrap_servers: str, topic_namespace: str
) -> None:
    jobs = f"{topic_namespace}.{topics.SYNC_JOBS}"
    records = f"{topic_namespace}.{topics.USAGE_RECORDS}"
    await ensure_topics(kafka_bootstrap_servers, [jobs, records], partitions=2)
    await produce(kafka_bootstrap_servers, jobs, {0: 5, 1: 3})
    await produce(kafka_bootstrap_servers, records, {0: 4})
    workers = f"{topic_namespace}.syncer-workers"
    ingest = f"{topic_namespace}.metrics-usage"
    await commit(
        kafka_bootstrap_servers, workers, {TopicPartition(jobs, 0): 3, TopicPartition(jobs, 1): 3}
    )
    await commit(kafka_bootstrap_servers, ingest, {TopicPartition(records, 0): 1})

    out = await koalr("--json", "lag")

    assert out.exit_code == 0, out.stderr
    assert out.json() == {
        "partitions": [
            {"group": ingest, "topic": records, "partition": 0, "committed": 1, "end": 4, "lag": 3},
            {"group": workers, "topic": jobs, "partition": 0, "committed": 3, "end": 5, "lag": 2},
            {"group": workers, "topic": jobs, "partition": 1, "committed": 3, "end": 3, "lag": 0},
        ],
        "total_lag": 5,
    }

    one = await koalr("lag", "--group", workers)
    assert one.exit_code == 0, one.stderr
    assert one.stdout.splitlines() == [
        f"GROUP{' ' * (len(workers) - 5)}  TOPIC{' ' * (len(jobs) - 5)}  PARTITION  COMMITTED  END  LAG",
        f"{workers}  {jobs}  0          3          5    2",
        f"{workers}  {jobs}  1          3          3    0",
    ]


async def test_lag_of_an_unknown_group_is_a_failure_with_a_code(koalr: Koalr) -> None:
    out = await koalr("--json", "lag", "--group", "nobody-consumes-here")

    assert out.exit_code == 1
    assert out.json()["error"]["code"] == "unknown_group"


async def test_lag_names_the_broker_it_could_not_reach(koalr: Koalr) -> None:
    koalr.env["KAFKA_BOOTSTRAP_SERVERS"] = "127.0.0.1:1"
    koalr.env["KOALR_TIMEOUT_S"] = "2"

    out = await koalr("lag")

    assert out.exit_code == 1
    assert out.stderr.startswith(
        "error[kafka_unreachable]: No Kafka broker answered at 127.0.0.1:1"
    )


async def test_offsets_a_group_kept_of_a_deleted_topic_are_left_out(
    koalr: Koalr, kafka_bootstrap_servers: str, topic_namespace: str
) -> None:
    jobs = f"{topic_namespace}.{topics.SYNC_JOBS}"
    gone = f"{topic_namespace}.deleted-topic"
    await ensure_topics(kafka_bootstrap_servers, [jobs, gone], partitions=1)
    await produce(kafka_bootstrap_servers, jobs, {0: 2})
    await produce(kafka_bootstrap_servers, gone, {0: 2})
    workers = f"{topic_namespace}.syncer-workers"
    await commit(
        kafka_bootstrap_servers, workers, {TopicPartition(jobs, 0): 1, TopicPartition(gone, 0): 1}
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics([gone])
    finally:
        await admin.close()

    out = await koalr("--json", "lag", "--group", workers)

    assert out.exit_code == 0, out.stderr
    assert out.json() == {
        "partitions": [
            {"group": workers, "topic": jobs, "partition": 0, "committed": 1, "end": 2, "lag": 1}
        ],
        "total_lag": 1,
    }
