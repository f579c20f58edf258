"""The outbox relay against a real PostgreSQL, with a stand-in for Kafka."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

from koalr_connector.outbox import OutboxMessage, OutboxPublishError, OutboxRelay
from koalr_connector.repository import Repository
from koalr_contracts import IntegrationDisconnected, topics
from koalr_runtime.db import create_pool
from koalr_runtime.migrations import migrate
from tests.connector.conftest import wait_until

pytestmark = pytest.mark.integration

MIGRATIONS = (
    Path(__file__).resolve().parents[2] / "services/connector/src/koalr_connector/migrations"
)
SCHEMA = "connector"


@pytest.fixture
async def repository(fresh_database_url: str) -> AsyncIterator[Repository]:
    await migrate(fresh_database_url, SCHEMA, MIGRATIONS)
    pool = await create_pool(fresh_database_url, max_size=6)
    try:
        yield Repository(pool, SCHEMA)
    finally:
        await pool.close()


class FakeKafka:
    """Accepts messages like the broker would, failing the first sends or acks on request."""

    def __init__(
        self,
        *,
        failing_sends: int = 0,
        failing_acks: int = 0,
        fail_calls: frozenset[int] = frozenset(),
        ack_delay_s: float = 0.0,
    ) -> None:
        self.failing_sends = failing_sends
        self.failing_acks = failing_acks
        self.fail_calls = fail_calls
        self.ack_delay_s = ack_delay_s
        self.calls = 0
        self.delivered: list[tuple[str, bytes, bytes, dict[str, str]]] = []

    async def send(
        self, topic: str, key: bytes, payload: bytes, headers: Mapping[str, str]
    ) -> Awaitable[object]:
        self.calls += 1
        if self.failing_sends > 0 or self.calls in self.fail_calls:
            self.failing_sends = max(0, self.failing_sends - 1)
            raise KafkaConnectionError("Unable to connect to the broker")
        if self.failing_acks > 0:
            self.failing_acks -= 1
            failed: asyncio.Future[object] = asyncio.get_running_loop().create_future()
            failed.set_exception(KafkaTimeoutError("no acknowledgement"))
            return failed
        return self._ack(topic, key, payload, dict(headers))

    async def _ack(self, topic: str, key: bytes, payload: bytes, headers: dict[str, str]) -> None:
        if self.ack_delay_s:
            await asyncio.sleep(random.uniform(0, self.ack_delay_s))
        self.delivered.append((topic, key, payload, headers))


async def always_ready() -> None:
    return None


def message(integration_id: UUID) -> OutboxMessage:
    event = IntegrationDisconnected(
        org_id="org_1", integration_id=integration_id, provider="cursor"
    )
    return OutboxMessage.of(topics.INTEGRATIONS, event)


async def enqueue(repository: Repository, *messages: OutboxMessage) -> None:
    async with repository.transaction() as conn:
        for item in messages:
            await repository.enqueue(conn, item)


async def rows(repository: Repository) -> list[dict[str, Any]]:
    async with repository.transaction() as conn:
        found = await conn.fetch(
            "SELECT id, event_id, published_at, attempts, last_error FROM connector.outbox "
            "ORDER BY id"
        )
    return [dict(r) for r in found]


async def run_until_published(relay: OutboxRelay, repository: Repository) -> None:
    task = asyncio.create_task(relay.run())
    try:
        await wait_until(lambda: _all_published(repository), timeout_s=20, interval_s=0.02)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def _all_published(repository: Repository) -> bool:
    return all(r["published_at"] is not None for r in await rows(repository))


async def test_the_relay_backs_off_while_kafka_is_down_then_publishes_once(
    repository: Repository, retry_waits: list[float]
) -> None:
    item = message(uuid4())
    await enqueue(repository, item)
    kafka = FakeKafka(failing_sends=3)
    relay = OutboxRelay(
        repository,
        kafka,
        ready=always_ready,
        retry_initial_s=0.05,
        retry_max_s=30,
    )

    await run_until_published(relay, repository)

    assert retry_waits == pytest.approx([0.05, 0.1, 0.2])
    assert kafka.delivered == [(topics.INTEGRATIONS, item.key, item.payload, item.headers)]
    (row,) = await rows(repository)
    assert row["attempts"] == 4
    assert row["last_error"] == "KafkaConnectionError: Unable to connect to the broker"


async def test_the_back_off_is_capped(repository: Repository, retry_waits: list[float]) -> None:
    await enqueue(repository, message(uuid4()))
    relay = OutboxRelay(
        repository,
        FakeKafka(failing_sends=6),
        ready=always_ready,
        retry_initial_s=0.01,
        retry_max_s=0.04,
    )
    await run_until_published(relay, repository)
    assert retry_waits == pytest.approx([0.01, 0.02, 0.04, 0.04, 0.04, 0.04])


async def test_a_message_whose_acknowledgement_failed_is_sent_again(
    repository: Repository, retry_waits: list[float]
) -> None:
    item = message(uuid4())
    await enqueue(repository, item)
    kafka = FakeKafka(failing_acks=1)
    relay = OutboxRelay(repository, kafka, ready=always_ready, retry_initial_s=0.25)

    await run_until_published(relay, repository)

    assert retry_waits == [0.25]
    assert kafka.calls == 2
    assert [d[2] for d in kafka.delivered] == [item.payload]
    (row,) = await rows(repository)
    assert (row["attempts"], row["last_error"]) == (2, "KafkaTimeoutError: no acknowledgement")


async def test_what_went_through_is_committed_when_part_of_a_batch_fails(
    repository: Repository,
) -> None:
    messages = [message(uuid4()) for _ in range(3)]
    await enqueue(repository, *messages)
    kafka = FakeKafka(fail_calls=frozenset({2}))
    relay = OutboxRelay(repository, kafka, ready=always_ready)

    with pytest.raises(OutboxPublishError, match="2 outbox message"):
        await relay.publish_pending()

    first, second, third = await rows(repository)
    assert first["published_at"] is not None
    assert (second["published_at"], third["published_at"]) == (None, None)
    assert [r["attempts"] for r in (first, second, third)] == [1, 1, 1]
    assert await relay.publish_pending() == 2
    assert [d[2] for d in kafka.delivered] == [m.payload for m in messages]


async def test_two_relays_keep_per_integration_order_and_publish_each_event_once(
    repository: Repository,
) -> None:
    integrations = [uuid4() for _ in range(4)]
    expected: dict[UUID, list[UUID]] = {i: [] for i in integrations}
    for _ in range(5):
        for integration_id in integrations:
            item = message(integration_id)
            expected[integration_id].append(item.event_id)
            await enqueue(repository, item)
    kafka = FakeKafka(ack_delay_s=0.01)
    relays = [
        OutboxRelay(repository, kafka, ready=always_ready, batch_size=2, interval_s=0.05)
        for _ in range(2)
    ]
    tasks = [asyncio.create_task(r.run()) for r in relays]
    try:
        await wait_until(lambda: _all_published(repository), timeout_s=30, interval_s=0.02)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    seen: dict[UUID, list[UUID]] = {i: [] for i in integrations}
    for _, key, payload, _ in kafka.delivered:
        event = IntegrationDisconnected.model_validate_json(payload)
        assert key == str(event.integration_id).encode()
        seen[event.integration_id].append(event.event_id)
    assert seen == expected


async def test_the_relay_waits_until_kafka_is_started(repository: Repository) -> None:
    await enqueue(repository, message(uuid4()))
    waiting = asyncio.Event()
    started = asyncio.Event()

    async def ready() -> None:
        waiting.set()
        await started.wait()

    kafka = FakeKafka()
    relay = OutboxRelay(repository, kafka, ready=ready, interval_s=0.05)
    task = asyncio.create_task(relay.run())
    try:
        # The relay reached the point where it waits for Kafka, with a message pending.
        await asyncio.wait_for(waiting.wait(), timeout=10)
        assert kafka.calls == 0
        started.set()
        await wait_until(lambda: _all_published(repository), timeout_s=10, interval_s=0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert kafka.calls == 1


async def test_old_published_rows_are_pruned(repository: Repository) -> None:
    old, recent = message(uuid4()), message(uuid4())
    await enqueue(repository, old, recent)
    relay = OutboxRelay(
        repository, FakeKafka(), ready=always_ready, retention=timedelta(days=7), interval_s=0.05
    )
    assert await relay.publish_pending() == 2
    async with repository.transaction() as conn:
        await conn.execute(
            "UPDATE connector.outbox SET published_at = now() - interval '8 days' "
            "WHERE event_id = $1",
            old.event_id,
        )
    task = asyncio.create_task(relay.run())
    try:
        await wait_until(
            lambda: _event_ids(repository, {recent.event_id}), timeout_s=10, interval_s=0.02
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _event_ids(repository: Repository, expected: set[UUID]) -> bool:
    return {r["event_id"] for r in await rows(repository)} == expected
