"""Dead letters: list and show them, and put a fixed message back on its source topic once.

A dead letter is named by its position on the dead-letter topic, ``<partition>:<offset>``. A
replay is claimed in the ledger (PostgreSQL) in the same transaction that waits for the publish,
so a failed publish leaves it replayable and a second replay of the same dead letter is refused.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from koalr_cli import kafka
from koalr_cli.errors import EXIT_USAGE, CliError
from koalr_cli.repository import MIGRATIONS, SCHEMA, Replay, ReplayLedger
from koalr_contracts import DeadLetter, EventDecodeError, decode_event
from koalr_contracts.decoding import base_topic
from koalr_contracts.topics import ALL_TOPICS
from koalr_runtime.kafka import event_headers
from koalr_runtime.migrations import apply_migrations


@dataclass(frozen=True, slots=True)
class Position:
    partition: int
    offset: int

    @classmethod
    def parse(cls, text: str) -> Position:
        partition, sep, offset = text.partition(":")
        if not sep or not partition.isdigit() or not offset.isdigit():
            raise CliError(
                "invalid_dead_letter_id",
                f"{text!r} is not a dead letter id; use <partition>:<offset> as "
                "`koalr dead-letters list` shows it.",
                exit_code=EXIT_USAGE,
            )
        return cls(int(partition), int(offset))

    def __str__(self) -> str:
        return f"{self.partition}:{self.offset}"


@dataclass(frozen=True, slots=True)
class Entry:
    position: Position
    letter: DeadLetter
    replay: Replay | None

    def summary(self) -> dict[str, Any]:
        return {
            "id": str(self.position),
            "occurred_at": self.letter.occurred_at.isoformat(),
            "source": f"{self.letter.source_topic}[{self.letter.source_partition}]"
            f"@{self.letter.source_offset}",
            "consumer_group": self.letter.consumer_group,
            "error_type": self.letter.error_type,
            "reason": self.letter.reason,
            "replayed": self.replay is not None,
        }

    def detail(self) -> dict[str, Any]:
        replay = self.replay
        return {
            **self.summary(),
            "letter": self.letter.model_dump(mode="json"),
            "replay": None
            if replay is None
            else {
                "partition": replay.replayed_partition,
                "offset": replay.replayed_offset,
                "at": replay.replayed_at.isoformat(),
            },
        }


@asynccontextmanager
async def ledger(database_url: str, timeout_s: float) -> AsyncIterator[ReplayLedger]:
    """The replay ledger on a fresh connection, its schema migrated on first use."""
    try:
        conn = await asyncpg.connect(database_url, timeout=timeout_s)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise CliError(
            "postgres_unreachable",
            f"PostgreSQL did not accept a connection ({type(exc).__name__}); check DATABASE_URL "
            "or start it with `make services-up`.",
        ) from exc
    try:
        await apply_migrations(conn, SCHEMA, MIGRATIONS)
        yield ReplayLedger(conn)
    finally:
        await conn.close()


class DeadLetters:
    """The dead letters of one dead-letter topic."""

    def __init__(self, bootstrap_servers: str, topic: str, *, timeout_s: float) -> None:
        self._servers = bootstrap_servers
        self._topic = topic
        self._timeout_s = timeout_s

    async def read_all(self) -> list[tuple[Position, DeadLetter]]:
        """Every dead letter on the topic up to its end now, in (partition, offset) order."""
        try:
            partitions = await kafka.partitions_of(self._servers, self._topic, self._timeout_s)
            tps = [TopicPartition(self._topic, p) for p in partitions]
            if not tps:
                return []
            async with kafka.reader(self._servers, self._timeout_s) as consumer:
                consumer.assign(tps)
                await consumer.seek_to_beginning(*tps)
                ends = await consumer.end_offsets(tps)
                found: list[tuple[Position, DeadLetter]] = []
                for tp in tps:
                    while await consumer.position(tp) < ends[tp]:
                        batch = await consumer.getmany(tp, timeout_ms=int(self._timeout_s * 1000))
                        if not batch:
                            raise CliError(
                                "kafka_timeout",
                                f"Reading {self._topic} stalled; try again with a larger KOALR_TIMEOUT_S.",
                            )
                        found.extend(self._decoded(record) for record in batch.get(tp, []))
                return found
        except KafkaError as exc:
            raise kafka.unreachable(self._servers, exc) from exc

    async def read_one(self, position: Position) -> DeadLetter:
        try:
            async with kafka.reader(self._servers, self._timeout_s) as consumer:
                tp = TopicPartition(self._topic, position.partition)
                ends = await consumer.end_offsets([tp])
                consumer.assign([tp])
                await consumer.seek_to_beginning(tp)
                start = await consumer.position(tp)
                if not start <= position.offset < ends[tp]:
                    raise CliError(
                        "dead_letter_not_found",
                        f"No dead letter {position} on {self._topic} (partition "
                        f"{position.partition} holds offsets {start} to {ends[tp] - 1}).",
                    )
                consumer.seek(tp, position.offset)
                record = await asyncio.wait_for(consumer.getone(tp), timeout=self._timeout_s)
                return self._decoded(record)[1]
        except KafkaError as exc:
            raise kafka.unreachable(self._servers, exc) from exc

    def _decoded(self, record: Any) -> tuple[Position, DeadLetter]:
        position = Position(record.partition, record.offset)
        try:
            return position, DeadLetter.model_validate_json(record.value)
        except ValueError as exc:
            raise CliError(
                "invalid_dead_letter",
                f"The message at {position} of {self._topic} is not a DeadLetter: {exc}",
            ) from exc

    async def replay(
        self, position: Position, ledger: ReplayLedger, *, payload: bytes | None = None
    ) -> tuple[DeadLetter, Position]:
        """Publish the dead letter's message (or ``payload``, its fixed version) to its source
        topic, once; returns the letter and where the message landed."""
        letter = await self.read_one(position)
        value = payload if payload is not None else original_payload(letter)
        headers = replay_headers(letter, value, self._topic, position)
        async with ledger.transaction():
            if not await ledger.claim(
                self._topic, position.partition, position.offset, letter.source_topic
            ):
                raise CliError(
                    "already_replayed",
                    f"Dead letter {position} was already replayed to {letter.source_topic}; "
                    "a dead letter goes back once (see `koalr dead-letters show "
                    f"{position}`).",
                )
            try:
                async with kafka.producer(self._servers, self._timeout_s) as producer:
                    sent = await producer.send_and_wait(
                        letter.source_topic,
                        value,
                        key=letter.kafka_key(),
                        headers=[(k, v.encode()) for k, v in headers.items()],
                    )
            except KafkaError as exc:
                raise kafka.unreachable(self._servers, exc) from exc
            landed = Position(sent.partition, sent.offset)
            await ledger.record_position(
                self._topic,
                position.partition,
                position.offset,
                at_partition=landed.partition,
                at_offset=landed.offset,
            )
        return letter, landed


def original_payload(letter: DeadLetter) -> bytes:
    if letter.payload_encoding == "base64":
        return base64.b64decode(letter.payload)
    return letter.payload.encode()


def replay_headers(
    letter: DeadLetter, value: bytes, dead_letter_topic: str, position: Position
) -> dict[str, str]:
    """The event's usual headers; refuses a message its source topic would reject again."""
    headers = {"replayed_from": f"{dead_letter_topic}:{position}"}
    if base_topic(letter.source_topic) not in ALL_TOPICS:
        return headers
    try:
        event = decode_event(letter.source_topic, value)
    except EventDecodeError as exc:
        raise CliError(
            "payload_still_invalid",
            f"The message would be refused again by {letter.source_topic}: {exc}. Fix it and "
            "pass it with --payload FILE.",
        ) from exc
    return {**event_headers(event), **headers}
