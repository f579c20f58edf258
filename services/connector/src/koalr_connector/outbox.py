"""The transactional outbox: events are stored with the change that caused them, then relayed.

A change to an integration and the event announcing it are written in one PostgreSQL
transaction (``outbox`` table), so they cannot diverge: if Kafka is down, the change is stored and
the event waits. :class:`OutboxRelay` publishes waiting events:

- in order per integration: only the oldest unpublished event of an integration is eligible, and
  the next one only after Kafka acknowledged it;
- safe with several replicas: rows are claimed with ``FOR UPDATE SKIP LOCKED`` inside the
  transaction that marks them published, so a row is in flight at one relay at a time;
- marked published only after Kafka acknowledged the message (``acks=all``);
- retried with exponential back-off (``stamina``) while Kafka (or PostgreSQL) is unreachable.

Delivery is at least once: a relay that dies after Kafka acknowledged but before its commit
publishes the event again on restart. A repeat is harmless by construction, not by a
de-duplication table: every integration event carries the integration's next ``sequence``,
taken in the transaction that writes its outbox row (``ConnectorService._announce``), and
consumers apply an event only when its sequence is above the last one they applied, so a
repeat is skipped. A repeated ``SyncJobRequested`` keeps its ``job_id`` and at worst re-reads
the same window, which the idempotent upserts make harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol
from uuid import UUID

import stamina

from koalr_connector.instruments import OUTBOX_FAILURES, OUTBOX_PENDING, OUTBOX_PUBLISHED
from koalr_contracts import AnyEvent, encode_event
from koalr_runtime.kafka import event_headers
from koalr_runtime.logs import get_logger, redact_text
from koalr_runtime.tracing import continued, current_carrier

if TYPE_CHECKING:
    from faststream.kafka import KafkaBroker

    from koalr_connector.repository import Repository

log = get_logger(__name__)

Ready = Callable[[], Awaitable[object]]

PRUNE_EVERY_S = 60.0


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One event as it will go on Kafka: contract topic, key, JSON bytes and headers."""

    integration_id: UUID
    topic: str
    event_id: UUID
    event_type: str
    key: bytes
    payload: bytes
    headers: dict[str, str]
    trace_context: dict[str, str] = field(default_factory=dict)
    """The trace of the change that wrote it (``traceparent``), continued by the relay."""

    @classmethod
    def of(cls, topic: str, event: AnyEvent) -> OutboxMessage:
        """The message for ``event`` on contract ``topic``, encoded like ``publish_event``."""
        key = event.kafka_key()
        integration_id = event.integration_id
        if key is None or integration_id is None:
            raise ValueError("outbox events are keyed by their integration id")
        return cls(
            integration_id=integration_id,
            topic=topic,
            event_id=event.event_id,
            event_type=event.event_type,
            key=key,
            payload=encode_event(event),
            headers=event_headers(event),
            trace_context=current_carrier(),
        )


@dataclass(frozen=True, slots=True)
class PendingMessage:
    id: int
    attempts: int
    message: OutboxMessage


class Publisher(Protocol):
    async def send(
        self, topic: str, key: bytes, payload: bytes, headers: Mapping[str, str]
    ) -> Awaitable[object]:
        """Hand a message to Kafka; the returned awaitable completes once the broker has it."""
        ...


class KafkaPublisher:
    """Publishes on the FastStream broker, applying the topic namespace."""

    def __init__(self, broker: KafkaBroker, topic_name: Callable[[str], str]) -> None:
        self._broker = broker
        self._topic_name = topic_name

    async def send(
        self, topic: str, key: bytes, payload: bytes, headers: Mapping[str, str]
    ) -> Awaitable[object]:
        ack: Awaitable[object] = await self._broker.publish(
            payload, self._topic_name(topic), key=key, headers=dict(headers), no_confirm=True
        )
        return ack


class OutboxPublishError(Exception):
    """Some outbox messages could not be published; they stay pending and are retried."""


