"""All SQL of the metrics service (asyncpg; the pool's ``search_path`` is the service schema)."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, TypeAlias
from uuid import UUID

import asyncpg

from koalr_contracts import (
    Alert,
    IntegrationConnected,
    IntegrationDisconnected,
    Provider,
    SyncStatusChanged,
)
from koalr_metrics.analytics import (
    DEFAULT_POLICY,
    DayRange,
    DayRollup,
    MemberActivity,
    ModelTotal,
    Policy,
    ProviderData,
    StatusReason,
)
from koalr_metrics.ingest import (
    DaySpendRow,
    IntegrationEvent,
    SeatsRows,
    SnapshotRows,
    UsageCopy,
)
from koalr_metrics.insights import SeatHolder
from koalr_metrics.seats import ACTIVE_WINDOW, NO_SEAT_COST, BilledSeat, SeatCost, SeatCounts
from koalr_runtime import audit

Connection: TypeAlias = "asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]"

MEMBER_DAY_COLUMNS: Final = (
    "integration_id",
    "day",
    "member_key",
    "email",
    "name",
    "is_active",
    "requests",
    "charged_cents",
    "fetched_at",
    "login",
)
MODEL_COLUMNS: Final = (
    "integration_id",
    "day",
    "member_key",
    "model",
    "requests",
    "charged_cents",
)


def integration_lock_key(integration_id: UUID) -> int:
    """Advisory lock key serialising writers of one integration's rows (replicas overlap
    briefly during a rebalance; rollups must be recomputed from committed member rows)."""
    return zlib.crc32(b"koalr-metrics:" + integration_id.bytes)


@dataclass(frozen=True, slots=True)
class StoreOutcome:
    member_days: int
    """Member-day rows written (new or replaced); the rest were older than what was stored,
    belonged to a purged integration, or to an erased member."""
    snapshots: int
    seat_snapshots: int = 0
    day_spends: int = 0
    erased: int = 0
    """Member-day rows dropped because their member was erased (a tombstone)."""


# Created once per connection (the pool's init hook); emptied by every commit.
_STAGE_TABLES: Final = """
CREATE TEMP TABLE IF NOT EXISTS stage_member_days (LIKE member_days) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_member_day_models (LIKE member_day_models)
    ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_accepted (
    integration_id uuid, day date, member_key text, replaced boolean) ON COMMIT DELETE ROWS;
"""

_LOCK_INTEGRATIONS: Final = """
SELECT pg_advisory_xact_lock(k.key) FROM unnest($1::bigint[]) WITH ORDINALITY AS k(key, n)
ORDER BY k.n
"""

_PLACEHOLDER_INTEGRATIONS: Final = """
INSERT INTO integrations (integration_id, org_id, provider, status)
SELECT t.integration_id, t.org_id, t.provider, 'unconfirmed'
FROM unnest($1::uuid[], $2::text[], $3::text[]) AS t(integration_id, org_id, provider)
ON CONFLICT (integration_id) DO NOTHING
"""

# Orgs of a chunk that have erased members: only their rows need the tombstone check.
_ORGS_WITH_TOMBSTONES: Final = """
SELECT DISTINCT org_id FROM erased_members WHERE org_id = ANY($1::text[])
"""

# Staged member days of erased members (migration 0007: member_hash, erased_members) leave the
# stage before the upsert, so neither they nor their models are stored.
_DROP_ERASED_MEMBER_DAYS: Final = """
DELETE FROM stage_member_days s
USING integrations i, erased_members e
WHERE i.integration_id = s.integration_id AND i.org_id = ANY($1::text[])
  AND e.org_id = i.org_id
  AND (e.member_hash = member_hash(i.org_id, s.email)
       OR e.member_hash = member_hash(i.org_id, 'github:' || lower(s.login)))
"""

_UPSERT_MEMBER_DAYS: Final = """
WITH upserted AS (
    INSERT INTO member_days AS m (
        integration_id, day, member_key, email, name, is_active, requests, charged_cents,
        fetched_at, login)
    SELECT s.integration_id, s.day, s.member_key, s.email, s.name, s.is_active, s.requests,
           s.charged_cents, s.fetched_at, s.login
    FROM stage_member_days s
    WHERE NOT EXISTS (
        SELECT 1 FROM integrations i
        WHERE i.integration_id = s.integration_id AND i.status = 'purged')
    ON CONFLICT (integration_id, day, member_key) DO UPDATE SET
        email = EXCLUDED.email,
        name = EXCLUDED.name,
        is_active = EXCLUDED.is_active,
        requests = EXCLUDED.requests,
        charged_cents = EXCLUDED.charged_cents,
        fetched_at = EXCLUDED.fetched_at,
        login = EXCLUDED.login
    WHERE m.fetched_at <= EXCLUDED.fetched_at
    RETURNING m.integration_id, m.day, m.member_key, m.xmax <> 0 AS replaced
), accepted AS (
    INSERT INTO stage_accepted SELECT integration_id, day, member_key, replaced FROM upserted
)
SELECT integration_id, day, count(*) AS member_days,
       count(*) FILTER (WHERE replaced) AS replaced
FROM upserted GROUP BY integration_id, day
"""

# xmax is 0 on a row this statement inserted and set on one it updated: only replaced
# member days have model rows to remove, so a batch of new days skips the delete.
_DELETE_REPLACED_MODELS: Final = """
DELETE FROM member_day_models m USING stage_accepted a
WHERE a.replaced
  AND m.integration_id = a.integration_id AND m.day = a.day AND m.member_key = a.member_key
