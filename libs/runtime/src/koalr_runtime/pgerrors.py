"""One classification of PostgreSQL failures for every service: wait, or set the input aside.

- **transient**: the database is unreachable, restarting, overloaded, or chose this transaction
  as a deadlock or serialization victim. Waiting fixes it: retry the same input.
- **permanent**: PostgreSQL refused the statement for what it contains (a NUL byte in a text, a
  value too long, a check or foreign-key violation, ...). The same input fails the same way
  forever: retrying it would stall everything queued behind it, so it belongs in the
  dead-letter topic.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

import asyncpg


class DatabaseFailure(StrEnum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"


_TRANSIENT: Final = (
    OSError,  # refused, reset, unreachable
    TimeoutError,
    asyncpg.InterfaceError,  # connection closed under us, pool shutting down
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.InsufficientResourcesError,  # class 53: too many connections, disk full
    asyncpg.OperatorInterventionError,  # class 57: shutdown, cannot connect now, cancelled
    asyncpg.TransactionRollbackError,  # class 40: deadlock, serialization failure
    asyncpg.LockNotAvailableError,  # 55P03
)


def classify(exc: BaseException) -> DatabaseFailure | None:
    """How to treat a failure met while talking to PostgreSQL; None when it is not one."""
    if isinstance(exc, _TRANSIENT):
        return DatabaseFailure.TRANSIENT
    if isinstance(exc, asyncpg.PostgresError):
        return DatabaseFailure.PERMANENT
    return None


def is_transient(exc: BaseException) -> bool:
    """True for failures that go away by waiting (PostgreSQL down, restarting, overloaded)."""
    return classify(exc) is DatabaseFailure.TRANSIENT


def is_permanent(exc: BaseException) -> bool:
    """True for a statement PostgreSQL refuses, which no retry will change."""
    return classify(exc) is DatabaseFailure.PERMANENT
