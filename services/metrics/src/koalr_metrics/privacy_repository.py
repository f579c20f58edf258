"""SQL of erasure (GDPR article 17) and retention: tombstones, erasure requests and the jobs that
delete a member's rows or expired member days, recomputing the rollups they fed.

Kept apart from :mod:`koalr_metrics.repository` (ingest and queries) because these writes run
from background jobs, not from a consumed batch; they take the same per-integration advisory
locks as the ingest, so a batch being written and a deletion never interleave.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final
from uuid import UUID

import asyncpg

from koalr_metrics.repository import (
    REFRESH_ROLLUPS,
    Connection,
    bump_data_versions,
    integration_lock_key,
)
from koalr_runtime import audit

#: Whether a row's member is the tombstoned one: by email, or by GitHub login.
_MATCHES_MEMBER: Final = (
    "(member_hash($1, {alias}.email) = $2 "
    "OR member_hash($1, 'github:' || lower({alias}.login)) = $2)"
)

_REQUEST: Final = """
WITH tombstone AS (
    INSERT INTO erased_members (org_id, member_hash)
    VALUES ($1, member_hash($1, $2))
    ON CONFLICT (org_id, member_hash) DO NOTHING
)
INSERT INTO erasures (org_id, member_hash, member, requested_by)
VALUES ($1, member_hash($1, $2), $3, $4)
RETURNING erasure_id, member, status, requested_at, completed_at, rows_removed
"""

_ERASURE: Final = """
SELECT erasure_id, member, status, requested_at, completed_at, rows_removed
FROM erasures WHERE erasure_id = $1 AND org_id = $2
"""

_NEXT_PENDING: Final = """
SELECT erasure_id, org_id, member_hash FROM erasures
WHERE status = 'pending'
ORDER BY requested_at, erasure_id
LIMIT 1
FOR UPDATE SKIP LOCKED
"""

# The member's days and their model rows, with the (integration, day) pairs to recompute.
_ERASE_MEMBER_DAYS: Final = f"""
WITH gone AS (
    DELETE FROM member_days m USING integrations i
    WHERE i.org_id = $1 AND m.integration_id = i.integration_id
      AND {_MATCHES_MEMBER.format(alias="m")}
    RETURNING m.integration_id, m.day, m.member_key
), models AS (
    DELETE FROM member_day_models mm USING gone g
    WHERE mm.integration_id = g.integration_id AND mm.day = g.day
      AND mm.member_key = g.member_key
    RETURNING 1
)
SELECT g.integration_id, g.day, count(*) AS member_days,
       (SELECT count(*) FROM models) AS models
FROM gone g GROUP BY g.integration_id, g.day
"""  # noqa: S608 - a constant predicate, no input

_ERASE_SNAPSHOT_MEMBERS: Final = """
DELETE FROM cycle_snapshot_members c USING integrations i
WHERE i.org_id = $1 AND c.integration_id = i.integration_id
  AND (member_hash($1, c.email) = $2 OR member_hash($1, lower(c.member_key)) = $2)
"""

_ERASE_SEATS: Final = f"""
DELETE FROM seats s USING integrations i
WHERE i.org_id = $1 AND s.integration_id = i.integration_id
  AND ({_MATCHES_MEMBER.format(alias="s")} OR member_hash($1, lower(s.member_key)) = $2)
"""  # noqa: S608 - a constant predicate, no input

# The cross-tool identities mapping (email <-> GitHub login), where this schema has one.
_ERASE_IDENTITIES: Final = """
DELETE FROM identities
WHERE org_id = $1
  AND (member_hash($1, lower(email)) = $2
       OR member_hash($1, 'github:' || lower(github_login)) = $2)
