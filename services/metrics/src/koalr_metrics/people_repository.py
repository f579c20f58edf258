"""SQL of the people across tools: the identity mapping and the people view (asyncpg; the
pool's ``search_path`` is the service schema). Kept beside :mod:`koalr_metrics.repository` so the
cross-tool reads stay in one place; the rules they implement are in :mod:`koalr_metrics.people`.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any, Final

import asyncpg

from koalr_metrics.analytics import DayRange
from koalr_metrics.people import Identity, PageAfter, Person, ToolFigures
from koalr_runtime import audit


def identities_lock_key(org_id: str) -> int:
    """Advisory lock key serialising the replacements of one org's mapping (two concurrent
    PUTs each delete then insert: without it the second would collide on the keys)."""
    return zlib.crc32(b"koalr-metrics:identities:" + org_id.encode())


# The people of an org over [$2, $3]: every connected integration's members as /members counts
# them (member days in the range, plus Copilot seat holders with their seat's cost), summed per
# tool by identity (a Cursor member's lowercased email, a Copilot member's lowercased login),
# then joined through the org's mapping: email side FULL JOIN mapping FULL JOIN login side. A
# row needs data on at least one side. Ordered by total spend descending, then sort key; $4 is
# the page size (NULL: all), $5/$6 the position of the previous page's last row (NULL: first).
#
# The member days are read once, by plain aggregates (PostgreSQL hashes them, in parallel where
# it can, instead of sorting them), together with each member's latest day in the range; the
# email, login and name of that day (what /members shows) then come from one primary-key
# lookup per member (LIMIT 1 keeps the lookup a nested loop rather than a second scan). The
# integrations are an array computed once, so the scan filters by a plain comparison.
#
# A seat's cost (architecture 6b), as koalr_metrics.seats.BilledSeat.cost computes it: per
# calendar month of the range, price x billed days / days in the month, summed, rounded once to
# 1e-5 cent. No tie can occur at that digit (months have 28 to 31 days) and numeric division
# keeps at least 16 significant digits, so the sum rounds exactly as the exact fraction does.
# The range's months are built once and joined to the seats (no per-seat subquery).
_PEOPLE: Final = """
WITH ints AS (
    SELECT integration_id, provider FROM integrations
    WHERE org_id = $1 AND status = 'connected'
), activity AS (
    SELECT t.integration_id, t.member_key, l.email, l.login, l.name, t.active_days,
           t.requests, t.charged_cents
    FROM (
        SELECT m.integration_id, m.member_key, max(m.day) AS last_day,
               (count(*) FILTER (WHERE m.is_active))::int AS active_days,
               sum(m.requests)::bigint AS requests,
               sum(m.charged_cents) AS charged_cents
        FROM member_days m
        WHERE m.integration_id = ANY (ARRAY(SELECT integration_id FROM ints))
          AND m.day BETWEEN $2 AND $3
        GROUP BY m.integration_id, m.member_key
    ) t
    CROSS JOIN LATERAL (
        SELECT l.email, l.login, l.name FROM member_days l
        WHERE l.integration_id = t.integration_id AND l.day = t.last_day
          AND l.member_key = t.member_key
        LIMIT 1
    ) l
), months AS (
    SELECT mo::date AS first_day, (mo + interval '1 month - 1 day')::date AS last_day,
           extract(day FROM mo + interval '1 month - 1 day') AS days
    FROM generate_series(date_trunc('month', $2::timestamp), $3::timestamp, interval '1 month')
        AS mo
), seat AS (
    SELECT s.integration_id, s.member_key, min(s.login) AS login, min(s.email) AS email,
           min(s.name) AS name,
           round(sum(
               (s.price_cents * greatest(0,
                   least($3::date, mo.last_day,
                         coalesce(s.pending_cancellation_date - 1, $3::date))
                   - greatest($2::date, mo.first_day, s.created_day) + 1))::numeric
               / mo.days), 5) AS cents
    FROM seats s JOIN ints USING (integration_id) CROSS JOIN months mo
    GROUP BY s.integration_id, s.member_key
), member AS (
    SELECT ints.provider,
           CASE WHEN ints.provider = 'cursor'
                THEN lower(coalesce(a.email, seat.email, a.member_key, seat.member_key))
                ELSE lower(coalesce(a.login, seat.login, a.member_key, seat.member_key))
           END AS ident,
           coalesce(a.name, seat.name) AS name,
           coalesce(a.active_days, 0) AS active_days,
           coalesce(a.requests, 0) AS requests,
           coalesce(a.charged_cents, 0) + coalesce(seat.cents, 0) AS spend_cents
    FROM activity a
    FULL JOIN seat USING (integration_id, member_key)
    JOIN ints USING (integration_id)
), tool AS (
    SELECT provider, ident, min(name) AS name,
           sum(active_days)::int AS active_days, sum(requests)::bigint AS requests,
           sum(spend_cents) AS spend_cents
    FROM member GROUP BY provider, ident
), cur AS (
    SELECT * FROM tool WHERE provider = 'cursor'
), cop AS (
    SELECT * FROM tool WHERE provider = 'github_copilot'
), ids AS (
    SELECT email, github_login FROM identities WHERE org_id = $1
), people AS (
    SELECT coalesce(ids.email, cur.ident) AS email,
           coalesce(ids.github_login, cop.ident) AS github_login,
           coalesce(cur.name, cop.name) AS name,
           cur.active_days AS cursor_active_days, cur.requests AS cursor_requests,
           cur.spend_cents AS cursor_spend_cents,
           cop.active_days AS copilot_active_days, cop.requests AS copilot_requests,
           cop.spend_cents AS copilot_spend_cents,
           coalesce(cur.spend_cents, 0) + coalesce(cop.spend_cents, 0) AS total_spend_cents
    FROM cur
    FULL JOIN ids ON ids.email = cur.ident
    FULL JOIN cop ON cop.ident = ids.github_login
    WHERE cur.ident IS NOT NULL OR cop.ident IS NOT NULL
), keyed AS (
    SELECT p.*, coalesce('e:' || p.email, 'l:' || p.github_login) AS sort_key FROM people p
)
SELECT * FROM keyed
WHERE $5::numeric IS NULL
   OR total_spend_cents < $5 OR (total_spend_cents = $5 AND sort_key > $6::text)
