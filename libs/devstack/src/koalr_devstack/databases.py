"""Scratch PostgreSQL databases for tests, benchmarks and the demo (the role needs CREATEDB)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg


def database_url(admin_url: str, name: str) -> str:
    """The DSN of database ``name`` on the server of ``admin_url``."""
    return admin_url.rpartition("/")[0] + "/" + name


async def create_database(admin_url: str, name: str, *, replace: bool = False) -> str:
    """Create ``name`` (dropping it first when ``replace``) and return its DSN."""
    conn = await asyncpg.connect(admin_url)
    try:
        if replace:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return database_url(admin_url, name)


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@asynccontextmanager
async def scratch_database(admin_url: str, prefix: str = "t") -> AsyncIterator[str]:
    """A brand-new empty database for the duration of the block, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    dsn = await create_database(admin_url, name)
    try:
        yield dsn
    finally:
        await drop_database(admin_url, name)
