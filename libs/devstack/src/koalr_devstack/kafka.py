"""Waiting on Kafka consumer groups, for tests and benchmarks that start worker processes."""

from __future__ import annotations

import asyncio
import time

from aiokafka.admin import AIOKafkaAdminClient


async def wait_for_group(bootstrap: str, group: str, members: int, timeout_s: float) -> None:
    """Wait until the consumer group is stable with exactly ``members`` members."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            state, count = "", -1
            for response in await admin.describe_consumer_groups([group]):
                for description in response.groups:
                    state, count = description[2], len(description[5])
            if state == "Stable" and count == members:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"group {group}: {state} with {count} members, not {members}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
