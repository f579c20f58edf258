"""The audit log of admin actions: who did what to which org, when, in the service that did it.

Each service keeps an ``audit_log`` table in its own schema (same shape everywhere, created by a
migration of that service) and records an action with :func:`record` on the connection of the
transaction that performs it, so the action and its entry commit or roll back together:

    await audit.record(conn, org_id=org_id, actor=principal, action="settings.update",
                       target=org_id, details={"min_group_size": 5})

*When* is the database's ``clock_timestamp()`` and the order is a database-assigned sequence, so no
application clock decides either. *Details* are for non-secret facts only: a key that names a
credential (``api_key``, ``token``, ``secret``...) is refused with ``ValueError`` before anything
is written, so a careless caller fails in tests instead of leaking into the log.

:func:`page` lists an org's entries newest first, ``limit`` at a time, continuing ``before`` a
sequence number (keyset pagination: stable while new entries arrive).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

import asyncpg
from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

AuditAction = Literal[
    "integration.connect",
    "integration.rotate_credentials",
    "integration.resync",
    "integration.disconnect",
    "integration.reseal",
    "settings.update",
    "identities.replace",
    "member.erase",
]
"""Every admin action the services record (connector: ``integration.*``; metrics: the rest)."""

_SECRET_NAME = re.compile(
    r"(secret|token|password|passwd|api_?key|credential|sealed|jwt)", re.IGNORECASE
)
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

MAX_PAGE = 200

#: The listing route's query parameters, the same on every service.
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
PageBefore = Annotated[int | None, Query(ge=1)]


class Actor(Protocol):
    """Who acted: a verified token's subject and, when the token carries one, its email."""

    @property
    def sub(self) -> str: ...

    @property
    def email(self) -> str | None: ...


class AuditActor(BaseModel):
    model_config = ConfigDict(frozen=True)

    sub: str = Field(description="The token's `sub` (or the operator command for one).")
    email: str | None = Field(description="The token's `email`, when it had one.")


class AuditEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    seq: int = Field(description="Database-assigned sequence; larger is later in this service.")
    occurred_at: datetime = Field(description="The database's clock when the action committed.")
    actor: AuditActor
    action: AuditAction
    target: str | None = Field(description="What was acted on (an integration id, the org...).")
    details: dict[str, Any] = Field(description="Non-secret facts of the action.")


class AuditLogPage(BaseModel):
    model_config = ConfigDict(frozen=True)

    entries: list[AuditEntry] = Field(description="Newest first.")
    next_before: int | None = Field(
        description="Pass as `before` to get the next (older) page; null on the last page."
    )


def _table(schema: str | None) -> str:
    if schema is None:
        return "audit_log"  # the connection's search_path names the service's schema
    if not _SCHEMA.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    return f'"{schema}".audit_log'


def _check_details(details: Mapping[str, Any], path: str = "") -> None:
    for key, value in details.items():
        if _SECRET_NAME.search(str(key)):
            raise ValueError(f"audit details must not carry secrets; drop the `{path}{key}` entry")
        if isinstance(value, Mapping):
            _check_details(value, f"{path}{key}.")


async def record(
    conn: asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any],
    *,
    org_id: str,
    actor: Actor,
    action: AuditAction,
    target: str | None = None,
    details: Mapping[str, Any] | None = None,
    schema: str | None = None,
) -> int:
    """Record an admin action in the caller's transaction; returns its sequence number."""
    facts = dict(details or {})
    _check_details(facts)
    seq: int = await conn.fetchval(
        f"INSERT INTO {_table(schema)} "  # noqa: S608 - the schema name is validated
        "(org_id, actor_sub, actor_email, action, target, details) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
        org_id,
        actor.sub,
        actor.email,
        action,
        target,
        facts,
    )
    return seq


async def page(
    conn: asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any] | asyncpg.Pool[Any],
    *,
    org_id: str,
    limit: int = 50,
    before: int | None = None,
    schema: str | None = None,
) -> AuditLogPage:
    """One page of the org's audit log, newest first."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
    rows = await conn.fetch(
        "SELECT seq, occurred_at, actor_sub, actor_email, action, target, details "  # noqa: S608
        f"FROM {_table(schema)} WHERE org_id = $1 AND ($2::bigint IS NULL OR seq < $2) "
        "ORDER BY seq DESC LIMIT $3",
        org_id,
        before,
        limit + 1,
    )
    entries = [
        AuditEntry(
            seq=row["seq"],
            occurred_at=row["occurred_at"],
            actor=AuditActor(sub=row["actor_sub"], email=row["actor_email"]),
            action=row["action"],
            target=row["target"],
            details=row["details"],
        )
        for row in rows[:limit]
    ]
    more = len(rows) > limit
    return AuditLogPage(entries=entries, next_before=entries[-1].seq if more else None)