"""

_INSERT_ACCEPTED_MODELS: Final = """
INSERT INTO member_day_models (integration_id, day, member_key, model, requests, charged_cents)
SELECT s.integration_id, s.day, s.member_key, s.model, s.requests, s.charged_cents
FROM stage_member_day_models s
JOIN stage_accepted a USING (integration_id, day, member_key)
"""

# Rollups of the touched (integration, day) pairs recomputed from the member rows, in one
# statement: the daily rollups, then per model an upsert of the models still there and a delete
# of those gone (disjoint rows). LATERAL keeps every aggregate an index lookup per pair. The same
# statement bumps the data versions of the orgs owning $3 (see _BUMP_DATA_VERSIONS): it is the
# transaction's last, and every other row it locks belongs to an integration whose advisory lock
# the transaction holds, so it waits for nothing while holding a version row.
REFRESH_ROLLUPS: Final = """
WITH touched AS (
    SELECT * FROM unnest($1::uuid[], $2::date[]) AS t(integration_id, day)
), daily AS (
    INSERT INTO daily_rollups AS r (
        integration_id, day, member_days, active_users, requests, charged_cents)
    SELECT t.integration_id, t.day, agg.member_days, agg.active_users, agg.requests,
           agg.charged_cents
    FROM touched t
    CROSS JOIN LATERAL (
        SELECT count(*)::int AS member_days,
               (count(*) FILTER (WHERE m.is_active))::int AS active_users,
               coalesce(sum(m.requests), 0)::bigint AS requests,
               coalesce(sum(m.charged_cents), 0) AS charged_cents
        FROM member_days m
        WHERE m.integration_id = t.integration_id AND m.day = t.day
    ) agg
    ON CONFLICT (integration_id, day) DO UPDATE SET
        member_days = EXCLUDED.member_days,
        active_users = EXCLUDED.active_users,
        requests = EXCLUDED.requests,
        charged_cents = EXCLUDED.charged_cents
), models AS (
    SELECT t.integration_id, t.day, agg.model, agg.requests, agg.charged_cents
    FROM touched t
    CROSS JOIN LATERAL (
        SELECT m.model, sum(m.requests)::bigint AS requests,
               sum(m.charged_cents) AS charged_cents
        FROM member_day_models m
        WHERE m.integration_id = t.integration_id AND m.day = t.day
        GROUP BY m.model
    ) agg
), kept AS (
    INSERT INTO daily_model_rollups AS r (integration_id, day, model, requests, charged_cents)
    SELECT integration_id, day, model, requests, charged_cents FROM models
    ON CONFLICT (integration_id, day, model) DO UPDATE SET
        requests = EXCLUDED.requests,
        charged_cents = EXCLUDED.charged_cents
), bumped AS (
    INSERT INTO data_versions AS v (org_id, version)
    SELECT DISTINCT i.org_id, 1 FROM integrations i WHERE i.integration_id = ANY($3::uuid[])
    ORDER BY i.org_id
    ON CONFLICT (org_id) DO UPDATE SET version = v.version + 1
)
DELETE FROM daily_model_rollups r
USING touched t
WHERE r.integration_id = t.integration_id AND r.day = t.day
  AND NOT EXISTS (
      SELECT 1 FROM models m
      WHERE m.integration_id = r.integration_id AND m.day = r.day AND m.model = r.model)
"""

_UPSERT_SNAPSHOT: Final = """
INSERT INTO cycle_snapshots AS c (integration_id, cycle_start, total_cents, spenders, fetched_at)
SELECT $1, $2, $3, $4, $5
WHERE NOT EXISTS (
    SELECT 1 FROM integrations i WHERE i.integration_id = $1 AND i.status = 'purged')
ON CONFLICT (integration_id) DO UPDATE SET
    cycle_start = EXCLUDED.cycle_start,
    total_cents = EXCLUDED.total_cents,
    spenders = EXCLUDED.spenders,
    fetched_at = EXCLUDED.fetched_at
WHERE c.fetched_at <= EXCLUDED.fetched_at
RETURNING integration_id
"""

_INSERT_SNAPSHOT_MEMBERS: Final = """
INSERT INTO cycle_snapshot_members (
    integration_id, member_key, email, name, spend_cents, overall_spend_cents)
SELECT $1, t.member_key, t.email, t.name, t.spend_cents, t.overall_spend_cents
FROM unnest($2::text[], $3::text[], $4::text[], $5::numeric[], $6::numeric[])
    AS t(member_key, email, name, spend_cents, overall_spend_cents)
WHERE NOT EXISTS (
    SELECT 1 FROM integrations i JOIN erased_members e ON e.org_id = i.org_id
    WHERE i.integration_id = $1
      AND e.member_hash IN (member_hash(i.org_id, t.email), member_hash(i.org_id, lower(t.member_key))))
"""

_UPSERT_SEAT_SNAPSHOT: Final = """
INSERT INTO seat_snapshots AS c (
    integration_id, plan, total, never_used, active_30d, monthly_cents, cost_from,
    cost_monthly_cents, fetched_at)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9
WHERE NOT EXISTS (
    SELECT 1 FROM integrations i WHERE i.integration_id = $1 AND i.status = 'purged')
ON CONFLICT (integration_id) DO UPDATE SET
    plan = EXCLUDED.plan,
    total = EXCLUDED.total,
    never_used = EXCLUDED.never_used,
    active_30d = EXCLUDED.active_30d,
    monthly_cents = EXCLUDED.monthly_cents,
    cost_from = EXCLUDED.cost_from,
    cost_monthly_cents = EXCLUDED.cost_monthly_cents,
    fetched_at = EXCLUDED.fetched_at
WHERE c.fetched_at <= EXCLUDED.fetched_at
RETURNING integration_id
"""

_INSERT_SEATS: Final = """
INSERT INTO seats (
    integration_id, member_key, login, email, name, plan_type, price_cents, created_day,
    pending_cancellation_date, last_activity_at)
SELECT $1, t.member_key, t.login, t.email, t.name, t.plan_type, t.price_cents, t.created_day,
       t.pending_cancellation_date, t.last_activity_at
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[], $8::date[],
            $9::date[], $10::timestamptz[])
    AS t(member_key, login, email, name, plan_type, price_cents, created_day,
         pending_cancellation_date, last_activity_at)
