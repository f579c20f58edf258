"""Sync state in GET responses comes from consuming koalr.sync-status.v1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from aiokafka import AIOKafkaProducer

from koalr_contracts import DeadLetter, SyncProgress, SyncStatusChanged, encode_event, topics
from koalr_sandbox.testing import SandboxClient
from tests.connector.conftest import (
    Stack,
    TopicTail,
    auth,
    connect_cursor,
    new_org,
    read_metric,
    wait_until,
)

pytestmark = pytest.mark.integration

EVENTS = "koalr_connector_sync_status_events_total"


@pytest.fixture(scope="module")
async def producer(stack: Stack) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=stack.settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def publish(stack: Stack, producer: AIOKafkaProducer, payload: bytes, key: str) -> None:
    await producer.send_and_wait(
        stack.settings.topic(topics.SYNC_STATUS), payload, key=key.encode()
    )


def status_event(integration: dict[str, Any], **fields: Any) -> SyncStatusChanged:
    values: dict[str, Any] = {
        "org_id": integration["org_id"],
        "integration_id": UUID(integration["id"]),
        "provider": "cursor",
        "state": "syncing",
    }
    values.update(fields)
    return SyncStatusChanged(**values)


async def send(stack: Stack, producer: AIOKafkaProducer, event: SyncStatusChanged) -> None:
    await publish(stack, producer, encode_event(event), str(event.integration_id))


async def connected(stack: Stack, sandbox: SandboxClient, plan: str = "business") -> dict[str, Any]:
    org = new_org()
    team = await sandbox.create_team(plan=plan)
    response = await connect_cursor(stack, org, team)
    assert response.status_code == 201
    body: dict[str, Any] = response.json()
    return body


async def fetch(stack: Stack, integration: dict[str, Any]) -> dict[str, Any]:
    org = integration["org_id"]
    response = await stack.http.get(
        f"/v1/orgs/{org}/integrations/{integration['id']}", headers=auth(org)
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def wait_for_state(
    stack: Stack, integration: dict[str, Any], **expected: Any
) -> dict[str, Any]:
    async def matches() -> dict[str, Any] | None:
        body = await fetch(stack, integration)
        sync = body["sync"]
        ok = all(sync.get(k) == v or body.get(k) == v for k, v in expected.items())
        return body if ok else None

    found: dict[str, Any] = await wait_until(matches, timeout_s=30)
    return found


async def test_progress_then_success_are_shown(
    stack: Stack, sandbox: SandboxClient, producer: AIOKafkaProducer
) -> None:
    integration = await connected(stack, sandbox)
    now = datetime.now(UTC)
    await send(
        stack,
        producer,
        status_event(
            integration,
            state="syncing",
            progress=SyncProgress(done=12, total=30, unit="days"),
            occurred_at=now,
        ),
    )
    body = await wait_for_state(stack, integration, state="syncing")
    assert body["status"] == "active"
    assert body["sync"] == {
        "state": "syncing",
        "last_success_at": None,
        "data_through": None,
        "progress": {"done": 12, "total": 30, "unit": "days"},
        "last_error": None,
    }

    success_at = now + timedelta(seconds=5)
    await send(
        stack,
        producer,
        status_event(
            integration,
            state="idle",
            data_through=date(2026, 1, 30),
            last_success_at=success_at,
            occurred_at=success_at,
        ),
    )
    body = await wait_for_state(stack, integration, state="idle")
    assert body["status"] == "active"
    assert body["sync"] == {
        "state": "idle",
        "last_success_at": success_at.isoformat().replace("+00:00", "Z"),
        "data_through": "2026-01-30",
        "progress": None,
        "last_error": None,
    }


async def test_an_invalid_key_fails_the_integration_and_a_rotation_restores_it(
    stack: Stack, sandbox: SandboxClient, producer: AIOKafkaProducer
) -> None:
    org = new_org()
    team = await sandbox.create_team(plan="business")
    integration = (await connect_cursor(stack, org, team)).json()
    message = "Cursor answered 401: the key was revoked; rotate it."
    await send(
        stack,
        producer,
        status_event(integration, state="error", reason_code="invalid_api_key", message=message),
    )
    body = await wait_for_state(stack, integration, status="failed")
    assert body["sync"]["state"] == "error"
    assert body["sync"]["last_error"] == {"code": "invalid_api_key", "message": message}

    rotated = await sandbox.rotate_key(team)
    response = await stack.http.put(
        f"/v1/orgs/{org}/integrations/{integration['id']}/credentials",
        json={"api_key": rotated.api_key},
        headers=auth(org),
    )
    assert response.status_code == 200
    assert response.json()["status"] == "active"
    assert response.json()["sync"]["state"] == "pending"
    assert response.json()["sync"]["last_error"] is None


async def test_insufficient_plan_degrades_and_transient_errors_keep_the_status(
    stack: Stack, sandbox: SandboxClient, producer: AIOKafkaProducer
) -> None:
    integration = await connected(stack, sandbox)
    now = datetime.now(UTC)
    await send(
        stack,
        producer,
        status_event(integration, state="error", reason_code="rate_limited", occurred_at=now),
    )
    body = await wait_for_state(stack, integration, state="error")
    assert body["status"] == "active"
    assert body["sync"]["last_error"]["code"] == "rate_limited"
    assert "rate limiting" in body["sync"]["last_error"]["message"]

    await send(
        stack,
        producer,
        status_event(
            integration,
            state="error",
            reason_code="insufficient_plan",
            occurred_at=now + timedelta(seconds=1),
        ),
    )
    body = await wait_for_state(stack, integration, status="degraded")
    assert body["sync"]["last_error"]["code"] == "insufficient_plan"


async def test_a_team_plan_stays_degraded_when_its_sync_is_idle(
    stack: Stack, sandbox: SandboxClient, producer: AIOKafkaProducer
) -> None:
    integration = await connected(stack, sandbox, plan="team")
    await send(stack, producer, status_event(integration, state="idle"))
    body = await wait_for_state(stack, integration, state="idle")
    assert body["status"] == "degraded"
    assert body["sync"]["last_error"] is None


async def test_status_events_are_ordered_by_sequence_not_by_clock(
    stack: Stack, sandbox: SandboxClient, producer: AIOKafkaProducer
) -> None:
    integration = await connected(stack, sandbox)
    now = datetime.now(UTC)
    await send(
        stack, producer, status_event(integration, state="idle", sequence=2, occurred_at=now)
    )
    await wait_for_state(stack, integration, state="idle")
    stale_before = await read_metric(stack, EVENTS, outcome="stale")

    # An overtaken event (lower sequence) and a redelivery (same sequence), both with a newer
    # clock than the applied one: ignored.
    for sequence in (1, 2):
        await send(
            stack,
            producer,
            status_event(
                integration,
                state="error",
                reason_code="invalid_api_key",
                sequence=sequence,
                occurred_at=now + timedelta(minutes=1),
            ),
        )
    await wait_until(
        lambda: _grew(stack, EVENTS, stale_before, outcome="stale", by=2), timeout_s=30
    )
    body = await fetch(stack, integration)
    assert (body["status"], body["sync"]["state"], body["sync"]["last_error"]) == (
        "active",
        "idle",
        None,
    )

    # The next sequence from a producer whose clock is an hour behind: applied.
    await send(
        stack,
        producer,
        status_event(
            integration,
            state="error",
            reason_code="rate_limited",
            sequence=3,
            occurred_at=now - timedelta(hours=1),
        ),
    )
    body = await wait_for_state(stack, integration, state="error")
    assert body["status"] == "active"
    assert body["sync"]["last_error"]["code"] == "rate_limited"


async def test_unknown_foreign_and_disconnected_integrations_are_ignored(
    stack: Stack, sandbox: SandboxClient, producer: AIOKafkaProducer
) -> None:
    integration = await connected(stack, sandbox)
    gone = await connected(stack, sandbox)
    org = gone["org_id"]
    deleted = await stack.http.delete(
        f"/v1/orgs/{org}/integrations/{gone['id']}", headers=auth(org)
    )
    assert deleted.status_code == 204
    unknown_before = await read_metric(stack, EVENTS, outcome="unknown")

    await send(stack, producer, status_event({"org_id": "org_x", "id": str(uuid4())}))
    await send(stack, producer, status_event({**integration, "org_id": new_org()}, state="idle"))
    await send(stack, producer, status_event(gone, state="idle"))

    await wait_until(
        lambda: _grew(stack, EVENTS, unknown_before, outcome="unknown", by=3), timeout_s=30
    )
    assert (await fetch(stack, integration))["sync"]["state"] == "pending"
    db = await stack.db()
    try:
        state = await db.fetchval(
            "SELECT sync_state FROM connector.integrations WHERE id = $1",
            UUID(gone["id"]),
        )
    finally:
        await db.close()
    assert state == "pending"


async def test_undecodable_messages_go_to_the_dead_letter_topic_and_the_consumer_moves_on(
    stack: Stack, sandbox: SandboxClient, producer: AIOKafkaProducer
) -> None:
    integration = await connected(stack, sandbox)
    key = integration["id"]
    dead_letters = stack.settings.topic(topics.DEAD_LETTERS)
    async with TopicTail(stack.settings.kafka_bootstrap_servers, dead_letters) as tail:
        await publish(stack, producer, b"this is not json", key)
        invalid = encode_event(status_event(integration)).replace(b'"syncing"', b'"sleeping"')
        await publish(stack, producer, invalid, key)
        await send(stack, producer, status_event(integration, state="idle"))

        first, second = await tail.wait_for(key, count=2)
        await wait_for_state(stack, integration, state="idle")

    letters = [DeadLetter.model_validate_json(r.value) for r in (first, second)]
    for letter in letters:
        assert letter.source_topic == stack.settings.topic(topics.SYNC_STATUS)
        assert letter.consumer_group == stack.settings.group("connector-sync-status")
        assert letter.key == key
        assert letter.error_type == "EventDecodeError"
    assert letters[0].payload == "this is not json"
    assert "Invalid JSON" in letters[0].reason
    assert letters[1].payload == invalid.decode()
    assert "state" in letters[1].reason
    assert letters[0].source_partition == letters[1].source_partition
    assert letters[1].source_offset == letters[0].source_offset + 1


async def _grew(stack: Stack, name: str, before: float, *, by: int = 1, **labels: str) -> bool:
    return await read_metric(stack, name, **labels) >= before + by
