"""What the registry, the job runner and the scheduler share: the publisher they are given, the
clock, the errors that decide a message's fate, and the sentences users read."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Final, Protocol
from uuid import UUID

from koalr_contracts import AnyEvent, Provider
from koalr_providers.github.client import METRICS_POLICY_OFF
from koalr_syncer.normalise import Origin

Clock = Callable[[], datetime]
"""The current UTC time; one clock drives every date the syncer computes."""

TEAM_PLAN_MESSAGE: Final[str] = (
    "The Cursor plan only exposes the member list: usage, models and spend need a Business or "
    "Enterprise plan. Members are kept in sync; upgrade the plan and update the key to sync usage."
)
INVALID_CREDENTIAL_MESSAGES: Final[Mapping[Provider, str]] = {
    "cursor": (
        "Cursor rejected the API key; it was probably revoked or rotated in Cursor. "
        "Enter a new admin API key to resume syncing."
    ),
    "github_copilot": (
        "GitHub rejected the token (401): it was revoked, expired or replaced. "
        "Enter a new token of an organisation owner to resume syncing."
    ),
}
METRICS_DISABLED_MESSAGE: Final[str] = (
    "GitHub refuses the organisation's Copilot usage-metrics reports (403), so usage is not "
    "synced; seats and premium-request spend still are. " + METRICS_POLICY_OFF
)
UNREADABLE_CREDENTIAL_MESSAGE: Final[str] = (
    "The stored credential cannot be opened with the configured sealing keys; "
    "reconnect the integration or restore the retired sealing key."
)
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


def invalid_credential_message(provider: Provider) -> str:
    return INVALID_CREDENTIAL_MESSAGES[provider]


class Owned(Protocol):
    """An integration, or an event about one."""

    @property
    def org_id(self) -> str: ...

    @property
    def integration_id(self) -> UUID: ...

    @property
    def correlation_id(self) -> UUID: ...

    @property
    def provider(self) -> Provider: ...


def origin_of(owner: Owned) -> Origin:
    """Who the events derived for an integration (or an event about it) belong to."""
    return Origin(
        org_id=owner.org_id,
        integration_id=owner.integration_id,
        correlation_id=owner.correlation_id,
        provider=owner.provider,
    )