WHERE NOT EXISTS (
    SELECT 1 FROM integrations i JOIN erased_members e ON e.org_id = i.org_id
    WHERE i.integration_id = $1
      AND e.member_hash IN (
          member_hash(i.org_id, t.email), member_hash(i.org_id, 'github:' || lower(t.login)),
          member_hash(i.org_id, lower(t.member_key))))
"""

# Keys are unique within a chunk (the decoder keeps the newest per key).
_UPSERT_DAY_SPEND: Final = """
INSERT INTO day_spend AS d (integration_id, day, source, cents, fetched_at)
SELECT t.integration_id, t.day, t.source, t.cents, t.fetched_at
FROM unnest($1::uuid[], $2::date[], $3::text[], $4::numeric[], $5::timestamptz[])
    AS t(integration_id, day, source, cents, fetched_at)
WHERE NOT EXISTS (
    SELECT 1 FROM integrations i WHERE i.integration_id = t.integration_id AND i.status = 'purged')
ON CONFLICT (integration_id, day, source) DO UPDATE SET
    cents = EXCLUDED.cents,
    fetched_at = EXCLUDED.fetched_at
WHERE d.fetched_at <= EXCLUDED.fetched_at
"""

# The data versions of the given orgs and of the orgs that own the given integrations, bumped
# (migration 0009). Always the last statement of its transaction and in org order: a
# transaction holding one of these row locks waits for nothing else, so two writers never
# deadlock on them.
_BUMP_DATA_VERSIONS: Final = """
INSERT INTO data_versions AS v (org_id, version)
SELECT o.org_id, 1
FROM (
    SELECT unnest($1::text[]) AS org_id
    UNION
    SELECT org_id FROM integrations WHERE integration_id = ANY($2::uuid[])
) o
ORDER BY o.org_id
ON CONFLICT (org_id) DO UPDATE SET version = v.version + 1
"""

_DATA_VERSION: Final = "SELECT version FROM data_versions WHERE org_id = $1"

# Each projection statement applies its event only when its sequence follows the last one
# applied to that integration (sequence_follows, migration 0002) and returns a row if it did.
_CONNECTED: Final = """
INSERT INTO integrations AS i (
    integration_id, org_id, provider, external_id, status, connected_at, event_seq)
VALUES ($1, $2, $3, $4, 'connected', $5, $6)
ON CONFLICT (integration_id) DO UPDATE SET
    org_id = EXCLUDED.org_id,
    provider = EXCLUDED.provider,
    external_id = EXCLUDED.external_id,
    status = 'connected',
    connected_at = EXCLUDED.connected_at,
    event_seq = EXCLUDED.event_seq
WHERE sequence_follows(EXCLUDED.event_seq, i.event_seq)
RETURNING status
"""

_ROTATED: Final = """
UPDATE integrations SET event_seq = $2
WHERE integration_id = $1 AND sequence_follows($2, event_seq)
RETURNING status
"""

_DISCONNECTED: Final = """
INSERT INTO integrations AS i (integration_id, org_id, provider, status, event_seq)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (integration_id) DO UPDATE SET
    status = CASE WHEN i.status = 'purged' THEN 'purged' ELSE EXCLUDED.status END,
    -- A purged integration is kept as a tombstone (late records are dropped) without its team.
    external_id = CASE WHEN EXCLUDED.status = 'purged' OR i.status = 'purged' THEN NULL
                       ELSE i.external_id END,
    event_seq = EXCLUDED.event_seq
WHERE sequence_follows(EXCLUDED.event_seq, i.event_seq)
RETURNING status
"""

_PURGED_TABLES: Final = (
    "member_day_models",
    "member_days",
    "daily_model_rollups",
    "daily_rollups",
    "cycle_snapshots",  # its member rows go with it (ON DELETE CASCADE)
    "seat_snapshots",  # its seats go with it (ON DELETE CASCADE)
    "day_spend",
    "sync_status",
)

_SYNC_STATUS: Final = """
INSERT INTO sync_status AS s (
    integration_id, state, reason_code, message, data_through, last_success_at, status_seq)
SELECT $1, $2, $3, $4, $5, $6, $7
WHERE NOT EXISTS (
    SELECT 1 FROM integrations i WHERE i.integration_id = $1 AND i.status = 'purged')
ON CONFLICT (integration_id) DO UPDATE SET
    state = EXCLUDED.state,
    reason_code = EXCLUDED.reason_code,
    message = EXCLUDED.message,
    data_through = coalesce(EXCLUDED.data_through, s.data_through),
    last_success_at = coalesce(EXCLUDED.last_success_at, s.last_success_at),
    status_seq = EXCLUDED.status_seq
WHERE sequence_follows(EXCLUDED.status_seq, s.status_seq)
RETURNING state
"""

# The org's connected integrations with freshness, cycle snapshot, seats block and seat cost
# steps, daily rollups and day spend (as arrays) and model totals, in one round trip. The model
# totals count only the days the viewer may see: every day for admins ($5), else days with at
# least the org's min_group_size active members ($6 when the org set no policy), whose policy
# comes back with each row. Day spend is read from $7 (the earlier of the range's start and the
# Copilot cycle's start) by its primary key.
_PROVIDERS: Final = """
SELECT i.integration_id, i.provider, s.state, s.reason_code, s.message, s.data_through,
       s.last_success_at,
       c.cycle_start, c.total_cents AS cycle_total_cents, c.spenders AS cycle_spenders,
       o.members_can_see_spend, o.min_group_size,
       r.days, r.member_days, r.active_users, r.requests, r.charged_cents,
       mo.models, mo.model_requests,
       ss.total AS seats_total, ss.never_used, ss.active_30d, ss.monthly_cents,
       ss.cost_from, ss.cost_monthly_cents,
       sp.spend_days, sp.spend_cents
