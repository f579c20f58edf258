"""Bad and repeated deliveries for the chaos run: garbage on every consumed topic, copies of real
messages, and the dead-letter count at the end.

Every garbage message carries a marker as its Kafka key (``chaos-garbage:<seed>:<n>``), which a
dead letter keeps (``DeadLetter.key``), so the end check needs no bookkeeping that a crash or a
broker restart could falsify: it reads the consumed topics for every marked message that really
landed, and the dead-letter topic for every letter about one.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from koalr_contracts import DeadLetter, topics

CONSUMED: dict[str, tuple[str, ...]] = {
    topics.INTEGRATIONS: ("syncer-registry", "metrics-integrations"),
    topics.SYNC_JOBS: ("syncer-workers",),
    topics.USAGE_RECORDS: ("metrics-ingest",),
    topics.SYNC_STATUS: ("metrics-sync-status", "connector-sync-status"),
}
"""Each consumed topic and the consumer groups (before the namespace) that read it: every group
dead-letters a bad message on its own, so a garbage message earns one letter per group."""

CONSUMED_BY: dict[str, list[str]] = {
    "connector": [topics.SYNC_STATUS],
    "syncer": [topics.INTEGRATIONS, topics.SYNC_JOBS],
    "metrics": [topics.USAGE_RECORDS, topics.INTEGRATIONS, topics.SYNC_STATUS],
}
"""The topics each service consumes (syncer workers share one entry)."""

GARBAGE_SHARE = 0.01


def garbage_value(rng: random.Random, kind: str, marker: str) -> bytes:
    """One bad message of ``kind``: random bytes, broken JSON, or JSON that breaks the schema."""
    if kind == "bytes":
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64))) + b"\xff\xfe"
    if kind == "json":
        return b'{"event_type": "UsageRecord", "marker": "' + marker.encode() + b'", '
    if kind == "schema":
        return json.dumps(
            {"event_type": "SyncJobRequested", "marker": marker, "org_id": 12, "days": "x"}
        ).encode()
    return json.dumps({"event_type": "NoSuchEvent", "marker": marker}).encode()


GARBAGE_KINDS = ("bytes", "json", "schema", "wrong_type")


@dataclass
class Deliveries:
    """Produces garbage (1% of each consumed topic) and copies of real messages."""

    bootstrap_servers: str
    namespace: str
    seed: int
    rng: random.Random
    garbage_sent: Counter[str] = field(default_factory=Counter)
    copies_sent: Counter[str] = field(default_factory=Counter)
    failed_sends: int = 0
    _count: int = 0

    def topic(self, base: str) -> str:
        return f"{self.namespace}.{base}"

    @property
    def marker_prefix(self) -> str:
        return f"chaos-garbage:{self.seed}:"

    @asynccontextmanager
    async def _clients(self) -> AsyncIterator[tuple[AIOKafkaConsumer, AIOKafkaProducer]]:
        """A consumer (no group) and an idempotent producer, both closed even if a start fails."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            request_timeout_ms=5_000,
            enable_auto_commit=False,
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            enable_idempotence=True,
            request_timeout_ms=5_000,
        )
        try:
            await consumer.start()
            await producer.start()
            yield consumer, producer
        finally:
            await producer.stop()
            await consumer.stop()

    async def _end_offsets(self, consumer: AIOKafkaConsumer, base: str) -> dict[int, int]:
        name = self.topic(base)
        partitions = await partitions_of(self.bootstrap_servers, name)
        ends = await consumer.end_offsets([TopicPartition(name, p) for p in partitions])
        return {tp.partition: offset for tp, offset in ends.items()}

    async def top_up_garbage(self) -> None:
        """Bring every consumed topic's garbage to 1% of its real messages (at least one)."""
        async with self._clients() as (consumer, producer):
            for base in CONSUMED:
                total = sum((await self._end_offsets(consumer, base)).values())
                real = total - self.garbage_sent[base] - self.copies_sent[base]
                wanted = max(1, math.ceil(real * GARBAGE_SHARE))
                for _ in range(wanted - self.garbage_sent[base]):
                    await self._send_garbage(producer, base)

    async def burst(self, bases: list[str], count: int) -> None:
        """``count`` garbage messages on each of ``bases`` at once (just before a kill, so a
        consumer dies while it dead-letters)."""
        async with self._clients() as (_, producer):
            for base in bases:
                for _ in range(count):
                    await self._send_garbage(producer, base)

    async def _send_garbage(self, producer: AIOKafkaProducer, base: str) -> None:
        self._count += 1
        marker = f"{self.marker_prefix}{self._count}"
        kind = GARBAGE_KINDS[self._count % len(GARBAGE_KINDS)]
        try:
            await producer.send_and_wait(
                self.topic(base),
                garbage_value(self.rng, kind, marker),
                key=marker.encode(),
                headers=[("chaos_garbage", kind.encode())],
            )
        except Exception:
            # It may still have landed: the end check reads the topics, not this counter.
            self.failed_sends += 1
            raise
        self.garbage_sent[base] += 1

    async def duplicate(self, copies: int) -> None:
        """Re-produce ``copies`` real messages (random topic, partition and offset), unchanged."""
        async with self._clients() as (consumer, producer):
            for _ in range(copies):
                base = self.rng.choice(list(CONSUMED))
                ends = await self._end_offsets(consumer, base)
                filled = sorted(p for p, end in ends.items() if end > 0)
                if not filled:
                    continue
                partition = self.rng.choice(filled)
                tp = TopicPartition(self.topic(base), partition)
                consumer.assign([tp])
                consumer.seek(tp, self.rng.randrange(ends[partition]))
                record = await consumer.getone(tp)
                if record.key is not None and record.key.startswith(b"chaos-garbage:"):
                    continue
                await producer.send_and_wait(
                    tp.topic, record.value, key=record.key, headers=list(record.headers)
                )
                self.copies_sent[base] += 1


