"""The AsyncAPI 3.0 document of the event topics, committed as ``docs/asyncapi.yaml``.

FastStream generates it: a specification-only broker declares, for every contract topic, who
publishes it and which consumer groups read it, typed with the contract's event models, and
FastStream's ``AsyncAPI`` turns that into channels, operations, messages and JSON Schemas. The
services' own brokers cannot be used: they publish with ``broker.publish`` (no declared publishers)
and consume raw records, so FastStream would see neither the producers nor the payloads (see
docs/decisions/0503-asyncapi-from-the-contracts.md).

``python -m koalr_cli.asyncapi docs/asyncapi.yaml`` rewrites the file; a test fails when the
committed file differs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any, Final

import yaml
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from koalr_contracts import (
    Alert,
    DeadLetter,
    MemberErased,
    SyncJobRequested,
    SyncStatusChanged,
    topics,
)
from koalr_contracts.decoding import IntegrationEvent, UsageEvent

TITLE: Final = "Koalr event topics"
VERSION: Final = "1"


@dataclass(frozen=True, slots=True)
class Topic:
    """One topic: its events, the services that publish it, the consumer groups that read it."""

    name: str
    events: Any
    description: str
    publishers: tuple[str, ...]
    consumer_groups: tuple[tuple[str, str], ...]
    """``(service, group)``; groups are prefixed like the topics by ``KOALR_TOPIC_NAMESPACE``."""


TOPICS: Final = (
    Topic(
        topics.INTEGRATIONS,
        IntegrationEvent,
        "An integration was connected, its credentials rotated, or it was disconnected.",
        ("connector",),
        (("syncer", "syncer-registry"), ("metrics", "metrics-integrations")),
    ),
    Topic(
        topics.SYNC_JOBS,
        SyncJobRequested,
        "A window of days to fetch for one integration: backfill, scheduled, manual or a continuation.",
        ("connector", "syncer"),
        (("syncer", "syncer-workers"),),
    ),
    Topic(
        topics.USAGE_RECORDS,
        UsageEvent,
        "Usage per member and day, spend snapshots, seats and day spend fetched from a provider.",
        ("syncer",),
        (("metrics", "metrics-ingest"),),
    ),
    Topic(
        topics.SYNC_STATUS,
        SyncStatusChanged,
        "The state, progress and freshness of an integration's sync.",
        ("syncer",),
        (("connector", "connector-sync-status"), ("metrics", "metrics-sync-status")),
    ),
    Topic(
        topics.MEMBER_ERASURES,
        MemberErased,
        "A member was erased (GDPR article 17), named by a hash only: delete what is held of "
        "them for this integration and keep them out.",
        ("metrics",),
        (("syncer", "syncer-member-erasures"),),
    ),
    Topic(
        topics.DEAD_LETTERS,
        DeadLetter,
        "Messages a consumer could not process, with their origin and the reason; for operators "
        "(`koalr dead-letters`).",
        ("connector", "syncer", "metrics"),
        (),
    ),
    Topic(
        topics.ALERTS,
        Alert,
        "Spend anomalies and newly idle seats, each once per `alert_key` (at least once on the "
        "wire: dedupe on the key); for the platform's notifications.",
        ("metrics",),
        (),
    ),
)


def _receiver(events: Any) -> Callable[[Any], Coroutine[Any, Any, None]]:
    """A subscriber function whose argument is typed with the topic's events (never called)."""

    async def receive(event: Any) -> None:
        del event

    receive.__annotations__["event"] = events
    return receive


def specification_broker() -> KafkaBroker:
    broker = KafkaBroker("kafka:9092", description="The Kafka cluster (KAFKA_BOOTSTRAP_SERVERS).")
    for topic in TOPICS:
        for service in topic.publishers:
            broker.publisher(
                topic.name,
                schema=topic.events,
                title=f"{topic.name}:publish:{service}",
                description=f"{service} publishes: {topic.description}",
            )
        for service, group in topic.consumer_groups:
            broker.subscriber(
                topic.name,
                group_id=group,
                title=f"{topic.name}:consume:{group}",
                description=f"{service} (consumer group `{group}`) reads: {topic.description}",
            )(_receiver(topic.events))
    return broker


def document() -> str:
    """The AsyncAPI document as YAML (stable: same code, same text)."""
    spec = AsyncAPI(
        specification_broker(),
        title=TITLE,
        version=VERSION,
        description="Every topic is keyed by `integration_id`; every event carries `event_type`, "
        "`schema_version` and `correlation_id` headers.",
        schema_version="3.0.0",
    ).to_specification()
    body: dict[str, Any] = spec.to_jsonable()
    for section in (body, body["components"]):
        for name in ("channels", "operations", "messages", "schemas"):
            if name in section:
                section[name] = dict(sorted(section[name].items()))
    out = StringIO()
    yaml.safe_dump(body, out, sort_keys=False, allow_unicode=True, width=100)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else Path("docs/asyncapi.yaml")
    path.write_text(document())
    sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
