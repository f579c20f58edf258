"""A very small runner for versioned SQL migrations, one PostgreSQL schema per service.

Files are named ``NNNN_description.sql`` and applied in order, each in its own transaction,
under an advisory lock (several replicas may start at once). Applied versions are recorded in
``<schema>.schema_migrations`` with a checksum; editing an applied file is an error, not a
silent drift. Why not Alembic or yoyo: see docs/decisions/0003-migrations.md.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from koalr_runtime.logs import get_logger

log = get_logger(__name__)

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class MigrationError(RuntimeError):
    """The migrations directory or the recorded history is inconsistent."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_description.sql")
        migrations.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{directory.name}: two migrations share a version number")
    return migrations


async def apply_migrations(
    conn: asyncpg.Connection[Any], schema: str, directory: Path
) -> list[int]:
    """Apply pending migrations to ``schema``; returns the versions applied now."""
    if not _SCHEMA.match(schema):
        raise MigrationError(f"invalid schema name {schema!r}")
    migrations = load_migrations(directory)
    lock_key = zlib.crc32(f"koalr-migrations:{schema}".encode())
    await conn.execute("SELECT pg_advisory_lock($1)", lock_key)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations ('
            "version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        rows = await conn.fetch(
            f'SELECT version, checksum FROM "{schema}".schema_migrations'  # noqa: S608 - validated name
        )
        applied = {r["version"]: r["checksum"] for r in rows}
        done: list[int] = []
        for migration in migrations:
            recorded = applied.get(migration.version)
            if recorded is not None:
                if recorded != migration.checksum:
                    raise MigrationError(
                        f"{schema}: migration {migration.version:04d}_{migration.name} changed "
                        "after it was applied; add a new migration instead of editing it"
                    )
                continue
            async with conn.transaction():
                await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
                await conn.execute(migration.sql)
                await conn.execute(
                    f'INSERT INTO "{schema}".schema_migrations (version, name, checksum) '  # noqa: S608
                    "VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            log.info(
                "migration.applied", schema=schema, version=migration.version, name=migration.name
            )
            done.append(migration.version)
        unknown = set(applied) - {m.version for m in migrations}
        if unknown:
            log.warning("migration.unknown_versions", schema=schema, versions=sorted(unknown))
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", lock_key)


async def migrate(dsn: str, schema: str, directory: Path) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        return await apply_migrations(conn, schema, directory)
    finally:
        await conn.close()