async def partitions_of(bootstrap_servers: str, name: str) -> list[int]:
    """The topic's partition ids (from the broker: a consumer without a subscription does not
    learn them)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5_000)
    try:
        await admin.start()
        [described] = await admin.describe_topics([name])
        return sorted(int(p["partition"]) for p in described["partitions"])
    finally:
        await admin.close()


async def read_topic(bootstrap_servers: str, name: str) -> list[Any]:
    """Every record of ``name`` from the beginning to its end now."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000, enable_auto_commit=False
    )
    try:
        await consumer.start()
        tps = [TopicPartition(name, p) for p in await partitions_of(bootstrap_servers, name)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[Any] = []
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=10_000, max_records=5000)
                if not batch:
                    raise TimeoutError(f"reading {name} stalled")
                records.extend(r for r in batch.get(tp, []) if r.offset < ends[tp])
        return records
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class LetterCheck:
    garbage: int
    """Garbage messages found on the consumed topics."""
    expected_letters: int
    """One per garbage message and consuming group."""
    problems: list[str]
    unexpected: list[str]
    """Dead letters about messages that were not garbage (a real message refused)."""
    republished: int = 0
    """Copies of a letter published again after a crash before the offset commit: the same
    letter (same ``event_id``), so they count once."""


async def check_dead_letters(deliveries: Deliveries) -> LetterCheck:
    """Every garbage message dead-lettered exactly once by each group that consumes its topic,
    at the position where it landed; and no real message dead-lettered."""
    ns = deliveries.namespace
    landed: dict[str, tuple[str, int, int]] = {}
    for base in CONSUMED:
        for record in await read_topic(deliveries.bootstrap_servers, deliveries.topic(base)):
            key = record.key.decode("utf-8", "replace") if record.key else ""
            if key.startswith(deliveries.marker_prefix):
                landed[key] = (base, record.partition, record.offset)
    letters = [
        DeadLetter.model_validate_json(r.value)
        for r in await read_topic(
            deliveries.bootstrap_servers, deliveries.topic(topics.DEAD_LETTERS)
        )
    ]
    seen: dict[tuple[str, str], set[UUID]] = defaultdict(set)
    republished = 0
    problems: list[str] = []
    unexpected: list[str] = []
    for letter in letters:
        key = letter.key or ""
        if key not in landed:
            unexpected.append(
                f"{letter.source_topic}[{letter.source_partition}]@{letter.source_offset} "
                f"({letter.consumer_group}): {letter.error_type}: {letter.reason[:200]}"
            )
            continue
        base, partition, offset = landed[key]
        if (letter.source_partition, letter.source_offset) != (partition, offset):
            problems.append(
                f"{key}: letter points at {letter.source_partition}:{letter.source_offset}"
            )
        ids = seen[(key, letter.consumer_group)]
        if letter.event_id in ids:
            republished += 1
        ids.add(letter.event_id)
    confirmed = sum(deliveries.garbage_sent.values())
    if len(landed) < confirmed:
        problems.append(
            f"only {len(landed)} of {confirmed} garbage messages sent are on the topics"
        )
    expected = 0
    for key, (base, _, _) in landed.items():
        for group in CONSUMED[base]:
            expected += 1
            count = len(seen[(key, f"{ns}.{group}")])
            if count != 1:
                problems.append(f"{key} on {base}: {count} dead letters from {group}, not 1")
    return LetterCheck(len(landed), expected, problems, unexpected, republished)
