"""PostgreSQL failures are classified once: what waiting fixes, and what no retry will change."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from koalr_runtime.pgerrors import DatabaseFailure, classify, is_permanent, is_transient

pytestmark = pytest.mark.integration


async def _refusal(db: asyncpg.Connection[Any], sql: str, *args: object) -> BaseException:
    with pytest.raises(asyncpg.PostgresError) as caught:
        await db.execute(sql, *args)
    return caught.value


async def test_refused_values_are_permanent(db: asyncpg.Connection[Any]) -> None:
    await db.execute(
        "CREATE TABLE people (name text NOT NULL, code varchar(3), age int CHECK (age >= 0))"
    )
    nul = await _refusal(db, "INSERT INTO people (name) VALUES ($1)", "Ada\x00")
    too_long = await _refusal(db, "INSERT INTO people (name, code) VALUES ('a', $1)", "ABCD")
    negative = await _refusal(db, "INSERT INTO people (name, age) VALUES ('a', -1)")
    assert [type(e).__name__ for e in (nul, too_long, negative)] == [
        "CharacterNotInRepertoireError",
        "StringDataRightTruncationError",
        "CheckViolationError",
    ]
    for error in (nul, too_long, negative):
        assert classify(error) is DatabaseFailure.PERMANENT
        assert is_permanent(error)
        assert not is_transient(error)


async def test_waiting_fixes_unreachable_databases_and_lock_timeouts(
    db: asyncpg.Connection[Any], fresh_database_url: str
) -> None:
    await db.execute("CREATE TABLE counters (n int)")
    other = await asyncpg.connect(fresh_database_url)
    try:
        async with db.transaction():
            await db.execute("LOCK TABLE counters IN ACCESS EXCLUSIVE MODE")
            await other.execute("SET lock_timeout = '50ms'")
            locked = await _refusal(other, "SELECT * FROM counters")
    finally:
        await other.close()
    assert type(locked).__name__ == "LockNotAvailableError"
    for error in (locked, ConnectionRefusedError(), TimeoutError()):
        assert classify(error) is DatabaseFailure.TRANSIENT
        assert is_transient(error)
        assert not is_permanent(error)


def test_other_failures_are_not_database_failures() -> None:
    assert classify(ValueError("not a database error")) is None