class OutboxRelay:
    def __init__(
        self,
        repository: Repository,
        publisher: Publisher,
        *,
        ready: Ready,
        interval_s: float = 1.0,
        batch_size: int = 100,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        retention: timedelta = timedelta(days=7),
    ) -> None:
        self._repository = repository
        self._publisher = publisher
        self._ready = ready
        self._interval_s = interval_s
        self._batch_size = batch_size
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._retention = retention
        self._wake = asyncio.Event()
        self._pruned_at: float | None = None

    def wake(self) -> None:
        """Look for work now (called after this process wrote to the outbox)."""
        self._wake.set()

    async def run(self) -> None:
        """Relay until cancelled."""
        while True:
            if await self._publish_until_done():
                continue
            await self._housekeeping()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval_s)

    async def _publish_until_done(self) -> int:
        """One batch, retried with exponential back-off (no jitter: one relay per process)
        until it goes through; the back-off starts again from the first delay afterwards."""
        async for attempt in stamina.retry_context(
            on=_publish_failed,
            attempts=None,
            timeout=None,
            wait_initial=self._retry_initial_s,
            wait_max=self._retry_max_s,
            wait_jitter=0,
        ):
            with attempt:
                await self._ready()
                self._wake.clear()
                return await self.publish_pending()
        raise AssertionError("stamina ended without an attempt")  # pragma: no cover

    async def publish_pending(self) -> int:
        """Publish one batch of eligible messages; returns how many Kafka acknowledged.

        Raises :class:`OutboxPublishError` (after committing what did get through) when some
        could not be published.
        """
        failed: list[PendingMessage] = []
        first_error: BaseException | None = None
        async with self._repository.transaction() as conn:
            pending = await self._repository.claim_heads(conn, self._batch_size)
            if not pending:
                return 0
            handed: list[tuple[PendingMessage, Awaitable[object]]] = []
            for item in pending:
                message = item.message
                try:
                    with continued(message.trace_context):
                        ack = await self._publisher.send(
                            message.topic, message.key, message.payload, message.headers
                        )
                except Exception as exc:  # noqa: BLE001 - the rest of the batch waits
                    first_error = exc
                    failed = pending[len(handed) :]
                    break
                handed.append((item, ack))
            results = await asyncio.gather(*(ack for _, ack in handed), return_exceptions=True)
            acknowledged: list[PendingMessage] = []
            for (item, _), result in zip(handed, results, strict=True):
                if isinstance(result, BaseException):
                    failed.append(item)
                    first_error = first_error or result
                else:
                    acknowledged.append(item)
            if acknowledged:
                await self._repository.mark_published(conn, [p.id for p in acknowledged])
        for item in acknowledged:
            OUTBOX_PUBLISHED.labels(item.message.event_type).inc()
            log.info(
                "outbox.published",
                event_type=item.message.event_type,
                event_id=str(item.message.event_id),
                integration_id=str(item.message.integration_id),
                correlation_id=item.message.headers.get("correlation_id"),
            )
        if failed:
            reason = _describe(first_error)
            await self._repository.record_failure([p.id for p in failed], redact_text(reason))
            raise OutboxPublishError(
                f"{len(failed)} outbox message(s) not published ({redact_text(reason)[:300]})"
            )
        return len(acknowledged)

    async def _housekeeping(self) -> None:
        """Refresh the pending gauge; prune old published rows once a minute."""
        try:
            OUTBOX_PENDING.set(await self._repository.count_unpublished())
            now = time.monotonic()
            if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY_S:
                return
            self._pruned_at = now
            deleted = await self._repository.delete_published_before(
                datetime.now(UTC) - self._retention
            )
        except Exception as exc:  # noqa: BLE001 - housekeeping never stops the relay
            log.warning("outbox.housekeeping_failed", error_type=type(exc).__name__)
            return
        if deleted:
            log.info("outbox.pruned", deleted=deleted)


def _publish_failed(exc: Exception) -> bool:
    """Every failure to publish is retried (Kafka or PostgreSQL may come back)."""
    if not isinstance(exc, Exception):  # cancellation stops the relay
        return False
    OUTBOX_FAILURES.inc()
    log.warning(
        "outbox.publish_failed", error_type=type(exc).__name__, error=redact_text(str(exc))[:500]
    )
    return True


def _describe(error: BaseException | None) -> str:
    """``Type: message`` without repeating the type (aiokafka errors already start with it)."""
    name = type(error).__name__
    text = str(error)
    if not text:
        return name
    return text if text.startswith(name) else f"{name}: {text}"
