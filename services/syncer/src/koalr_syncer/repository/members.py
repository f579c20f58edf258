"""SQL of the provider's member directory (names and ids for the usage records)."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from koalr_providers.cursor.shapes import Member
from koalr_syncer.normalise import MemberInfo
from koalr_syncer.repository.rows import Pool


class MemberRepository:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def upsert(self, integration_id: UUID, members: Sequence[Member]) -> None:
        if not members:
            return
        unique = {m.email: m for m in members}
        await self._pool.execute(
            """
            INSERT INTO members (integration_id, email, name, external_id, role, is_removed)
            SELECT $1, m.email, m.name, m.external_id, m.role, m.is_removed
              FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::boolean[])
                   AS m(email, name, external_id, role, is_removed)
            WHERE NOT EXISTS (
                SELECT 1 FROM erased_members e JOIN integrations i ON i.org_id = e.org_id
                WHERE i.integration_id = $1
                  AND e.member_hash = member_hash(i.org_id, lower(m.email)))
            ON CONFLICT (integration_id, email) DO UPDATE SET
                name = EXCLUDED.name, external_id = EXCLUDED.external_id, role = EXCLUDED.role,
                is_removed = EXCLUDED.is_removed, updated_at = now()
            """,
            integration_id,
            list(unique),
            [m.name for m in unique.values()],
            [m.external_id for m in unique.values()],
            [m.role for m in unique.values()],
            [m.is_removed for m in unique.values()],
        )

    async def erase(self, org_id: str, integration_id: UUID, member_hash: bytes) -> int:
        """Tombstone an erased member of the org and delete their directory row for this
        integration (matched by email); returns the rows deleted."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO erased_members (org_id, member_hash) VALUES ($1, $2) "
                "ON CONFLICT (org_id, member_hash) DO NOTHING",
                org_id,
                member_hash,
            )
            status: str = await conn.execute(
                "DELETE FROM members WHERE integration_id = $1 "
                "AND member_hash($2, lower(email)) = $3",
                integration_id,
                org_id,
                member_hash,
            )
        return int(status.rsplit(" ", 1)[-1])

    async def directory(self, integration_id: UUID) -> dict[str, MemberInfo]:
        rows = await self._pool.fetch(
            "SELECT email, name, external_id FROM members WHERE integration_id = $1",
            integration_id,
        )
        return {r["email"]: MemberInfo(r["name"], r["external_id"]) for r in rows}