FROM integrations i
LEFT JOIN org_settings o ON o.org_id = i.org_id
LEFT JOIN sync_status s ON s.integration_id = i.integration_id
LEFT JOIN cycle_snapshots c ON c.integration_id = i.integration_id
LEFT JOIN seat_snapshots ss ON ss.integration_id = i.integration_id
CROSS JOIN LATERAL (
    SELECT array_agg(x.day) AS spend_days, array_agg(x.cents) AS spend_cents
    FROM (
        SELECT ds.day, sum(ds.cents) AS cents
        FROM day_spend ds
        WHERE ds.integration_id = i.integration_id AND ds.day BETWEEN $7 AND $4
        GROUP BY ds.day
    ) x
) sp
CROSS JOIN LATERAL (
    SELECT array_agg(d.day) AS days, array_agg(d.member_days) AS member_days,
           array_agg(d.active_users) AS active_users, array_agg(d.requests) AS requests,
           array_agg(d.charged_cents) AS charged_cents
    FROM daily_rollups d
    WHERE d.integration_id = i.integration_id AND d.day BETWEEN $3 AND $4
) r
CROSS JOIN LATERAL (
    SELECT array_agg(x.model) AS models, array_agg(x.requests) AS model_requests
    FROM (
        SELECT m.model, sum(m.requests)::bigint AS requests
        FROM daily_model_rollups m
        JOIN daily_rollups d ON d.integration_id = m.integration_id AND d.day = m.day
        WHERE m.integration_id = i.integration_id AND m.day BETWEEN $3 AND $4
          AND d.active_users >= CASE WHEN $5 THEN 0 ELSE coalesce(o.min_group_size, $6) END
        GROUP BY m.model
    ) x
) mo
WHERE i.org_id = $1 AND i.status = 'connected' AND ($2::text IS NULL OR i.provider = $2)
ORDER BY i.provider, i.connected_at, i.integration_id
"""

# Members with activity in the range and seat holders (seat cost is added by the analytics).
# The top model is a named one: "unattributed" (Copilot requests no model explains) is not.
_MEMBERS: Final = """
WITH ints AS (
    SELECT integration_id, provider FROM integrations
    WHERE org_id = $1 AND status = 'connected' AND ($2::text IS NULL OR provider = $2)
), activity AS (
    SELECT m.integration_id, m.member_key,
           (array_agg(m.email ORDER BY m.day DESC))[1] AS email,
           (array_agg(m.login ORDER BY m.day DESC))[1] AS login,
           (array_agg(m.name ORDER BY m.day DESC))[1] AS name,
           (count(*) FILTER (WHERE m.is_active))::int AS active_days,
           sum(m.requests)::bigint AS requests,
           sum(m.charged_cents) AS spend_cents
    FROM member_days m JOIN ints USING (integration_id)
    WHERE m.day BETWEEN $3 AND $4
    GROUP BY m.integration_id, m.member_key
), top AS (
    SELECT DISTINCT ON (x.integration_id, x.member_key) x.integration_id, x.member_key, x.model
    FROM (
        SELECT mm.integration_id, mm.member_key, mm.model, sum(mm.requests) AS requests
        FROM member_day_models mm JOIN ints USING (integration_id)
        WHERE mm.day BETWEEN $3 AND $4
        GROUP BY mm.integration_id, mm.member_key, mm.model
    ) x
    WHERE x.requests > 0 AND x.model <> 'unattributed'
    ORDER BY x.integration_id, x.member_key, x.requests DESC, x.model
), seat AS (
    SELECT s.integration_id, s.member_key, s.login, s.email, s.name, s.price_cents,
           s.created_day, s.pending_cancellation_date
    FROM seats s JOIN ints USING (integration_id)
)
SELECT ints.provider, coalesce(a.email, seat.email) AS email,
       coalesce(a.login, seat.login) AS login, coalesce(a.name, seat.name) AS name,
       coalesce(a.active_days, 0) AS active_days, coalesce(a.requests, 0) AS requests,
       coalesce(a.spend_cents, 0) AS spend_cents, top.model AS top_model,
       seat.price_cents, seat.created_day, seat.pending_cancellation_date
