"""Thin Kafka subscribers: decode, bind the correlation id, call the service, ack deliberately.

Both subscribers use ``AckPolicy.MANUAL``. An offset is committed only after the message's
effects are durable: for a job, after its records were acknowledged by Kafka, its progress
recorded and its continuation published (all inside :meth:`JobRunner.run`).

- A message that cannot be decoded, that the service calls bad (:class:`BadMessageError`), or
  whose content PostgreSQL refuses (a permanent error of :mod:`koalr_runtime.pgerrors`: a NUL
  byte, a value too long, a check violation) goes to the dead-letter topic with the reason, then
  is committed: retrying it would stall every integration behind it on the partition.
- Transient failures (PostgreSQL unreachable or overloaded, Kafka, a busy integration, a job
  that overtook its integration's registration) are retried with capped backoff by seeking back to the message: never skipped, never dead-lettered.
- Any other failure is retried a few times, then dead-lettered, so no message stalls a partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage

from koalr_contracts import (
    AnyEvent,
    EventDecodeError,
    IntegrationConnected,
    IntegrationCredentialsRotated,
    IntegrationDisconnected,
    MemberErased,
    SyncJobRequested,
    decode_event,
    topics,
)
from koalr_runtime.kafka import dead_letter_for, publish_event
from koalr_runtime.logs import bind_correlation, get_logger
from koalr_runtime.pgerrors import is_permanent, is_transient
from koalr_runtime.retry import RetryPause
from koalr_syncer.service import (
    BadMessageError,
    Erasures,
    IntegrationBusyError,
    IntegrationNotRegisteredYetError,
    JobRunner,
    Registry,
)
from koalr_syncer.settings import SyncerSettings

if TYPE_CHECKING:
    from aiokafka.structs import ConsumerRecord

log = get_logger(__name__)

MAX_FAILURES_BEFORE_DEAD_LETTER: Final[int] = 5
INFRA_BACKOFF_MAX_S: Final[float] = 30.0
MESSAGE_RETRY_PAUSE: Final = RetryPause(initial_s=0.5, max_s=INFRA_BACKOFF_MAX_S)
RETRIED_ERRORS: Final = (
    KafkaError,
    OSError,
    TimeoutError,
    IntegrationBusyError,
    IntegrationNotRegisteredYetError,
)
"""Besides transient database errors: failures that go away by waiting."""

IntegrationEvent = IntegrationConnected | IntegrationCredentialsRotated | IntegrationDisconnected


class Services(Protocol):
    """What the subscribers call; available once the app has started."""

    @property
    def registry(self) -> Registry: ...

    @property
    def jobs(self) -> JobRunner: ...

    @property
    def erasures(self) -> Erasures: ...


GiveUp = Callable[[Any, BaseException], Awaitable[None]]


class _Failures:
    """Consecutive failures per message (topic, partition, offset) in this process."""

    LIMIT: Final[int] = 10_000

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int, int], int] = {}

    def add(self, record: ConsumerRecord[Any, Any]) -> int:
        if len(self._counts) >= self.LIMIT:  # messages that moved to another consumer
            self._counts.clear()
        key = (record.topic, record.partition, record.offset)
        self._counts[key] = self._counts.get(key, 0) + 1
        return self._counts[key]

    def clear(self, record: ConsumerRecord[Any, Any]) -> None:
        self._counts.pop((record.topic, record.partition, record.offset), None)


async def _consume(
    msg: KafkaMessage,
    *,
    broker: KafkaBroker,
    group: str,
    dead_letter_topic: str,
    expected: tuple[type[object], ...],
    handle: Callable[[Any], Awaitable[str]],
    failures: _Failures,
    give_up: GiveUp | None = None,
) -> None:
    """Handle one message; no exception leaves this function.

    An exception escaping a subscriber would leave the message uncommitted while the consumer
    moves on, and the next commit would then skip it. Anything that fails, including the
    dead-lettering itself, ends in a seek back to the message after a backoff.
    """
    record = cast("ConsumerRecord[Any, Any]", msg.raw_message)
    try:
        await _process(
            msg,
            record,
            broker=broker,
            group=group,
            dead_letter_topic=dead_letter_topic,
            expected=expected,
            handle=handle,
            failures=failures,
            give_up=give_up,
        )
    except Exception as exc:  # noqa: BLE001 - retried below, never dropped
        count = failures.add(record)
        delay = MESSAGE_RETRY_PAUSE.delay_after(count)
        log.warning(
            "message.retry",
            error_type=type(exc).__name__,
            error=str(exc),
            attempt=count,
            wait_s=delay,
        )
        await asyncio.sleep(delay)
        await _seek_back(msg)


async def _seek_back(msg: KafkaMessage) -> None:
    try:
        await msg.nack()
    except Exception as exc:  # noqa: BLE001 - the partition moved: its new owner reads it again
        log.warning("message.seek_failed", error_type=type(exc).__name__, error=str(exc))


async def _process(
    msg: KafkaMessage,
    record: ConsumerRecord[Any, Any],
    *,
    broker: KafkaBroker,
    group: str,
    dead_letter_topic: str,
    expected: tuple[type[object], ...],
    handle: Callable[[Any], Awaitable[str]],
    failures: _Failures,
    give_up: GiveUp | None,
) -> None:
    try:
        event = _decode(record.topic, msg.body, expected)
    except EventDecodeError as exc:
        await _dead_letter(broker, dead_letter_topic, record, group, exc)
        await msg.ack()
        return
    bind_correlation(
        str(event.correlation_id),
        integration_id=str(event.integration_id),
        event_type=event.event_type,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
    )
    try:
        outcome = await handle(event)
    except BadMessageError as exc:
        await _dead_letter(broker, dead_letter_topic, record, group, exc, event=event)
        failures.clear(record)
        await msg.ack()
        return
    except Exception as exc:
        if is_transient(exc) or isinstance(exc, RETRIED_ERRORS):
            raise  # retried by the caller, never dead-lettered
        if not is_permanent(exc):
            count = failures.add(record)
            log.exception("message.failed", error_type=type(exc).__name__, attempt=count)
            if count < MAX_FAILURES_BEFORE_DEAD_LETTER:
                await asyncio.sleep(MESSAGE_RETRY_PAUSE.delay_after(count))
                await _seek_back(msg)
                return
        await _dead_letter(broker, dead_letter_topic, record, group, exc, event=event)
        if give_up is not None:
            await give_up(event, exc)
        failures.clear(record)
        await msg.ack()
        return
    failures.clear(record)
    await msg.ack()
    log.info("message.done", outcome=outcome)


def _decode(topic: str, body: bytes, expected: tuple[type[object], ...]) -> AnyEvent:
    event = decode_event(topic, body)
    if not isinstance(event, expected):
        raise EventDecodeError(topic, f"unexpected event type {event.event_type} on this topic")
    return event


async def _dead_letter(
    broker: KafkaBroker,
    topic: str,
    record: ConsumerRecord[Any, Any],
    group: str,
    error: BaseException,
    *,
    event: AnyEvent | None = None,
) -> None:
    letter = dead_letter_for(
        record,
        consumer_group=group,
        error=error,
        org_id=getattr(event, "org_id", None),
        integration_id=getattr(event, "integration_id", None),
    )
    await publish_event(broker, topic, letter)
    log.warning(
        "message.dead_lettered",
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        error_type=letter.error_type,
        reason=letter.reason,
    )


def register_handlers(broker: KafkaBroker, settings: SyncerSettings, services: Services) -> None:
    """Declare the registry and worker subscribers (before the broker starts)."""
    dead_letters = settings.topic(topics.DEAD_LETTERS)
    registry_group = settings.group("syncer-registry")
    workers_group = settings.group("syncer-workers")
    registry_failures = _Failures()
    job_failures = _Failures()

    erasures_group = settings.group("syncer-member-erasures")
    erasure_failures = _Failures()

    async def apply_integration_event(event: IntegrationEvent) -> str:
        return await services.registry.apply(event)

    async def apply_erasure(event: MemberErased) -> str:
        return await services.erasures.apply(event)

    async def run_job(job: SyncJobRequested) -> str:
        return await services.jobs.run(job)

    async def give_up_job(job: SyncJobRequested, error: BaseException) -> None:
        await services.jobs.give_up(job, error)

    @broker.subscriber(
        settings.topic(topics.INTEGRATIONS),
        group_id=registry_group,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.consumer_session_timeout_ms,
        heartbeat_interval_ms=settings.consumer_heartbeat_interval_ms,
        max_poll_interval_ms=settings.consumer_max_poll_interval_ms,
        fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,
        ack_policy=AckPolicy.MANUAL,
    )
    async def on_integration_event(msg: KafkaMessage) -> None:
        await _consume(
            msg,
            broker=broker,
            group=registry_group,
            dead_letter_topic=dead_letters,
            expected=(IntegrationConnected, IntegrationCredentialsRotated, IntegrationDisconnected),
            handle=apply_integration_event,
            failures=registry_failures,
        )

    @broker.subscriber(
        settings.topic(topics.MEMBER_ERASURES),
        group_id=erasures_group,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.consumer_session_timeout_ms,
        heartbeat_interval_ms=settings.consumer_heartbeat_interval_ms,
        max_poll_interval_ms=settings.consumer_max_poll_interval_ms,
        fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,
        ack_policy=AckPolicy.MANUAL,
    )
    async def on_member_erased(msg: KafkaMessage) -> None:
        await _consume(
            msg,
            broker=broker,
            group=erasures_group,
            dead_letter_topic=dead_letters,
            expected=(MemberErased,),
            handle=apply_erasure,
            failures=erasure_failures,
        )

    @broker.subscriber(
        settings.topic(topics.SYNC_JOBS),
        group_id=workers_group,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.consumer_session_timeout_ms,
        heartbeat_interval_ms=settings.consumer_heartbeat_interval_ms,
        max_poll_interval_ms=settings.consumer_max_poll_interval_ms,
        fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,
        ack_policy=AckPolicy.MANUAL,
        max_workers=settings.worker_concurrency,
    )
    async def on_sync_job(msg: KafkaMessage) -> None:
        await _consume(
            msg,
            broker=broker,
            group=workers_group,
            dead_letter_topic=dead_letters,
            expected=(SyncJobRequested,),
            handle=run_job,
            failures=job_failures,
            give_up=give_up_job,
        )
