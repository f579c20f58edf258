"""SQL of the status reporter: the per-integration sequence of ``SyncStatusChanged``."""

from __future__ import annotations

from uuid import UUID

from koalr_syncer.repository.rows import Pool


class StatusRepository:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def next_sequence(self, integration_id: UUID) -> int:
        """The next sequence of the integration's statuses (1, 2, ...); the row lock orders
        concurrent callers, so no two statuses of one integration share a sequence."""
        sequence = await self._pool.fetchval(
            """
            INSERT INTO status_sequences AS s (integration_id, last_sequence) VALUES ($1, 1)
            ON CONFLICT (integration_id) DO UPDATE SET last_sequence = s.last_sequence + 1
            RETURNING last_sequence
            """,
            integration_id,
        )
        return int(sequence)