FROM activity a
FULL JOIN seat USING (integration_id, member_key)
JOIN ints USING (integration_id)
LEFT JOIN top USING (integration_id, member_key)
"""


class MetricsRepository:
    """Reads and writes of the metrics schema. Every write method is one transaction."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    @staticmethod
    async def prepare_connection(conn: asyncpg.Connection[Any]) -> None:
        """Per-connection setup (the pool's init hook): the ingest's staging tables."""
        await conn.execute(_STAGE_TABLES)

    @staticmethod
    async def reset_connection(_conn: asyncpg.Connection[Any]) -> None:
        """Nothing to reset when a connection goes back to the pool (the pool's reset hook).

        The service leaves no session state behind: its advisory locks are transaction-level,
        it never runs ``SET``, ``LISTEN`` or a cursor outside a transaction, and its staging
        tables are meant to outlive the checkout. asyncpg's default reset would cost a round
        trip per checkout, as much as the summary's version lookup itself."""

    async def ping(self) -> None:
        async with self._pool.acquire(timeout=3) as conn:
            await conn.fetchval("SELECT 1")

    # --- ingest -------------------------------------------------------------------------------

    async def store_usage(
        self,
        usage: UsageCopy,
        snapshots: Sequence[SnapshotRows],
        seats: Sequence[SeatsRows] = (),
        day_spend: Sequence[DaySpendRow] = (),
    ) -> StoreOutcome:
        """Upsert member days (with their models), spend snapshots, seats snapshots and day
        spend, and recompute the rollups of every touched day, in one transaction."""
        integrations = dict(usage.integrations)
        others: list[SnapshotRows | SeatsRows | DaySpendRow] = [*snapshots, *seats, *day_spend]
        for other in others:
            integrations.setdefault(other.integration_id, (other.org_id, other.provider))
        if not integrations:
            return StoreOutcome(0, 0)
        ids = sorted(integrations)
        written_days = 0
        written_snapshots = 0
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_LOCK_INTEGRATIONS, sorted({integration_lock_key(i) for i in ids}))
            await conn.execute(
                _PLACEHOLDER_INTEGRATIONS,
                ids,
                [integrations[i][0] for i in ids],
                [integrations[i][1] for i in ids],
            )
            for snapshot in snapshots:
                written_snapshots += await self._upsert_snapshot(conn, snapshot)
            written_seats = 0
            for seat_snapshot in seats:
                written_seats += await self._upsert_seats(conn, seat_snapshot)
            written_spends = await self._upsert_day_spend(conn, day_spend)
            # Member days last: their rollup statement also bumps the data versions, which must
            # be the transaction's last step (else a statement of its own does).
            bumped = False
            erased = 0
            if usage.member_day_count:
                written_days, erased, bumped = await self._upsert_member_days(
                    conn, usage, ids, sorted({org for org, _ in usage.integrations.values()})
                )
            if not bumped:
                await bump_data_versions(conn, (), ids)
        return StoreOutcome(
            written_days, written_snapshots, written_seats, written_spends, erased=erased
        )

    @staticmethod
    async def _upsert_member_days(
        conn: Connection, usage: UsageCopy, integration_ids: Sequence[UUID], org_ids: list[str]
    ) -> tuple[int, int, bool]:
        """Upsert the member days and their models and refresh the touched rollups; returns the
        member days written, those dropped for an erased member, and whether the data versions
        of ``integration_ids``' orgs were bumped (by the rollup statement, when any member day
        was written)."""
        await _copy_text(conn, "stage_member_days", usage.member_days, MEMBER_DAY_COLUMNS)
        erased = 0
        tombstoned = [r["org_id"] for r in await conn.fetch(_ORGS_WITH_TOMBSTONES, org_ids)]
        if tombstoned:
            status: str = await conn.execute(_DROP_ERASED_MEMBER_DAYS, tombstoned)
            erased = int(status.rsplit(" ", 1)[-1])
        touched = await conn.fetch(_UPSERT_MEMBER_DAYS)
        if not touched:
            return 0, erased, False
        accepted = sum(int(row["member_days"]) for row in touched)
        replaced = any(row["replaced"] for row in touched)
        if replaced:
            await conn.execute(_DELETE_REPLACED_MODELS)
        if usage.model_count and accepted == usage.member_day_count and not replaced:
            # Every member day is new: its models cannot exist yet, so they go straight in.
            await _copy_text(conn, "member_day_models", usage.models, MODEL_COLUMNS)
        elif usage.model_count:
            await _copy_text(conn, "stage_member_day_models", usage.models, MODEL_COLUMNS)
            await conn.execute(_INSERT_ACCEPTED_MODELS)
        await conn.execute(
            REFRESH_ROLLUPS,
            [row["integration_id"] for row in touched],
            [row["day"] for row in touched],
            list(integration_ids),
        )
        return accepted, erased, True

    @staticmethod
    async def _upsert_snapshot(conn: Connection, snapshot: SnapshotRows) -> int:
        kept = await conn.fetchval(
            _UPSERT_SNAPSHOT,
            snapshot.integration_id,
            snapshot.cycle_start,
            snapshot.total_cents,
            snapshot.spenders,
            snapshot.fetched_at,
        )
        if kept is None:
            return 0
        await conn.execute(
            "DELETE FROM cycle_snapshot_members WHERE integration_id = $1",
            snapshot.integration_id,
        )
        if snapshot.members:
            columns = list(zip(*snapshot.members, strict=True))
            await conn.execute(_INSERT_SNAPSHOT_MEMBERS, snapshot.integration_id, *columns)
        return 1

    @staticmethod
    async def _upsert_seats(conn: Connection, snapshot: SeatsRows) -> int:
        counts = snapshot.counts
        kept = await conn.fetchval(
            _UPSERT_SEAT_SNAPSHOT,
            snapshot.integration_id,
            snapshot.plan,
            counts.total,
            counts.never_used,
            counts.active_30d,
            counts.monthly_cents,
            list(snapshot.cost.starts),
            list(snapshot.cost.monthly_cents),
            snapshot.fetched_at,
        )
        if kept is None:
            return 0
        await conn.execute("DELETE FROM seats WHERE integration_id = $1", snapshot.integration_id)
        if snapshot.seats:
            columns = list(zip(*snapshot.seats, strict=True))
            await conn.execute(_INSERT_SEATS, snapshot.integration_id, *columns)
        return 1

    @staticmethod
    async def _upsert_day_spend(conn: Connection, rows: Sequence[DaySpendRow]) -> int:
        if not rows:
            return 0
        status: str = await conn.execute(
            _UPSERT_DAY_SPEND,
            [r.integration_id for r in rows],
            [r.day for r in rows],
            [r.source for r in rows],
            [r.cents for r in rows],
            [r.fetched_at for r in rows],
        )
        return int(status.rsplit(" ", 1)[-1])

    async def apply_integration_events(self, events: Sequence[IntegrationEvent]) -> list[bool]:
        """Apply integration lifecycle events in order, in one transaction; returns, per event,
        whether it was applied. An event whose ``sequence`` does not follow the last one applied
        to its integration changes nothing (a redelivery or an overtaken event)."""
        applied: list[bool] = []
        ids = sorted({event.integration_id for event in events})
        async with self._pool.acquire() as conn, conn.transaction():
            # An integration may move between orgs: the org it leaves changes too.
            orgs = {event.org_id for event in events}
            orgs.update(
                row["org_id"]
                for row in await conn.fetch(
                    "SELECT org_id FROM integrations WHERE integration_id = ANY($1::uuid[])", ids
                )
            )
            for event in events:
                if isinstance(event, IntegrationConnected):
                    status = await conn.fetchval(
                        _CONNECTED,
                        event.integration_id,
                        event.org_id,
                        event.provider,
                        event.external_id,
                        event.occurred_at,
                        event.sequence,
                    )
                elif isinstance(event, IntegrationDisconnected):
                    status = await self._disconnect(conn, event)
                else:
                    # A rotation changes nothing the metrics show but its place in the order.
                    status = await conn.fetchval(_ROTATED, event.integration_id, event.sequence)
                applied.append(status is not None)
            if any(applied):
                await bump_data_versions(conn, sorted(orgs), ids)
        return applied

    @staticmethod
    async def _disconnect(conn: Connection, event: IntegrationDisconnected) -> str | None:
        if event.purge:
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1)", integration_lock_key(event.integration_id)
            )
        status: str | None = await conn.fetchval(
            _DISCONNECTED,
            event.integration_id,
            event.org_id,
            event.provider,
            "purged" if event.purge else "disconnected",
            event.sequence,
        )
        if status == "purged" and event.purge:
            for table in _PURGED_TABLES:
                await conn.execute(
                    f"DELETE FROM {table} WHERE integration_id = $1",  # noqa: S608 - constant names
                    event.integration_id,
                )
        return status

    async def apply_sync_statuses(self, events: Sequence[SyncStatusChanged]) -> list[bool]:
        """Apply sync-status events in order, in one transaction; returns, per event, whether it
        was applied (one whose ``sequence`` does not follow the last one applied is skipped)."""
        applied: list[bool] = []
        async with self._pool.acquire() as conn, conn.transaction():
            for event in events:
                state = await conn.fetchval(
                    _SYNC_STATUS,
                    event.integration_id,
                    event.state,
                    event.reason_code,
                    event.message,
                    event.data_through,
                    event.last_success_at,
                    event.sequence,
                )
                applied.append(state is not None)
            if any(applied):
                await bump_data_versions(
                    conn, (), sorted({event.integration_id for event in events})
                )
        return applied

    # --- queries ------------------------------------------------------------------------------

    async def org_policy(self, org_id: str) -> Policy:
        row = await self._pool.fetchrow(
            "SELECT members_can_see_spend, min_group_size, cursor_seat_price_cents, retention_days "
            "FROM org_settings WHERE org_id = $1",
            org_id,
        )
        if row is None:
            return DEFAULT_POLICY
        return _policy(row)

    async def save_org_policy(self, org_id: str, policy: Policy, actor: audit.Actor) -> Policy:
        """Replace the org's policy and record the change in the audit log, in one transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            previous = await conn.fetchrow(
                "SELECT members_can_see_spend, min_group_size, cursor_seat_price_cents, "
                "retention_days FROM org_settings WHERE org_id = $1 FOR UPDATE",
                org_id,
            )
            row = await conn.fetchrow(
                """
                INSERT INTO org_settings (
                    org_id, members_can_see_spend, min_group_size, cursor_seat_price_cents,
                    retention_days, updated_by)
                VALUES ($1, $2, $3, $4, $5, $6)
                ON CONFLICT (org_id) DO UPDATE SET
                    members_can_see_spend = EXCLUDED.members_can_see_spend,
                    min_group_size = EXCLUDED.min_group_size,
                    cursor_seat_price_cents = EXCLUDED.cursor_seat_price_cents,
                    retention_days = EXCLUDED.retention_days,
                    updated_by = EXCLUDED.updated_by,
                    updated_at = now()
                RETURNING members_can_see_spend, min_group_size, cursor_seat_price_cents,
                    retention_days
                """,
                org_id,
                policy.members_can_see_spend,
                policy.min_group_size,
                policy.cursor_seat_price_cents,
                policy.retention_days,
                actor.sub,
            )
            assert row is not None  # noqa: S101 - INSERT ... RETURNING always returns the row
            await audit.record(
                conn,
                org_id=org_id,
                actor=actor,
                action="settings.update",
                target=org_id,
                details={**dict(row), "previous": dict(previous) if previous is not None else None},
            )
            await bump_data_versions(conn, [org_id], ())
        return _policy(row)

    async def audit_page(
        self, org_id: str, *, limit: int, before: int | None
    ) -> audit.AuditLogPage:
        """The org's audit log in this service (the pool's search_path names the schema)."""
        return await audit.page(self._pool, org_id=org_id, limit=limit, before=before)

    async def data_version(self, org_id: str) -> int:
        """The org's data version: it changes with every commit that changes its summary."""
        version: int | None = await self._pool.fetchval(_DATA_VERSION, org_id)
        return 0 if version is None else version

    async def provider_data(
        self, org_id: str, provider: str | None, day_range: DayRange, *, is_admin: bool
    ) -> tuple[Policy, list[ProviderData]]:
        """The org's privacy policy and the rollups of its connected integrations over the
        range, in one query; model totals only over the days the viewer may see (see
        :func:`koalr_metrics.analytics.visible_threshold`). With no integration to show, the
        policy is not read and the defaults come back."""
        rows = await self._pool.fetch(
            _PROVIDERS,
            org_id,
            provider,
            day_range.start,
            day_range.end,
            is_admin,
            DEFAULT_POLICY.min_group_size,
            day_range.first_spend_day,
        )
        policy = DEFAULT_POLICY
        if rows and rows[0]["min_group_size"] is not None:
            policy = Policy(rows[0]["members_can_see_spend"], rows[0]["min_group_size"])
        return policy, [_provider_data(row) for row in rows]

    async def member_activity(
        self, org_id: str, provider: str | None, day_range: DayRange
    ) -> list[MemberActivity]:
        rows = await self._pool.fetch(_MEMBERS, org_id, provider, day_range.start, day_range.end)
        return [
            MemberActivity(
                provider=row["provider"],
                email=row["email"],
                login=row["login"],
                name=row["name"],
                active_days=row["active_days"],
                requests=row["requests"],
                top_model=row["top_model"],
                spend_cents=row["spend_cents"],
                seat=None
                if row["price_cents"] is None
                else BilledSeat(
                    row["price_cents"], row["created_day"], row["pending_cancellation_date"]
                ),
            )
            for row in rows
        ]


