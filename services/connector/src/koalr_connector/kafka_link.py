"""Starting the Kafka broker in the background, so the HTTP API works while Kafka is down.

Until the broker is up, writes keep landing in the outbox; the relay waits for :meth:`started`.
Once started, aiokafka reconnects by itself when the broker goes away and comes back. Start
attempts are retried with exponential back-off (``stamina``) until one succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import stamina
from faststream.kafka import KafkaBroker

from koalr_runtime.kafka import ensure_topics, wait_for_kafka
from koalr_runtime.logs import get_logger, redact_text

log = get_logger(__name__)


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
    ) -> None:
        self._broker = broker
        self._bootstrap_servers = bootstrap_servers
        self._topics = list(topics)
        self._partitions = partitions
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
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
        async for attempt in stamina.retry_context(
            on=_start_failed,
            attempts=None,
            timeout=None,
            wait_initial=self._retry_initial_s,
            wait_max=self._retry_max_s,
            wait_jitter=0,
        ):
            with attempt:
                await self._start(attempt.num)
        self._started.set()

    async def _start(self, attempt: int) -> None:
        try:
            await wait_for_kafka(self._bootstrap_servers, timeout_s=5)
            await ensure_topics(self._bootstrap_servers, self._topics, partitions=self._partitions)
            await self._broker.start()
        except Exception:
            with contextlib.suppress(Exception):  # clean up before the next attempt
                await self._broker.stop()
            raise
        log.info("kafka.started", attempt=attempt, bootstrap_servers=self._bootstrap_servers)

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._broker.stop()


def _start_failed(exc: Exception) -> bool:
    """Any failure to start is retried (Kafka may still be starting); cancellation is not."""
    if not isinstance(exc, Exception):
        return False
    log.warning(
        "kafka.start_failed", error_type=type(exc).__name__, error=redact_text(str(exc))[:300]
    )
    return True