"""

_DONE: Final = """
UPDATE erasures SET status = 'done', completed_at = now(), rows_removed = $2
WHERE erasure_id = $1
"""

# --- retention ------------------------------------------------------------------------------

# Every integration with its cut-off: days before it are past the org's retention. PostgreSQL's
# clock decides (today as a UTC day, like the usage days), so no process clock is involved.
_RETENTION_CUTOFFS: Final = """
SELECT i.integration_id, i.org_id,
       ((now() AT TIME ZONE 'UTC')::date - coalesce(o.retention_days, $1))::date AS cutoff
FROM integrations i LEFT JOIN org_settings o ON o.org_id = i.org_id
ORDER BY i.org_id, i.integration_id
"""

_EXPIRED_DAYS: Final = """
SELECT day FROM daily_rollups WHERE integration_id = $1 AND day < $2
UNION
SELECT day FROM day_spend WHERE integration_id = $1 AND day < $2
UNION
SELECT day FROM member_days WHERE integration_id = $1 AND day < $2
ORDER BY day
LIMIT $3
"""

#: Tables holding an integration's days, deleted whole per expired day (models first).
_DAY_TABLES: Final = (
    "member_day_models",
    "member_days",
    "daily_model_rollups",
    "daily_rollups",
    "day_spend",
)


@dataclass(frozen=True, slots=True)
class ErasureRow:
    erasure_id: UUID
    member: str
    status: str
    requested_at: datetime
    completed_at: datetime | None
    rows_removed: int | None


@dataclass(frozen=True, slots=True)
class ErasureNotice:
    """What the other services are told of an erasure: the member's hash, and the
    integrations of the org (one event each)."""

    erasure_id: UUID
    org_id: str
    member_hash: bytes
    integrations: list[UUID]


@dataclass(frozen=True, slots=True)
class ErasureDone:
    """What one erasure removed."""

    erasure_id: UUID
    org_id: str
    rows_removed: int
    member_days: int
    days_recomputed: int


@dataclass(frozen=True, slots=True)
class RetentionBatch:
    """One batch of the retention job: the days of one integration deleted together."""

    integration_id: UUID
    org_id: str
    days: int
    member_days: int
    rows_removed: int


class PrivacyRepository:
    """Tombstones, erasure requests and the deletions of erasure and retention."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    # --- erasure ------------------------------------------------------------------------------

    async def request_erasure(
        self, org_id: str, identifier: str, masked: str, actor: audit.Actor
    ) -> ErasureRow:
        """Tombstone the member (from now on the ingest drops its records), queue the erasure
        of what is stored and record the request in the audit log (masked), in one
        transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(_REQUEST, org_id, identifier, masked, actor.sub)
            assert row is not None  # noqa: S101 - INSERT ... RETURNING always returns the row
            erasure = _erasure(row)
            await audit.record(
                conn,
                org_id=org_id,
                actor=actor,
                action="member.erase",
                target=str(erasure.erasure_id),
                details={"member": erasure.member},
            )
        return erasure

    async def erasure(self, org_id: str, erasure_id: UUID) -> ErasureRow | None:
        row = await self._pool.fetchrow(_ERASURE, erasure_id, org_id)
        return None if row is None else _erasure(row)

    async def erase_next(
        self, announce: Callable[[ErasureNotice], Awaitable[None]]
    ) -> ErasureDone | None:
        """Carry out the oldest pending erasure no other process holds, in one transaction;
        ``None`` when none is pending. ``announce`` tells the other services (before the commit).
        A failure rolls it back: it stays pending."""
        async with self._pool.acquire() as conn, conn.transaction():
            job = await conn.fetchrow(_NEXT_PENDING)
            if job is None:
                return None
            erasure_id = UUID(bytes=job["erasure_id"].bytes)
            org_id: str = job["org_id"]
            member: bytes = job["member_hash"]
            await _lock_org(conn, org_id)
            touched = await conn.fetch(_ERASE_MEMBER_DAYS, org_id, member)
            member_days = sum(int(r["member_days"]) for r in touched)
            removed = member_days + (int(touched[0]["models"]) if touched else 0)
            if touched:
                await conn.execute(
                    REFRESH_ROLLUPS,
                    [r["integration_id"] for r in touched],
                    [r["day"] for r in touched],
                    [],  # the data version is bumped last, below
                )
            for statement in (_ERASE_SNAPSHOT_MEMBERS, _ERASE_SEATS):
                removed += _count(await conn.execute(statement, org_id, member))
            removed += _count(await conn.execute(_ERASE_IDENTITIES, org_id, member))
            # Other services are told before the erasure is marked done: if telling them
            # fails, the transaction rolls back and the erasure is taken up again.
            integrations = [
                r["integration_id"]
                for r in await conn.fetch(
                    "SELECT integration_id FROM integrations WHERE org_id = $1 "
                    "ORDER BY integration_id",
                    org_id,
                )
            ]
            await announce(ErasureNotice(erasure_id, org_id, member, integrations))
            await conn.execute(_DONE, erasure_id, removed)
            # Cached summaries of the org are stale from this commit on.
            await bump_data_versions(conn, [org_id], ())
        return ErasureDone(erasure_id, org_id, removed, member_days, len(touched))

    # --- retention ----------------------------------------------------------------------------

    async def retention_cutoffs(self, default_days: int) -> list[tuple[UUID, str, date]]:
        """Every integration, its org and the first day its org's retention keeps."""
        rows = await self._pool.fetch(_RETENTION_CUTOFFS, default_days)
        return [(r["integration_id"], r["org_id"], r["cutoff"]) for r in rows]

    async def drop_expired_days(
        self, integration_id: UUID, org_id: str, cutoff: date, max_days: int
    ) -> RetentionBatch | None:
        """Delete up to ``max_days`` of the integration's oldest days before ``cutoff`` (every
        row of those days, rollups included), in one transaction: a day goes whole.

        Never waits for the ingest: with nothing expired no lock is taken, and an integration
        whose rows are being written right now is left for the next run (``None``)."""
        removed = 0
        member_days = 0
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetch(_EXPIRED_DAYS, integration_id, cutoff, 1):
                return RetentionBatch(integration_id, org_id, 0, 0, 0)
            if not await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock($1)", integration_lock_key(integration_id)
            ):
                return None
            days: list[date] = [
                r["day"] for r in await conn.fetch(_EXPIRED_DAYS, integration_id, cutoff, max_days)
            ]
            if days:
                for table in _DAY_TABLES:
                    count = _count(
                        await conn.execute(
                            f"DELETE FROM {table} "  # noqa: S608 - constant table names
                            "WHERE integration_id = $1 AND day = ANY($2::date[])",
                            integration_id,
                            days,
                        )
                    )
                    removed += count
                    if table == "member_days":
                        member_days = count
                await bump_data_versions(conn, [org_id], ())
        return RetentionBatch(integration_id, org_id, len(days), member_days, removed)


async def _lock_org(conn: Connection, org_id: str) -> None:
    """Take the ingest's advisory locks of every integration of the org, in key order."""
    ids: list[UUID] = [
        r["integration_id"]
        for r in await conn.fetch(
            "SELECT integration_id FROM integrations WHERE org_id = $1", org_id
        )
    ]
    keys = sorted({integration_lock_key(i) for i in ids})
    if keys:
        await conn.execute(
            "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) WITH ORDINALITY AS t(k, n) "
            "ORDER BY t.n",
            keys,
        )


def _count(status: str) -> int:
    """The row count of a command status such as ``DELETE 3``."""
    return int(status.rsplit(" ", 1)[-1])


def _erasure(row: asyncpg.Record) -> ErasureRow:
    return ErasureRow(
        # asyncpg's own UUID type: a plain one, which the JSON encoder knows.
        erasure_id=UUID(bytes=row["erasure_id"].bytes),
        member=row["member"],
        status=row["status"],
        requested_at=row["requested_at"],
        completed_at=row["completed_at"],
        rows_removed=row["rows_removed"],
    )