async def bump_data_versions(
    conn: Connection, org_ids: Sequence[str], integration_ids: Sequence[UUID]
) -> None:
    """Bump the data versions of ``org_ids`` and of the orgs owning ``integration_ids``; the
    last statement of the transaction (see ``_BUMP_DATA_VERSIONS``)."""
    await conn.execute(_BUMP_DATA_VERSIONS, list(org_ids), list(integration_ids))


async def _copy_text(conn: Connection, table: str, data: bytes, columns: Sequence[str]) -> None:
    """``COPY table (columns) FROM STDIN`` in text format, from already rendered lines."""

    async def source() -> AsyncIterator[bytes]:
        yield data

    await conn.copy_to_table(table, source=source(), columns=columns, format="text")


def _provider_data(row: asyncpg.Record) -> ProviderData:
    days: list[date] = row["days"] or []
    days_rollups = [
        DayRollup(day, member_days, active, requests, cents)
        for day, member_days, active, requests, cents in zip(
            days,
            row["member_days"] or [],
            row["active_users"] or [],
            row["requests"] or [],
            row["charged_cents"] or [],
            strict=True,
        )
    ]
    models = [
        ModelTotal(model, requests)
        for model, requests in zip(row["models"] or [], row["model_requests"] or [], strict=True)
    ]
    last_success_at: datetime | None = row["last_success_at"]
    seat_counts = None
    if row["seats_total"] is not None:
        seat_counts = SeatCounts(
            row["seats_total"], row["never_used"], row["active_30d"], row["monthly_cents"]
        )
    cost_from: list[date] | None = row["cost_from"]
    return ProviderData(
        integration_id=row["integration_id"],
        provider=row["provider"],
        state=row["state"],
        reason=None
        if row["reason_code"] is None
        else StatusReason(row["reason_code"], row["message"]),
        data_through=row["data_through"],
        last_success_at=last_success_at,
        cycle_start=row["cycle_start"],
        cycle_total_cents=row["cycle_total_cents"],
        cycle_spenders=row["cycle_spenders"],
        days=days_rollups,
        models=models,
        day_spend=list(zip(row["spend_days"] or [], row["spend_cents"] or [], strict=True)),
        seat_cost=NO_SEAT_COST
        if cost_from is None
        else SeatCost(cost_from, row["cost_monthly_cents"]),
        seat_counts=seat_counts,
    )


