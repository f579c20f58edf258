"""A dead letter published again after a crash carries the same id (found by the chaos run: a
syncer worker dead-lettered a message, lost the broker before committing its offset, and
dead-lettered it again after the restart)."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord

from koalr_runtime.kafka import dead_letter_for


def _record(offset: int, topic: str = "ns.koalr.sync-jobs.v1") -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topic,
        partition=5,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"chaos-garbage:3:2",
        value=b"\xff\xfe not json",
        checksum=None,
        serialized_key_size=17,
        serialized_value_size=12,
        headers=[],
    )


def test_the_same_record_refused_twice_by_one_group_is_one_letter() -> None:
    first = dead_letter_for(_record(4), consumer_group="ns.syncer-workers", error=ValueError("x"))
    again = dead_letter_for(_record(4), consumer_group="ns.syncer-workers", error=ValueError("y"))
    assert first.event_id == again.event_id
    assert (first.source_partition, first.source_offset) == (5, 4)


def test_another_position_topic_or_group_is_another_letter() -> None:
    base = dead_letter_for(_record(4), consumer_group="ns.syncer-workers", error=ValueError("x"))
    others = [
        dead_letter_for(_record(5), consumer_group="ns.syncer-workers", error=ValueError("x")),
        dead_letter_for(
            _record(4, topic="ns.koalr.integrations.v1"),
            consumer_group="ns.syncer-workers",
            error=ValueError("x"),
        ),
        dead_letter_for(_record(4), consumer_group="ns.metrics-ingest", error=ValueError("x")),
    ]
    assert len({base.event_id, *(o.event_id for o in others)}) == 4