ORDER BY total_spend_cents DESC, sort_key
LIMIT $4
"""


class PeopleRepository:
    """Reads and writes of the identity mapping and the people view."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def replace_identities(
        self, org_id: str, identities: Sequence[Identity], actor: audit.Actor
    ) -> int:
        """Replace the org's mapping in one transaction: delete the old rows, COPY the new
        ones in, record the change in the audit log. Readers see the old mapping or the new
        one, never a mix."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", identities_lock_key(org_id))
            removed = await conn.execute("DELETE FROM identities WHERE org_id = $1", org_id)
            if identities:
                await conn.copy_records_to_table(
                    "identities",
                    records=[(org_id, *i) for i in identities],
                    columns=("org_id", "email", "github_login"),
                )
            await audit.record(
                conn,
                org_id=org_id,
                actor=actor,
                action="identities.replace",
                target=org_id,
                details={"identities": len(identities), "replaced": int(removed.split()[-1])},
            )
        return len(identities)

    async def identities(self, org_id: str) -> list[Identity]:
        rows = await self._pool.fetch(
            "SELECT email, github_login FROM identities WHERE org_id = $1 ORDER BY email",
            org_id,
        )
        return [Identity(row["email"], row["github_login"]) for row in rows]

    async def people(
        self, org_id: str, day_range: DayRange, *, limit: int, after: PageAfter | None
    ) -> list[Person]:
        """One page of people: at most ``limit`` rows after ``after`` (None: the first)."""
        rows = await self._pool.fetch(
            _PEOPLE,
            org_id,
            day_range.start,
            day_range.end,
            limit,
            None if after is None else after.total_spend_cents,
            None if after is None else after.sort_key,
        )
        return [_person(row) for row in rows]

    async def all_people(
        self, org_id: str, day_range: DayRange, *, batch: int = 500
    ) -> AsyncIterator[Person]:
        """Every person, in order, read through a server-side cursor ``batch`` rows at a time
        (the CSV export streams them as they come)."""
        async with self._pool.acquire() as conn, conn.transaction():
            cursor = conn.cursor(
                _PEOPLE, org_id, day_range.start, day_range.end, None, None, None, prefetch=batch
            )
            async for row in cursor:
                yield _person(row)


def _figures(row: asyncpg.Record, prefix: str) -> ToolFigures | None:
    cents: Decimal | None = row[f"{prefix}_spend_cents"]
    if cents is None:
        return None
    return ToolFigures(row[f"{prefix}_active_days"], row[f"{prefix}_requests"], cents)


def _person(row: asyncpg.Record) -> Person:
    return Person(
        email=row["email"],
        github_login=row["github_login"],
        name=row["name"],
        cursor=_figures(row, "cursor"),
        github_copilot=_figures(row, "copilot"),
        total_spend_cents=row["total_spend_cents"],
        sort_key=row["sort_key"],
    )
