"""asyncpg connection pools with the codecs every service wants."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

ConnectionHook = Callable[["asyncpg.Connection[Any]"], Awaitable[None]]


async def _init_connection(conn: asyncpg.Connection[Any]) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    command_timeout_s: float = 30.0,
    server_settings: dict[str, str] | None = None,
    init: ConnectionHook | None = None,
    reset: ConnectionHook | None = None,
) -> asyncpg.Pool[Any]:
    """A pool with JSON codecs; ``numeric`` columns come back as ``Decimal`` (asyncpg default).

    ``init`` runs once on every new connection, after the codecs are set (for example to
    create session-level temporary tables). ``reset`` replaces asyncpg's reset of a connection
    given back to the pool (a round trip running ``RESET ALL``, ``UNLISTEN *`` and
    ``pg_advisory_unlock_all()``); an open transaction is rolled back either way.
    """

    async def init_connection(conn: asyncpg.Connection[Any]) -> None:
        await _init_connection(conn)
        if init is not None:
            await init(conn)

    pool: asyncpg.Pool[Any] = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=command_timeout_s,
        init=init_connection,
        reset=reset,
        server_settings=server_settings,
    )
    return pool


async def wait_for_postgres(dsn: str, timeout_s: float = 10.0) -> None:
    """Raise ``ConnectionError`` with a clear sentence when PostgreSQL does not answer in time."""
    try:
        conn = await asyncio.wait_for(asyncpg.connect(dsn, timeout=timeout_s), timeout=timeout_s)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise ConnectionError(
            f"PostgreSQL did not answer within {timeout_s:.0f} s ({type(exc).__name__}: {exc}); "
            "start it with `make services-up` or set DATABASE_URL"
        ) from exc
    try:
        await conn.fetchval("SELECT 1")
    finally:
        await conn.close()
