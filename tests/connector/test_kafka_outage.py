"""No event is lost when Kafka is down: the connection is stored and published once it is back."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from uuid import UUID

import pytest
from aiokafka import AIOKafkaProducer

from koalr_contracts import IntegrationConnected, SyncStatusChanged, encode_event, topics
from koalr_devstack.processes import free_port
from koalr_runtime.sealing import Sealer
from koalr_sandbox.testing import SandboxClient
from tests.connector.conftest import (
    SEALING_KEYS,
    Stack,
    TopicTail,
    auth,
    connect_cursor,
    make_settings,
    new_org,
    running_app,
    wait_until,
)

pytestmark = pytest.mark.integration

INFRA = Path(__file__).resolve().parents[2] / "deploy/local/infra.sh"


async def outbox_row(stack: Stack, integration_id: str) -> dict[str, object]:
    db = await stack.db()
    try:
        row = await db.fetchrow(
            "SELECT event_type, published_at, attempts FROM connector.outbox "
            "WHERE integration_id = $1",
            UUID(integration_id),
        )
    finally:
        await db.close()
    assert row is not None
    return dict(row)


async def test_the_api_works_while_kafka_is_unreachable_at_start(
    fresh_database_url: str, topic_namespace: str, sandbox_url: str, sandbox: SandboxClient
) -> None:
    settings = make_settings(
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
        database_url=fresh_database_url,
        topic_namespace=topic_namespace,
        cursor_api_base_url=sandbox_url,
    )
    team = await sandbox.create_team(plan="business")
    org = new_org()
    async with running_app(settings) as stack:
        response = await connect_cursor(stack, org, team)
        assert response.status_code == 201, response.text
        row = await outbox_row(stack, response.json()["id"])
        assert (row["event_type"], row["published_at"]) == ("IntegrationConnected", None)
        assert not stack.kafka.is_started
        assert (await stack.http.get("/healthz")).status_code == 200
        ready = await stack.http.get("/readyz")
        assert ready.status_code == 503
        assert set(ready.json()["failed"]) == {"kafka"}


async def _infra(command: str, env: dict[str, str]) -> None:
    """``infra.sh <command> kafka``. A start is retried: the script can take the just-forked
    launcher, whose command line is not ``kafka.Kafka`` yet, for an exited broker (the broker
    keeps starting, and ``start`` is idempotent)."""
    attempts = 3 if command == "start" else 1
    for attempt in range(1, attempts + 1):
        process = await asyncio.create_subprocess_exec(
            str(INFRA),
            command,
            "kafka",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=150)
        if process.returncode == 0:
            return
        assert attempt < attempts, f"infra.sh {command} kafka failed:\n{stderr.decode()}"


async def _published(stack: Stack, integration_id: str) -> bool:
    return (await outbox_row(stack, integration_id))["published_at"] is not None


@pytest.mark.timeout(300)
async def test_events_written_while_the_broker_is_down_are_published_once_it_is_back(
    *,
    fresh_database_url: str,
    topic_namespace: str,
    sandbox_url: str,
    sandbox: SandboxClient,
    tmp_path: Path,
) -> None:
    """A dedicated broker (never the shared one): down at start-up, then up, down and up again."""
    port, controller_port = free_port(), free_port()
    env = {
        **os.environ,
        "KOALR_INFRA_DIR": str(tmp_path / "infra"),
        "KOALR_KAFKA_PORT": str(port),
        "KOALR_KAFKA_CONTROLLER_PORT": str(controller_port),
    }
    bootstrap = f"127.0.0.1:{port}"
    settings = make_settings(
        kafka_bootstrap_servers=bootstrap,
        database_url=fresh_database_url,
        topic_namespace=topic_namespace,
        cursor_api_base_url=sandbox_url,
    )
    first_team = await sandbox.create_team(plan="enterprise")
    second_team = await sandbox.create_team(plan="team")
    org = new_org()
    try:
        async with running_app(settings) as stack:
            # 1. No broker yet: the API answers, the event waits in the outbox.
            first = await connect_cursor(stack, org, first_team)
            assert first.status_code == 201, first.text
            first_id = first.json()["id"]
            assert not await _published(stack, first_id)
            assert not stack.kafka.is_started

            await _infra("start", env)
            await wait_until(lambda: _published(stack, first_id), timeout_s=120)
            assert stack.kafka.is_started

            # The sync-status subscriber, started late, consumes too.
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
            await producer.start()
            try:
                status = SyncStatusChanged(
                    org_id=org, integration_id=UUID(first_id), provider="cursor", state="idle"
                )
                await producer.send_and_wait(
                    settings.topic(topics.SYNC_STATUS),
                    encode_event(status),
                    key=status.kafka_key(),
                )
            finally:
                await producer.stop()

            async def idle() -> bool:
                response = await stack.http.get(
                    f"/v1/orgs/{org}/integrations/{first_id}", headers=auth(org)
                )
                return bool(response.json()["sync"]["state"] == "idle")

            await wait_until(idle, timeout_s=60)

            # 2. The broker goes away while the service runs, and comes back.
            await _infra("stop", env)
            second = await connect_cursor(stack, org, second_team)
            assert second.status_code == 201, second.text
            second_id = second.json()["id"]
            assert not await _published(stack, second_id)

            await _infra("start", env)
            await wait_until(lambda: _published(stack, second_id), timeout_s=120)

            async with TopicTail(bootstrap, settings.topic(topics.INTEGRATIONS)) as tail:
                await tail.wait_for(second_id, timeout_s=60)
                await tail.drain()
                (first_record,) = tail.matching(first_id)
                (second_record,) = tail.matching(second_id)
    finally:
        await _infra("stop", env)

    sealer = Sealer.from_config(SEALING_KEYS)
    for record, integration_id, team, plan, status_ in (
        (first_record, first_id, first_team, "enterprise", "active"),
        (second_record, second_id, second_team, "team", "degraded"),
    ):
        event = record.event()
        assert isinstance(event, IntegrationConnected)
        assert record.headers["event_type"] == "IntegrationConnected"
        assert record.headers["correlation_id"] == str(event.correlation_id)
        assert (event.org_id, str(event.integration_id)) == (org, integration_id)
        assert (event.external_id, event.plan, event.status) == (team.team_id, plan, status_)
        assert sealer.open(event.sealed_credential, context=integration_id) == team.api_key
