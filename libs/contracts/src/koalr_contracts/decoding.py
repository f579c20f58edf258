"""Decode "any event on this topic" from raw Kafka bytes, with errors a person can act on."""

from __future__ import annotations

from typing import Annotated, Any, Final, TypeAlias

from pydantic import Field, TypeAdapter, ValidationError

from koalr_contracts import topics
from koalr_contracts.events import (
    Alert,
    CycleSpendSnapshot,
    DaySpend,
    DeadLetter,
    IntegrationConnected,
    IntegrationCredentialsRotated,
    IntegrationDisconnected,
    MemberErased,
    SeatsSnapshot,
    SyncJobRequested,
    SyncStatusChanged,
    UsageRecord,
)

IntegrationEvent: TypeAlias = Annotated[
    IntegrationConnected | IntegrationCredentialsRotated | IntegrationDisconnected,
    Field(discriminator="event_type"),
]
UsageEvent: TypeAlias = Annotated[
    UsageRecord | CycleSpendSnapshot | SeatsSnapshot | DaySpend, Field(discriminator="event_type")
]
AnyEvent: TypeAlias = (
    IntegrationConnected
    | IntegrationCredentialsRotated
    | IntegrationDisconnected
    | SyncJobRequested
    | UsageRecord
    | CycleSpendSnapshot
    | SeatsSnapshot
    | DaySpend
    | SyncStatusChanged
    | MemberErased
    | DeadLetter
    | Alert
)

_ADAPTERS: Final[dict[str, TypeAdapter[Any]]] = {
    topics.INTEGRATIONS: TypeAdapter(IntegrationEvent),
    topics.SYNC_JOBS: TypeAdapter(SyncJobRequested),
    topics.USAGE_RECORDS: TypeAdapter(UsageEvent),
    topics.SYNC_STATUS: TypeAdapter(SyncStatusChanged),
    topics.MEMBER_ERASURES: TypeAdapter(MemberErased),
    topics.DEAD_LETTERS: TypeAdapter(DeadLetter),
    topics.ALERTS: TypeAdapter(Alert),
}


class EventDecodeError(ValueError):
    """A message could not be decoded into an event of its topic. ``reason`` says why."""

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"{topic}: {reason}")
        self.topic = topic
        self.reason = reason

    def __reduce__(self) -> tuple[type[EventDecodeError], tuple[str, str]]:
        """Pickle by its two fields, so the error can cross to another process."""
        return type(self), (self.topic, self.reason)


def base_topic(topic: str) -> str:
    """The contract topic behind a possibly namespaced name (``ns.koalr.x.v1`` -> ``koalr.x.v1``)."""
    for known in _ADAPTERS:
        if topic == known or topic.endswith("." + known):
            return known
    raise EventDecodeError(topic, f"unknown topic; expected one of {', '.join(_ADAPTERS)}")


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem: ``field.path: message``."""
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "message"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def decode_event(topic: str, payload: bytes | str) -> AnyEvent:
    """Decode and validate one message of ``topic`` (namespaced names accepted).

    Raises :class:`EventDecodeError` for bytes that are not JSON, an ``event_type`` that does not
    belong on the topic, or any field that fails validation.
    """
    adapter = _ADAPTERS[base_topic(topic)]
    try:
        event: AnyEvent = adapter.validate_json(payload)
    except ValidationError as exc:
        raise EventDecodeError(topic, describe_validation_error(exc)) from exc
    return event


def encode_event(event: AnyEvent) -> bytes:
    """The JSON bytes put on Kafka for an event (money as strings, datetimes ISO 8601 UTC)."""
    return event.model_dump_json().encode()
