"""Consumer lag per group and partition: the committed offset against the partition's end."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from aiokafka.errors import KafkaError, KafkaTimeoutError

from koalr_cli import kafka
from koalr_cli.errors import CliError


@dataclass(frozen=True, slots=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int | None
    """``None`` when the group has never committed on this partition."""
    end: int
    lag: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def lag_of(committed: int | None, end: int) -> int:
    """Messages the group has still to process (all of them when nothing is committed)."""
    return max(0, end - (committed if committed is not None else 0))


async def consumer_lag(
    bootstrap_servers: str,
    *,
    groups: list[str] | None = None,
    group_prefix: str = "",
    timeout_s: float = 10.0,
) -> list[PartitionLag]:
    """Lag of the named groups (or of every group starting with ``group_prefix``), sorted."""
    named = groups is not None
    committed: dict[str, dict[Any, Any]] = {}
    partitions: set[Any] = set()
    try:
        async with kafka.admin(bootstrap_servers, timeout_s) as admin:
            if groups is None:
                listed = await admin.list_consumer_groups()
                groups = sorted(g[0] for g in listed if str(g[0]).startswith(group_prefix))
            for group in groups:
                committed[group] = await admin.list_consumer_group_offsets(group)
            # A group keeps its offsets of a topic deleted since; such a topic has no end to
            # compare with (asking for it only times out), so its partitions are left out.
            existing = set(await admin.list_topics())
            committed = {
                group: {tp: meta for tp, meta in offsets.items() if tp.topic in existing}
                for group, offsets in committed.items()
            }
        async with kafka.reader(bootstrap_servers, timeout_s) as consumer:
            partitions = {tp for offsets in committed.values() for tp in offsets}
            ends = await consumer.end_offsets(list(partitions)) if partitions else {}
    except KafkaTimeoutError as exc:
        raise CliError(
            "kafka_timeout",
            f"Kafka at {bootstrap_servers} answered, but not with the end offsets of "
            f"{len(partitions)} partition(s) of {len(committed)} group(s) within {timeout_s:g} s; "
            "name the groups with --group, or allow more time with KOALR_TIMEOUT_S.",
        ) from exc
    except KafkaError as exc:
        raise kafka.unreachable(bootstrap_servers, exc) from exc
    if named and (unknown := [g for g in groups if not committed[g]]):
        raise CliError(
            "unknown_group",
            f"No committed offsets for the consumer group(s) {', '.join(map(repr, unknown))}; "
            "list the groups with `koalr lag` (no --group).",
        )
    rows = []
    for group, offsets in committed.items():
        for tp, meta in offsets.items():
            done = meta.offset if meta.offset >= 0 else None
            end = int(ends[tp])
            rows.append(PartitionLag(group, tp.topic, tp.partition, done, end, lag_of(done, end)))
    return sorted(rows, key=lambda r: (r.group, r.topic, r.partition))
