"""All SQL of the connector: integrations, the transactional outbox and the audit log (whose
SQL is shared by the services, in ``koalr_runtime.audit``).

Table names are qualified with the service's schema, so any pooled connection works.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from koalr_connector.integrations import Integration, SyncError, SyncSummary
from koalr_connector.outbox import OutboxMessage, PendingMessage
from koalr_runtime import audit as audit_log

Conn: TypeAlias = "PoolConnectionProxy[Any]"

_INTEGRATION_COLUMNS = (
    "id, org_id, provider, external_id, plan, status, sealed_credential, correlation_id, "
    "created_at, sync_state, sync_last_success_at, sync_data_through, sync_progress, "
    "sync_error_code, sync_error_message, sync_status_seq"
)


@dataclass(frozen=True, slots=True)
class ConnectBlocked:
    """Why a connect claim was not taken: a live integration (its id), or another connect of
    the same key in progress (``None``)."""

    existing_id: UUID | None


def _integration(row: asyncpg.Record) -> Integration:
    error = (
        SyncError(row["sync_error_code"], row["sync_error_message"] or "")
        if row["sync_error_code"]
        else None
    )
    return Integration(
        id=row["id"],
        org_id=row["org_id"],
        provider=row["provider"],
        external_id=row["external_id"],
        plan=row["plan"],
        status=row["status"],
        correlation_id=row["correlation_id"],
        created_at=row["created_at"],
        sealed_credential=row["sealed_credential"],
        sync=SyncSummary(
            state=row["sync_state"],
            last_success_at=row["sync_last_success_at"],
            data_through=row["sync_data_through"],
            progress=row["sync_progress"],
            last_error=error,
            status_sequence=row["sync_status_seq"],
        ),
    )


class Repository:
    def __init__(self, pool: asyncpg.Pool[Any], schema: str) -> None:
        self._pool = pool
        self._schema = schema
        self._integrations = f'"{schema}".integrations'
        self._outbox = f'"{schema}".outbox'
        self._claims = f'"{schema}".connect_claims'

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield conn

    # --- audit log --------------------------------------------------------------------------

    async def audit(
        self,
        conn: Conn,
        *,
        org_id: str,
        actor: audit_log.Actor,
        action: audit_log.AuditAction,
        target: str,
        details: dict[str, Any],
    ) -> int:
        return await audit_log.record(
            conn,
            org_id=org_id,
            actor=actor,
            action=action,
            target=target,
            details=details,
            schema=self._schema,
        )

    async def audit_page(
        self, org_id: str, *, limit: int, before: int | None
    ) -> audit_log.AuditLogPage:
        return await audit_log.page(
            self._pool, org_id=org_id, limit=limit, before=before, schema=self._schema
        )

    # --- integrations -----------------------------------------------------------------------

    async def find_live_id(
        self, conn: Conn, org_id: str, provider: str, external_id: str
    ) -> UUID | None:
        found: UUID | None = await conn.fetchval(
            f"SELECT id FROM {self._integrations} "  # noqa: S608 - schema name is validated
            "WHERE org_id = $1 AND provider = $2 AND external_id = $3 "
            "AND disconnected_at IS NULL",
            org_id,
            provider,
            external_id,
        )
        return found

    async def claim_connect(
        self, org_id: str, provider: str, external_id: str, ttl_s: float
    ) -> UUID | ConnectBlocked:
        """Take the claim on connecting ``external_id`` (compared lower-cased), in its own
        transaction; returns the claim's id, or what blocks it.

        The claim is inserted before the live twin is looked for: a concurrent claimant either
        conflicts with this row (and waits for its transaction) or, if it completed first,
        its integration is visible to the look-up that follows (a new snapshot per statement).
        A lapsed claim (``expires_at`` before PostgreSQL's ``now()``) is replaced.
        """
        key = external_id.lower()
        async with self.transaction() as conn:
            claim_id: UUID | None = await conn.fetchval(
                f"INSERT INTO {self._claims} AS c "  # noqa: S608 - schema name is validated
                "(org_id, provider, external_key, claim_id, expires_at) "
                "VALUES ($1, $2, $3, gen_random_uuid(), now() + make_interval(secs => $4)) "
                "ON CONFLICT (org_id, provider, external_key) DO UPDATE SET "
                "claim_id = EXCLUDED.claim_id, expires_at = EXCLUDED.expires_at "
                "WHERE c.expires_at < now() "
                "RETURNING claim_id",
                org_id,
                provider,
                key,
                ttl_s,
            )
            if claim_id is None:
                return ConnectBlocked(existing_id=None)
            existing: UUID | None = await conn.fetchval(
                f"SELECT id FROM {self._integrations} "  # noqa: S608
                "WHERE org_id = $1 AND provider = $2 AND lower(external_id) = $3 "
                "AND disconnected_at IS NULL",
                org_id,
                provider,
                key,
            )
            if existing is not None:
                await conn.execute(
                    f"DELETE FROM {self._claims} WHERE claim_id = $1",  # noqa: S608
                    claim_id,
                )
                return ConnectBlocked(existing_id=existing)
        return claim_id

    async def release_claim(self, conn: Conn | None, claim_id: UUID) -> None:
        """Remove a connect claim (in the caller's transaction, or on its own)."""
        sql = f"DELETE FROM {self._claims} WHERE claim_id = $1"  # noqa: S608
        if conn is not None:
            await conn.execute(sql, claim_id)
            return
        async with self._pool.acquire() as own:
            await own.execute(sql, claim_id)

    async def insert(self, conn: Conn, integration: Integration) -> Integration:
        """Insert a new integration; raises ``asyncpg.UniqueViolationError`` on a live twin."""
        sync = integration.sync
        row = await conn.fetchrow(
            f"INSERT INTO {self._integrations} "  # noqa: S608
            "(id, org_id, provider, external_id, plan, status, sealed_credential, "
            "correlation_id, sync_state, sync_error_code, sync_error_message) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
            f"RETURNING {_INTEGRATION_COLUMNS}",
            integration.id,
            integration.org_id,
            integration.provider,
            integration.external_id,
            integration.plan,
            integration.status,
            integration.sealed_credential,
            integration.correlation_id,
            sync.state,
            sync.last_error.code if sync.last_error else None,
            sync.last_error.message if sync.last_error else None,
        )
        assert row is not None  # noqa: S101 - INSERT ... RETURNING always returns the row
        return _integration(row)

    async def get_live(
        self, conn: Conn, integration_id: UUID, *, org_id: str | None = None, lock: bool = False
    ) -> Integration | None:
        """A live (not disconnected) integration, optionally only within ``org_id``."""
        row = await conn.fetchrow(
            f"SELECT {_INTEGRATION_COLUMNS} FROM {self._integrations} "  # noqa: S608
            "WHERE id = $1 AND ($2::text IS NULL OR org_id = $2) AND disconnected_at IS NULL"
            + (" FOR UPDATE" if lock else ""),
            integration_id,
            org_id,
        )
        return _integration(row) if row is not None else None

    async def list_live(self, conn: Conn, org_id: str) -> list[Integration]:
        rows = await conn.fetch(
            f"SELECT {_INTEGRATION_COLUMNS} FROM {self._integrations} "  # noqa: S608
            "WHERE org_id = $1 AND disconnected_at IS NULL ORDER BY created_at, id",
            org_id,
        )
        return [_integration(r) for r in rows]

    async def live_credentials_after(
        self, conn: Conn, after: UUID | None, *, limit: int
    ) -> list[Integration]:
        """The next ``limit`` live integrations holding a credential, by id after ``after``,
        locked until the transaction ends (a concurrent rotation waits, and vice versa)."""
        rows = await conn.fetch(
            f"SELECT {_INTEGRATION_COLUMNS} FROM {self._integrations} "  # noqa: S608
            "WHERE disconnected_at IS NULL AND sealed_credential IS NOT NULL "
            "AND ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2 FOR UPDATE",
            after,
            limit,
        )
        return [_integration(r) for r in rows]

    async def save_state(self, conn: Conn, integration: Integration) -> Integration:
        """Store plan, status, credential and sync state of a live integration."""
        sync = integration.sync
        row = await conn.fetchrow(
            f"UPDATE {self._integrations} SET plan = $2, status = $3, "  # noqa: S608
            "sealed_credential = $4, sync_state = $5, sync_last_success_at = $6, "
            "sync_data_through = $7, sync_progress = $8, sync_error_code = $9, "
            "sync_error_message = $10, sync_status_seq = $11, updated_at = now() "
            f"WHERE id = $1 AND disconnected_at IS NULL RETURNING {_INTEGRATION_COLUMNS}",
            integration.id,
            integration.plan,
            integration.status,
            integration.sealed_credential,
            sync.state,
            sync.last_success_at,
            sync.data_through,
            sync.progress,
            sync.last_error.code if sync.last_error else None,
            sync.last_error.message if sync.last_error else None,
            sync.status_sequence,
        )
        assert row is not None  # noqa: S101 - callers hold the row lock
        return _integration(row)

    async def disconnect(self, conn: Conn, org_id: str, integration_id: UUID) -> Integration | None:
        """Mark a live integration disconnected and forget its credential."""
        row = await conn.fetchrow(
            f"UPDATE {self._integrations} SET disconnected_at = now(), "  # noqa: S608
            "sealed_credential = NULL, updated_at = now() "
            "WHERE id = $1 AND org_id = $2 AND disconnected_at IS NULL "
            f"RETURNING {_INTEGRATION_COLUMNS}",
            integration_id,
            org_id,
        )
        return _integration(row) if row is not None else None

    async def purge(self, conn: Conn, integration_id: UUID) -> int:
        """Delete the integration's row and its published outbox rows; mark the unpublished ones
        (the purge event among them) to be deleted once published. Returns the rows deleted."""
        deleted = 0
        for sql in (
            (
                f"DELETE FROM {self._outbox} "  # noqa: S608
                "WHERE integration_id = $1 AND published_at IS NOT NULL"
            ),
            f"DELETE FROM {self._integrations} WHERE id = $1",  # noqa: S608
        ):
            status: str = await conn.execute(sql, integration_id)
            deleted += int(status.rsplit(" ", 1)[-1])
        await conn.execute(
            f"UPDATE {self._outbox} SET purge_when_published = true "  # noqa: S608
            "WHERE integration_id = $1",
            integration_id,
        )
        # The audit log keeps that an admin connected and purged the integration, but no
        # longer which team or organisation at the provider it was.
        await conn.execute(
            f'UPDATE "{self._schema}".audit_log '  # noqa: S608 - schema name is validated
            "SET details = details - 'external_id' WHERE target = $1",
            str(integration_id),
        )
        return deleted

    async def next_event_sequence(self, conn: Conn, integration_id: UUID) -> int:
        """The sequence of the integration's next event, taken in the caller's transaction.

        The row lock this takes (held until commit) orders concurrent changes of one
        integration: their sequences follow the order of their commits, and so of their
        outbox rows.
        """
        sequence: int | None = await conn.fetchval(
            f"UPDATE {self._integrations} SET event_seq = event_seq + 1 "  # noqa: S608
            "WHERE id = $1 RETURNING event_seq",
            integration_id,
        )
        if sequence is None:
            raise LookupError(f"integration {integration_id} does not exist")
        return sequence

    # --- outbox -----------------------------------------------------------------------------

    async def enqueue(self, conn: Conn, message: OutboxMessage) -> int:
        outbox_id: int = await conn.fetchval(
            f"INSERT INTO {self._outbox} "  # noqa: S608
            "(integration_id, topic, event_id, event_type, message_key, payload, headers, "
            "trace_context) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            message.integration_id,
            message.topic,
            message.event_id,
            message.event_type,
            message.key,
            message.payload,
            message.headers,
            message.trace_context,
        )
        return outbox_id

    async def claim_heads(self, conn: Conn, limit: int) -> list[PendingMessage]:
        """Lock the oldest unpublished message of up to ``limit`` integrations.

        Only the head of each integration's queue is eligible: a later message waits until the
        earlier one is published, also when another relay holds the earlier one locked, so
        per-integration order survives several relays. Rows another relay holds are skipped.
        """
        rows = await conn.fetch(
            f"SELECT o.id, o.integration_id, o.topic, o.event_id, o.event_type, "  # noqa: S608
            "o.message_key, o.payload, o.headers, o.trace_context, o.attempts "
            f"FROM {self._outbox} o WHERE o.published_at IS NULL AND NOT EXISTS ("
            f"SELECT 1 FROM {self._outbox} p WHERE p.integration_id = o.integration_id "
            "AND p.published_at IS NULL AND p.id < o.id) "
            "ORDER BY o.id LIMIT $1 FOR UPDATE SKIP LOCKED",
            limit,
        )
        return [
            PendingMessage(
                id=r["id"],
                attempts=r["attempts"],
                message=OutboxMessage(
                    integration_id=r["integration_id"],
                    topic=r["topic"],
                    event_id=r["event_id"],
                    event_type=r["event_type"],
                    key=r["message_key"],
                    payload=r["payload"],
                    headers=r["headers"],
                    trace_context=r["trace_context"],
                ),
            )
            for r in rows
        ]

    async def mark_published(self, conn: Conn, ids: Sequence[int]) -> None:
        """Mark messages published; those of a purged integration are deleted instead."""
        await conn.execute(
            f"DELETE FROM {self._outbox} "  # noqa: S608
            "WHERE id = ANY($1::bigint[]) AND purge_when_published",
            list(ids),
        )
        await conn.execute(
            f"UPDATE {self._outbox} SET published_at = now(), "  # noqa: S608
            "attempts = attempts + 1 WHERE id = ANY($1::bigint[])",
            list(ids),
        )

    async def record_failure(self, ids: Sequence[int], error: str) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                f"UPDATE {self._outbox} SET attempts = attempts + 1, "  # noqa: S608
                "last_error = $2 WHERE id = ANY($1::bigint[]) AND published_at IS NULL",
                list(ids),
                error[:2000],
            )

    async def count_unpublished(self) -> int:
        async with self._pool.acquire() as conn:
            count: int = await conn.fetchval(
                f"SELECT count(*) FROM {self._outbox} WHERE published_at IS NULL"  # noqa: S608
            )
            return count

    async def delete_published_before(self, cutoff: datetime) -> int:
        async with self._pool.acquire() as conn:
            status = await conn.execute(
                f"DELETE FROM {self._outbox} WHERE published_at < $1",  # noqa: S608
                cutoff,
            )
        return int(status.rsplit(" ", 1)[-1])
