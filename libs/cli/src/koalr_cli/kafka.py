"""Short-lived Kafka clients for one command, with a clear error when no broker answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from koalr_cli.errors import CliError


def unreachable(bootstrap_servers: str, exc: BaseException) -> CliError:
    return CliError(
        "kafka_unreachable",
        f"No Kafka broker answered at {bootstrap_servers} ({type(exc).__name__}); check "
        "KAFKA_BOOTSTRAP_SERVERS or start Kafka with `make services-up`.",
    )


async def _stop(client: Any) -> None:
    if isinstance(client, AIOKafkaAdminClient):
        await client.close()
    else:
        await client.stop()


@asynccontextmanager
async def _started(client: Any, bootstrap_servers: str, timeout_s: float) -> AsyncIterator[Any]:
    try:
        await asyncio.wait_for(client.start(), timeout=timeout_s)
    except (TimeoutError, KafkaError, OSError) as exc:
        await _stop(client)
        raise unreachable(bootstrap_servers, exc) from exc
    try:
        yield client
    finally:
        await _stop(client)


def admin(bootstrap_servers: str, timeout_s: float) -> Any:
    """``async with admin(...) as client``: a started ``AIOKafkaAdminClient``."""
    client = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, request_timeout_ms=int(timeout_s * 1000)
    )
    return _started(client, bootstrap_servers, timeout_s)


def reader(bootstrap_servers: str, timeout_s: float) -> Any:
    """A started consumer without a group (never commits): offsets and reads by position."""
    client = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=int(timeout_s * 1000),
    )
    return _started(client, bootstrap_servers, timeout_s)


def producer(bootstrap_servers: str, timeout_s: float) -> Any:
    """A started idempotent producer (``acks=all``)."""
    client = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        enable_idempotence=True,
        request_timeout_ms=int(timeout_s * 1000),
    )
    return _started(client, bootstrap_servers, timeout_s)


async def partitions_of(bootstrap_servers: str, topic: str, timeout_s: float) -> list[int]:
    """The topic's partition ids, none when it does not exist (it is never created here)."""
    async with admin(bootstrap_servers, timeout_s) as client:
        if topic not in await client.list_topics():
            return []
        [described] = await client.describe_topics([topic])
        return sorted(int(p["partition"]) for p in described["partitions"])
