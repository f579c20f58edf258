"""SQL of the registry: the integrations the syncer knows, their credentials and schedules."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from koalr_contracts import ErrorCode, IntegrationStatus, Plan, Provider
from koalr_syncer.model import ACTIVE_RUN_STATUSES, EventOrder, Integration, order_of
from koalr_syncer.repository.rows import Connection, Pool, integration_from_row


class IntegrationRepository:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def get(self, integration_id: UUID) -> Integration | None:
        row = await self._pool.fetchrow(
            "SELECT * FROM integrations WHERE integration_id = $1", integration_id
        )
        return None if row is None else integration_from_row(row)

    async def _order(
        self, conn: Connection, integration_id: UUID, event_id: UUID, sequence: int
    ) -> EventOrder:
        """Where an integration event stands against what was applied (row locked till commit)."""
        row = await conn.fetchrow(
            "SELECT last_event_seq, last_event_id FROM integrations "
            "WHERE integration_id = $1 FOR UPDATE",
            integration_id,
        )
        if row is None:
            purged = await conn.fetchval(
                "SELECT 1 FROM purged_integrations WHERE integration_id = $1", integration_id
            )
            return EventOrder.NEW if purged is None else EventOrder.STALE
        return order_of(event_id, sequence, row["last_event_id"], row["last_event_seq"])

    async def connect(
        self,
        *,
        integration_id: UUID,
        org_id: str,
        provider: Provider,
        external_id: str,
        plan: Plan,
        status: IntegrationStatus,
        status_reason: ErrorCode | None,
        sealed_credential: str,
        backfill_days: int,
        backfill_window: tuple[date, date],
        backfill_job_id: UUID,
        correlation_id: UUID,
        event_id: UUID,
        event_at: datetime,
        sequence: int,
        interval_s: float,
        first_run_in_s: float,
    ) -> EventOrder:
        """Register (or re-register) an integration, its schedule and its backfill window, whose
        repair waits for ``backfill_job_id``. Nothing changes unless the event is NEW or NEXT."""
        async with self._pool.acquire() as conn, conn.transaction():
            order = await self._order(conn, integration_id, event_id, sequence)
            if not order.applies:
                return order
            await conn.execute(
                """
                INSERT INTO integrations AS i (
                    integration_id, org_id, provider, external_id, plan, status, status_reason,
                    sealed_credential, backfill_days, correlation_id, last_event_id,
                    last_event_at, connected_at, last_event_seq, backfill_start, backfill_end)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14, $15)
                ON CONFLICT (integration_id) DO UPDATE SET
                    org_id = EXCLUDED.org_id, provider = EXCLUDED.provider,
                    external_id = EXCLUDED.external_id, plan = EXCLUDED.plan,
                    status = EXCLUDED.status, status_reason = EXCLUDED.status_reason,
                    sealed_credential = EXCLUDED.sealed_credential,
                    backfill_days = EXCLUDED.backfill_days,
                    correlation_id = EXCLUDED.correlation_id,
                    last_event_id = EXCLUDED.last_event_id,
                    last_event_at = EXCLUDED.last_event_at,
                    last_event_seq = EXCLUDED.last_event_seq,
                    backfill_start = EXCLUDED.backfill_start,
                    backfill_end = EXCLUDED.backfill_end,
                    connected_at = EXCLUDED.connected_at,
                    disconnected_at = NULL, updated_at = now()
                """,
                integration_id,
                org_id,
                provider,
                external_id,
                plan,
                status,
                status_reason,
                sealed_credential,
                backfill_days,
                correlation_id,
                event_id,
                event_at,
                sequence,
                backfill_window[0],
                backfill_window[1],
            )
            await conn.execute(
                """
                INSERT INTO schedules (integration_id, next_run_at, interval_s, repair_at,
                                       repair_job_id, repair_published_at)
                VALUES ($1, now() + make_interval(secs => $3), $2, now(), $4, now())
                ON CONFLICT (integration_id) DO UPDATE SET
                    interval_s = EXCLUDED.interval_s, paused = false, updated_at = now(),
                    next_run_at = LEAST(schedules.next_run_at, EXCLUDED.next_run_at),
                    repair_at = EXCLUDED.repair_at, repair_job_id = EXCLUDED.repair_job_id,
                    repair_published_at = EXCLUDED.repair_published_at,
                    repair_day = NULL, repair_attempt = 0
                """,
                integration_id,
                interval_s,
                first_run_in_s,
                backfill_job_id,
            )
            return order

    async def rotate_credential(
        self,
        *,
        integration_id: UUID,
        plan: Plan,
        status: IntegrationStatus,
        status_reason: ErrorCode | None,
        sealed_credential: str,
        event_id: UUID,
        event_at: datetime,
        sequence: int,
    ) -> tuple[EventOrder, int]:
        """Store a new credential, unpause the schedule (due at once if it was paused) and make
        the runs a rejected key had blocked due for a retry, which the scheduler loop publishes.
        Returns the event's order and how many runs were unblocked."""
        async with self._pool.acquire() as conn, conn.transaction():
            order = await self._order(conn, integration_id, event_id, sequence)
            if order is not EventOrder.NEXT:  # a rotation never registers an integration
                return order, 0
            applied = await conn.fetchval(
                """
                UPDATE integrations SET
                    plan = $2, status = $3, status_reason = $4, sealed_credential = $5,
                    last_event_id = $6, last_event_at = $7, last_event_seq = $8, updated_at = now()
                 WHERE integration_id = $1 AND disconnected_at IS NULL
                RETURNING true
                """,
                integration_id,
                plan,
                status,
                status_reason,
                sealed_credential,
                event_id,
                event_at,
                sequence,
            )
            if not applied:
                return EventOrder.STALE, 0
            await conn.execute(
                """
                UPDATE schedules SET
                    next_run_at = CASE WHEN paused THEN now() ELSE next_run_at END,
                    paused = false, updated_at = now()
                 WHERE integration_id = $1
                """,
                integration_id,
            )
            unblocked = await conn.fetchval(
                """
                WITH unblocked AS (
                    UPDATE runs SET status = 'retrying', retry_at = now(), updated_at = now()
                     WHERE integration_id = $1 AND status = 'blocked'
                    RETURNING 1)
                SELECT count(*) FROM unblocked
                """,
                integration_id,
            )
            return order, int(unblocked or 0)

    async def is_purged(self, integration_id: UUID) -> bool:
        found = await self._pool.fetchval(
            "SELECT 1 FROM purged_integrations WHERE integration_id = $1", integration_id
        )
        return found is not None

    async def disconnect(
        self,
        integration_id: UUID,
        event_id: UUID,
        event_at: datetime,
        sequence: int,
        *,
        purge: bool = False,
    ) -> EventOrder:
        async with self._pool.acquire() as conn, conn.transaction():
            order = await self._order(conn, integration_id, event_id, sequence)
            if purge and order in {EventOrder.NEXT, EventOrder.NEW}:
                await self._purge(conn, integration_id, sequence)
                return EventOrder.NEXT
            if order is not EventOrder.NEXT:
                return order
            await conn.execute(
                """
                UPDATE integrations SET
                    disconnected_at = $3, sealed_credential = NULL,
                    last_event_id = $2, last_event_at = $3, last_event_seq = $4,
                    updated_at = now()
                 WHERE integration_id = $1
                """,
                integration_id,
                event_id,
                event_at,
                sequence,
            )
            await conn.execute("DELETE FROM schedules WHERE integration_id = $1", integration_id)
            await conn.execute(
                "UPDATE runs SET status = 'cancelled', finished_at = now(), updated_at = now() "
                "WHERE integration_id = $1 AND status = ANY($2::text[])",
                integration_id,
                [str(s) for s in ACTIVE_RUN_STATUSES],
            )
            return order

    @staticmethod
    async def _purge(conn: Connection, integration_id: UUID, sequence: int) -> None:
        """Delete every row of the integration (its row cascades to schedule, runs, members and
        completed days) and leave the tombstone."""
        await conn.execute(
            "INSERT INTO purged_integrations (integration_id, purge_seq) VALUES ($1, $2) "
            "ON CONFLICT (integration_id) DO NOTHING",
            integration_id,
            sequence,
        )
        for table in ("jobs", "awaited_jobs", "status_sequences", "integrations"):
            await conn.execute(
                f"DELETE FROM {table} WHERE integration_id = $1",  # noqa: S608 - constant names
                integration_id,
            )

    async def fail(self, integration_id: UUID, sealed_used: str, reason: ErrorCode) -> bool:
        """Mark the integration failed and pause its schedule, unless the credential changed
        since ``sealed_used`` was read (a rotation won the race). True when marked."""
        async with self._pool.acquire() as conn, conn.transaction():
            marked = await conn.fetchval(
                """
                UPDATE integrations SET status = 'failed', status_reason = $3, updated_at = now()
                 WHERE integration_id = $1 AND sealed_credential = $2
                RETURNING true
                """,
                integration_id,
                sealed_used,
                reason,
            )
            if not marked:
                return False
            await conn.execute(
                "UPDATE schedules SET paused = true, updated_at = now() WHERE integration_id = $1",
                integration_id,
            )
            return True

    async def degrade(self, integration_id: UUID, reason: ErrorCode) -> None:
        await self._pool.execute(
            "UPDATE integrations SET status = 'degraded', status_reason = $2, updated_at = now() "
            "WHERE integration_id = $1 AND status <> 'failed'",
            integration_id,
            reason,
        )

    async def restore(self, integration_id: UUID, reason: ErrorCode) -> None:
        """The degradation ``reason`` is over: the integration is active again."""
        await self._pool.execute(
            "UPDATE integrations SET status = 'active', status_reason = NULL, updated_at = now() "
            "WHERE integration_id = $1 AND status = 'degraded' AND status_reason = $2",
            integration_id,
            reason,
        )

    async def record_success(
        self, integration_id: UUID, data_through: date | None, at: datetime, restore_active: bool
    ) -> Integration | None:
        row = await self._pool.fetchrow(
            """
            UPDATE integrations SET
                data_through = GREATEST(data_through, $2),
                last_success_at = $3,
                status = CASE WHEN $4 AND status = 'degraded' THEN 'active' ELSE status END,
                status_reason = CASE WHEN $4 AND status = 'degraded' THEN NULL
                                     ELSE status_reason END,
                updated_at = now()
             WHERE integration_id = $1
            RETURNING *
            """,
            integration_id,
            data_through,
            at,
            restore_active,
        )
        return None if row is None else integration_from_row(row)
