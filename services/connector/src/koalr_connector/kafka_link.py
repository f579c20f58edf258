"""Starting the Kafka broker in the background, so the HTTP API works while Kafka is down.

Until the broker is up, writes keep landing in the outbox; the relay waits for :meth:`started`.
Once started, aiokafka reconnects by itself when the broker goes away and comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

from faststream.kafka import KafkaBroker

from koalr_runtime.kafka import ensure_topics, wait_for_kafka
from koalr_runtime.logs import get_logger, redact_text

log = get_logger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class BrokerSupervisor:
    def __init__(
        self,
        broker: KafkaBroker,
        bootstrap_servers: str,
        topics: Sequence[str],
        *,
        partitions: int,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 15.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._broker = broker
        self._bootstrap_servers = bootstrap_servers
        self._topics = list(topics)
        self._partitions = partitions
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._sleep = sleep
        self._started = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def is_started(self) -> bool:
        return self._started.is_set()

    async def started(self) -> None:
        """Wait until the broker is connected and its subscribers run."""
        await self._started.wait()

    def start_in_background(self) -> None:
        self._task = asyncio.create_task(self._run(), name="connector-kafka-start")

    async def _run(self) -> None:
        delay = self._retry_initial_s
        attempt = 0
        while True:
            attempt += 1
            try:
                await wait_for_kafka(self._bootstrap_servers, timeout_s=5)
                await ensure_topics(
                    self._bootstrap_servers, self._topics, partitions=self._partitions
                )
                await self._broker.start()
            except Exception as exc:  # noqa: BLE001 - any failure: clean up and try again
                log.warning(
                    "kafka.start_failed",
                    attempt=attempt,
                    error_type=type(exc).__name__,
                    error=redact_text(str(exc))[:300],
                    retry_in_s=delay,
                )
                with contextlib.suppress(Exception):
                    await self._broker.stop()
                await self._sleep(delay)
                delay = min(delay * 2, self._retry_max_s)
                continue
            self._started.set()
            log.info("kafka.started", attempt=attempt, bootstrap_servers=self._bootstrap_servers)
            return

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._broker.stop()
