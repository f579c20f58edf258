"""What the registry, the job runner and the scheduler share: the publisher they are given, the
clock, the errors that decide a message's fate, and the sentences users read."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Final, Protocol
from uuid import UUID

from koalr_contracts import AnyEvent
from koalr_syncer.normalise import Origin

Clock = Callable[[], datetime]
"""The current UTC time; one clock drives every date the syncer computes."""

TEAM_PLAN_MESSAGE: Final[str] = (
    "The Cursor plan only exposes the member list: usage, models and spend need a Business or "
    "Enterprise plan. Members are kept in sync; upgrade the plan and update the key to sync usage."
)
INVALID_KEY_MESSAGE: Final[str] = (
    "Cursor rejected the API key; it was probably revoked or rotated in Cursor. "
    "Enter a new admin API key to resume syncing."
)
UNREADABLE_CREDENTIAL_MESSAGE: Final[str] = (
    "The stored credential cannot be opened with the configured sealing keys; "
    "reconnect the integration or restore the retired sealing key."
)
UNSUPPORTED_PROVIDER_MESSAGE: Final[str] = "This syncer does not sync {provider} usage yet."
UNKNOWN_INTEGRATION_MESSAGE: Final[str] = (
    "This sync was requested for an integration the syncer never registered (its connection "
    "did not reach the syncer or was refused). Reconnect the integration, then sync again."
)


class Publisher(Protocol):
    """Publishes events on a contract topic and returns once Kafka acknowledged all of them."""

    async def publish(self, topic: str, events: Sequence[AnyEvent]) -> None: ...


class BadMessageError(ValueError):
    """The message itself cannot be processed; it belongs in the dead-letter topic."""


class IntegrationBusyError(RuntimeError):
    """Another process holds the integration's lock for longer than a job may take."""


class IntegrationNotRegisteredYetError(RuntimeError):
    """The job overtook its integration's registration; it is retried after a backoff."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def origin_of(org_id: str, integration_id: UUID, correlation_id: UUID) -> Origin:
    return Origin(org_id=org_id, integration_id=integration_id, correlation_id=correlation_id)