# --- insights and alerts ----------------------------------------------------------------------

# Per connected integration of the org: distinct members active in the range ($3..$4), the
# first day with usage or day spend, and the last data_through.
_INSIGHTS_INTEGRATIONS: Final = """
SELECT i.integration_id, i.provider, s.data_through,
       (SELECT count(DISTINCT m.member_key) FROM member_days m
        WHERE m.integration_id = i.integration_id AND m.day BETWEEN $3 AND $4
          AND m.is_active)::int AS active_members,
       least((SELECT min(d.day) FROM daily_rollups d WHERE d.integration_id = i.integration_id),
             (SELECT min(d.day) FROM day_spend d WHERE d.integration_id = i.integration_id))
           AS first_data_day
FROM integrations i
LEFT JOIN sync_status s ON s.integration_id = i.integration_id
WHERE i.org_id = $1 AND i.status = 'connected' AND ($2::text IS NULL OR i.provider = $2)
"""

# Copilot seats of the newest snapshot with the first active day on or after the seat's day.
_INSIGHTS_SEATS: Final = """
WITH ints AS (
    SELECT integration_id FROM integrations
    WHERE org_id = $1 AND status = 'connected' AND provider = 'github_copilot'
      AND ($2::text IS NULL OR provider = $2)
), first_use AS (
    SELECT m.integration_id, m.member_key, min(m.day) AS first_active
    FROM member_days m
    JOIN seats s USING (integration_id, member_key)
    JOIN ints USING (integration_id)
    WHERE m.is_active AND m.day >= s.created_day
    GROUP BY m.integration_id, m.member_key
)
SELECT s.integration_id, s.member_key, s.login, s.email, s.name, s.price_cents, s.created_day,
       s.last_activity_at, ss.fetched_at, f.first_active
FROM seats s
JOIN ints USING (integration_id)
JOIN seat_snapshots ss USING (integration_id)
LEFT JOIN first_use f USING (integration_id, member_key)
"""

# Cursor members: every member with a row (active or not) or a line in the newest spend
# snapshot, with their first day, first and last active days, and whether they have a row and
# an active day in the 30 days ending at the integration's data_through ($3 when none).
_INSIGHTS_CURSOR_MEMBERS: Final = """
WITH ints AS (
    SELECT i.integration_id, coalesce(st.data_through, $3) AS as_of
    FROM integrations i LEFT JOIN sync_status st USING (integration_id)
    WHERE i.org_id = $1 AND i.status = 'connected' AND i.provider = 'cursor'
      AND ($2::text IS NULL OR i.provider = $2)
), days AS (
    SELECT m.integration_id, m.member_key,
           (array_agg(m.email ORDER BY m.day DESC))[1] AS email,
           (array_agg(m.name ORDER BY m.day DESC))[1] AS name,
           min(m.day) AS first_seen,
           min(m.day) FILTER (WHERE m.is_active) AS first_active,
           max(m.day) FILTER (WHERE m.is_active) AS last_active,
           bool_or(m.day BETWEEN ints.as_of - 29 AND ints.as_of) AS in_window,
           bool_or(m.is_active AND m.day BETWEEN ints.as_of - 29 AND ints.as_of)
               AS active_in_window
    FROM member_days m JOIN ints USING (integration_id)
    WHERE m.day <= ints.as_of
    GROUP BY m.integration_id, m.member_key
), snapshot AS (
    SELECT c.integration_id, c.member_key, c.email, c.name
    FROM cycle_snapshot_members c JOIN ints USING (integration_id)
)
SELECT integration_id, member_key, coalesce(d.email, sn.email) AS email,
       coalesce(d.name, sn.name) AS name, d.first_seen, d.first_active, d.last_active,
       coalesce(d.in_window, false) OR sn.member_key IS NOT NULL AS known,
       coalesce(d.active_in_window, false) AS active_in_window
FROM days d FULL JOIN snapshot sn USING (integration_id, member_key)
"""

