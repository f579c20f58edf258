"""``koalr dead-letters``: list and show them; a replay puts the message back once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from koalr_contracts import DeadLetter, UsageRecord, encode_event, topics
from koalr_runtime.kafka import ensure_topics
from tests.cli.conftest import Koalr
from tests.contracts.factories import INTEGRATION_ID, usage_record_fields

pytestmark = pytest.mark.integration


async def read_partition(servers: str, tp: TopicPartition) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        records: list[Any] = []
        while await consumer.position(tp) < end:
            records.extend((await consumer.getmany(tp, timeout_ms=5000)).get(tp, []))
        return records
    finally:
        await consumer.stop()


async def publish_letter(servers: str, topic: str, letter: DeadLetter) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=servers)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, encode_event(letter), key=letter.kafka_key(), partition=0
        )
    finally:
        await producer.stop()


def letter_for(source: str, payload: str, *, offset: int) -> DeadLetter:
    return DeadLetter(
        org_id="org_1",
        integration_id=INTEGRATION_ID,
        source_topic=source,
        source_partition=1,
        source_offset=offset,
        consumer_group="metrics-usage",
        key=str(INTEGRATION_ID),
        error_type="PostgresConnectionError",
        reason="the database was down",
        payload=payload,
    )


@pytest.fixture
async def dead_letters(
    koalr: Koalr, kafka_bootstrap_servers: str, topic_namespace: str, fresh_database_url: str
) -> tuple[str, str]:
    """The namespace's dead-letter and usage-record topics (one partition each); the replay
    ledger in a fresh database."""
    koalr.env["DATABASE_URL"] = fresh_database_url
    letters = f"{topic_namespace}.{topics.DEAD_LETTERS}"
    source = f"{topic_namespace}.{topics.USAGE_RECORDS}"
    await ensure_topics(kafka_bootstrap_servers, [letters, source], partitions=1)
    return letters, source


async def test_replay_puts_the_message_back_once_then_refuses(
    koalr: Koalr, kafka_bootstrap_servers: str, dead_letters: tuple[str, str]
) -> None:
    letters, source = dead_letters
    record = UsageRecord(**usage_record_fields())
    original = encode_event(record).decode()
    await publish_letter(kafka_bootstrap_servers, letters, letter_for(source, original, offset=7))

    listed = await koalr("--json", "dead-letters", "list")
    assert listed.exit_code == 0, listed.stderr
    [entry] = listed.json()["dead_letters"]
    assert entry["id"] == "0:0"
    assert entry["source"] == f"{source}[1]@7"
    assert entry["error_type"] == "PostgresConnectionError"
    assert entry["replayed"] is False

    first = await koalr("--json", "dead-letters", "replay", "0:0")
    assert first.exit_code == 0, first.stderr
    assert first.json() == {"id": "0:0", "replayed_to": source, "partition": 0, "offset": 0}
    [replayed] = await read_partition(kafka_bootstrap_servers, TopicPartition(source, 0))
    assert replayed.value == original.encode()
    assert replayed.key == str(INTEGRATION_ID).encode()
    assert dict(replayed.headers) == {
        "event_type": b"UsageRecord",
        "schema_version": str(record.schema_version).encode(),
        "correlation_id": str(record.correlation_id).encode(),
        "replayed_from": f"{letters}:0:0".encode(),
    }

    second = await koalr("dead-letters", "replay", "0:0")
    assert second.exit_code == 1
    assert second.stderr.startswith(
        f"error[already_replayed]: Dead letter 0:0 was already replayed to {source}"
    )
    assert len(await read_partition(kafka_bootstrap_servers, TopicPartition(source, 0))) == 1

    shown = await koalr("--json", "dead-letters", "show", "0:0")
    assert shown.exit_code == 0, shown.stderr
    detail = shown.json()
    assert detail["replayed"] is True
    assert (detail["replay"]["partition"], detail["replay"]["offset"]) == (0, 0)
    assert detail["letter"]["payload"] == original


async def test_a_message_still_invalid_is_refused_until_a_fixed_one_is_given(
    koalr: Koalr, kafka_bootstrap_servers: str, dead_letters: tuple[str, str], tmp_path: Path
) -> None:
    letters, source = dead_letters
    fixed = encode_event(UsageRecord(**usage_record_fields()))
    broken = json.loads(fixed)
    broken["requests"] = 6  # the models add up to 5
    await publish_letter(
        kafka_bootstrap_servers, letters, letter_for(source, json.dumps(broken), offset=3)
    )

    refused = await koalr("--json", "dead-letters", "replay", "0:0")
    assert refused.exit_code == 1
    assert refused.json()["error"]["code"] == "payload_still_invalid"
    assert await read_partition(kafka_bootstrap_servers, TopicPartition(source, 0)) == []

    fixed_file = tmp_path / "fixed.json"
    fixed_file.write_bytes(fixed)
    done = await koalr("dead-letters", "replay", "0:0", "--payload", str(fixed_file))
    assert done.exit_code == 0, done.stderr
    assert done.stdout == f"dead letter 0:0 replayed to {source} (partition 0, offset 0)\n"
    [replayed] = await read_partition(kafka_bootstrap_servers, TopicPartition(source, 0))
    assert replayed.value == fixed


async def test_unknown_and_malformed_dead_letter_ids(
    koalr: Koalr, dead_letters: tuple[str, str]
) -> None:
    missing = await koalr("--json", "dead-letters", "show", "0:5")
    assert missing.exit_code == 1
    assert missing.json()["error"] == {
        "code": "dead_letter_not_found",
        "message": f"No dead letter 0:5 on {dead_letters[0]} (partition 0 holds offsets 0 to -1).",
    }

    malformed = await koalr("dead-letters", "replay", "five")
    assert malformed.exit_code == 2
    assert malformed.stderr.startswith("error[invalid_dead_letter_id]")
