"""All SQL of the command line: the ledger of replayed dead letters (schema ``operator``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

MIGRATIONS = Path(__file__).parent / "migrations"
SCHEMA = "operator"


@dataclass(frozen=True, slots=True)
class Replay:
    source_topic: str
    replayed_partition: int | None
    replayed_offset: int | None
    replayed_at: datetime


class ReplayLedger:
    """Which dead letters went back to their source topic; a dead letter is claimed only once."""

    def __init__(self, conn: asyncpg.Connection[Any]) -> None:
        self._conn = conn

    def transaction(self) -> Any:
        """``async with ledger.transaction()``: claims roll back when the block raises."""
        return self._conn.transaction()

    async def claim(self, topic: str, partition: int, offset: int, source_topic: str) -> bool:
        """Record a replay about to happen; ``False`` when this dead letter was replayed before.

        Call inside a transaction that is rolled back when the publish fails.
        """
        row = await self._conn.fetchrow(
            f"""INSERT INTO {SCHEMA}.dead_letter_replays
                (dead_letter_topic, dead_letter_partition, dead_letter_offset, source_topic)
                VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1""",  # noqa: S608 - constant schema
            topic,
            partition,
            offset,
            source_topic,
        )
        return row is not None

    async def record_position(
        self, topic: str, partition: int, offset: int, *, at_partition: int, at_offset: int
    ) -> None:
        await self._conn.execute(
            f"""UPDATE {SCHEMA}.dead_letter_replays
                SET replayed_partition = $4, replayed_offset = $5
                WHERE dead_letter_topic = $1 AND dead_letter_partition = $2
                  AND dead_letter_offset = $3""",  # noqa: S608 - constant schema
            topic,
            partition,
            offset,
            at_partition,
            at_offset,
        )

    async def replays(self, topic: str) -> dict[tuple[int, int], Replay]:
        """Every replay of the dead letters of ``topic``, by (partition, offset)."""
        rows = await self._conn.fetch(
            f"""SELECT dead_letter_partition, dead_letter_offset, source_topic,
                       replayed_partition, replayed_offset, replayed_at
                FROM {SCHEMA}.dead_letter_replays WHERE dead_letter_topic = $1""",  # noqa: S608 - constant schema
            topic,
        )
        return {
            (r["dead_letter_partition"], r["dead_letter_offset"]): Replay(
                r["source_topic"], r["replayed_partition"], r["replayed_offset"], r["replayed_at"]
            )
            for r in rows
        }