_UNPUBLISHED_ALERTS: Final = """
SELECT alert_key, event FROM alerts WHERE published_at IS NULL
ORDER BY created_at, alert_key LIMIT $1
"""

ALERTS_LOCK_KEY: Final = zlib.crc32(b"koalr-metrics:alerts")
"""Advisory lock held by the replica evaluating and publishing alerts (one at a time)."""


@dataclass(frozen=True, slots=True)
class InsightsRows:
    """What the insights read beside the summary's provider data, per integration."""

    integrations: dict[UUID, tuple[Provider, date | None, int, date | None]]
    """integration -> (provider, data_through, active members in range, first data day)."""
    holders: dict[UUID, list[SeatHolder]]
    cursor_seat_price_cents: int


class InsightsRepository:
    """Reads of the insights and the alerts outbox (insert-if-new, publish, mark published)."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def insights_rows(
        self, org_id: str, provider: str | None, day_range: DayRange
    ) -> InsightsRows:
        """Active members, first data days, Copilot seats and Cursor members of the org's
        connected integrations (``day_range.end`` stands for ``data_through`` when a Cursor
        integration has none yet)."""
        async with self._pool.acquire() as conn:
            ints = await conn.fetch(
                _INSIGHTS_INTEGRATIONS, org_id, provider, day_range.start, day_range.end
            )
            seats = await conn.fetch(_INSIGHTS_SEATS, org_id, provider)
            cursor = await conn.fetch(_INSIGHTS_CURSOR_MEMBERS, org_id, provider, day_range.end)
            price = await conn.fetchval(
                "SELECT cursor_seat_price_cents FROM org_settings WHERE org_id = $1", org_id
            )
        cursor_price = DEFAULT_POLICY.cursor_seat_price_cents if price is None else int(price)
        holders: dict[UUID, list[SeatHolder]] = {}
        for row in seats:
            last: datetime | None = row["last_activity_at"]
            fetched_at: datetime = row["fetched_at"]
            holders.setdefault(row["integration_id"], []).append(
                SeatHolder(
                    member_key=row["member_key"],
                    email=row["email"],
                    login=row["login"],
                    name=row["name"],
                    seat_since=row["created_day"],
                    first_active=row["first_active"],
                    last_active=None if last is None else last.date(),
                    active_recently=last is not None and last >= fetched_at - ACTIVE_WINDOW,
                    never_used=last is None,
                    monthly_cents=row["price_cents"],
                )
            )
        for row in cursor:
            if not row["known"]:
                continue  # gone from the team: no row in the window, not in the spend snapshot
            holders.setdefault(row["integration_id"], []).append(
                SeatHolder(
                    member_key=row["member_key"],
                    email=row["email"],
                    login=None,
                    name=row["name"],
                    seat_since=row["first_seen"],
                    first_active=row["first_active"],
                    last_active=row["last_active"],
                    active_recently=row["active_in_window"],
                    never_used=row["first_active"] is None,
                    monthly_cents=cursor_price,
                )
            )
        return InsightsRows(
            {
                row["integration_id"]: (
                    row["provider"],
                    row["data_through"],
                    row["active_members"],
                    row["first_data_day"],
                )
                for row in ints
            },
            holders,
            cursor_price,
        )

    async def orgs_with_integrations(self) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT DISTINCT org_id FROM integrations WHERE status = 'connected' ORDER BY org_id"
        )
        return [row["org_id"] for row in rows]

    async def insert_alerts(self, alerts: Sequence[Alert]) -> int:
        """Insert the alerts not recorded yet (by ``alert_key``); returns how many were new."""
        if not alerts:
            return 0
        status: str = await self._pool.execute(
            """
            INSERT INTO alerts (alert_key, org_id, integration_id, kind, day, event)
            SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[], $5::date[],
                                 $6::text[])
            ON CONFLICT (alert_key) DO NOTHING
            """,
            [a.alert_key for a in alerts],
            [a.org_id for a in alerts],
            [a.integration_id for a in alerts],
            [a.kind for a in alerts],
            [a.day for a in alerts],
            [a.model_dump_json() for a in alerts],
        )
        return int(status.rsplit(" ", 1)[-1])

    async def unpublished_alerts(self, limit: int = 1000) -> list[tuple[str, str]]:
        """``(alert_key, encoded event)`` of alerts recorded but not yet acknowledged by Kafka."""
        rows = await self._pool.fetch(_UNPUBLISHED_ALERTS, limit)
        return [(row["alert_key"], row["event"]) for row in rows]

    async def mark_published(self, keys: Sequence[str]) -> None:
        await self._pool.execute(
            "UPDATE alerts SET published_at = now() "
            "WHERE alert_key = ANY($1::text[]) AND published_at IS NULL",
            list(keys),
        )

    @asynccontextmanager
    async def alerts_lock(self) -> AsyncIterator[bool]:
        """Try the alerts advisory lock for the block; yields whether this replica holds it."""
        async with self._pool.acquire() as conn:
            held = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", ALERTS_LOCK_KEY))
            try:
                yield held
            finally:
                if held:
                    await conn.execute("SELECT pg_advisory_unlock($1)", ALERTS_LOCK_KEY)


def _policy(row: asyncpg.Record) -> Policy:
    return Policy(
        members_can_see_spend=row["members_can_see_spend"],
        min_group_size=row["min_group_size"],
        cursor_seat_price_cents=row["cursor_seat_price_cents"],
        retention_days=row["retention_days"],
    )
