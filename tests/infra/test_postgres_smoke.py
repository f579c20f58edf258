from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from koalr_runtime.db import create_pool
from koalr_runtime.migrations import MigrationError, apply_migrations

pytestmark = pytest.mark.integration


async def test_asyncpg_writes_and_reads_exact_money(fresh_database_url: str) -> None:
    pool = await create_pool(fresh_database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE TABLE spend (day date, cents numeric(20, 8), meta jsonb)")
            await conn.executemany(
                "INSERT INTO spend VALUES (current_date, $1, $2)",
                [(Decimal("0.1"), {"m": "gpt-5"}), (Decimal("0.2"), {"m": "o3"})],
            )
            total = await conn.fetchval("SELECT sum(cents) FROM spend")
            metas = await conn.fetch("SELECT meta FROM spend ORDER BY cents")
    finally:
        await pool.close()
    assert total == Decimal("0.3")
    assert [r["meta"] for r in metas] == [{"m": "gpt-5"}, {"m": "o3"}]


def _write(directory: Path, name: str, sql: str) -> None:
    (directory / name).write_text(sql)


async def test_migrations_apply_once_and_are_idempotent(
    db: asyncpg.Connection[Any], tmp_path: Path
) -> None:
    _write(tmp_path, "0001_create.sql", "CREATE TABLE items (id int PRIMARY KEY);")
    _write(tmp_path, "0002_seed.sql", "INSERT INTO items VALUES (1), (2);")
    assert await apply_migrations(db, "svc", tmp_path) == [1, 2]
    assert await apply_migrations(db, "svc", tmp_path) == []
    assert await db.fetchval("SELECT count(*) FROM svc.items") == 2
    _write(tmp_path, "0003_more.sql", "INSERT INTO items VALUES (3);")
    assert await apply_migrations(db, "svc", tmp_path) == [3]
    versions = await db.fetch("SELECT version FROM svc.schema_migrations ORDER BY version")
    assert [r["version"] for r in versions] == [1, 2, 3]


async def test_an_edited_migration_is_refused(db: asyncpg.Connection[Any], tmp_path: Path) -> None:
    _write(tmp_path, "0001_create.sql", "CREATE TABLE items (id int);")
    await apply_migrations(db, "svc", tmp_path)
    _write(tmp_path, "0001_create.sql", "CREATE TABLE items (id bigint);")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await apply_migrations(db, "svc", tmp_path)


async def test_a_failing_migration_leaves_nothing_behind(
    db: asyncpg.Connection[Any], tmp_path: Path
) -> None:
    _write(tmp_path, "0001_ok.sql", "CREATE TABLE a (id int);")
    _write(tmp_path, "0002_bad.sql", "CREATE TABLE b (id int); SELECT nonsense FROM nowhere;")
    with pytest.raises(asyncpg.UndefinedTableError):
        await apply_migrations(db, "svc", tmp_path)
    assert await db.fetchval("SELECT to_regclass('svc.b')") is None
    versions = await db.fetch("SELECT version FROM svc.schema_migrations")
    assert [r["version"] for r in versions] == [1]


def test_badly_named_files_are_refused(tmp_path: Path) -> None:
    from koalr_runtime.migrations import load_migrations

    _write(tmp_path, "create.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNNN_description\.sql"):
        load_migrations(tmp_path)
