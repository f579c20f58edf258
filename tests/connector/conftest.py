"""Fixtures for the connector tests: settings, a running app on real Kafka, PostgreSQL and the
Cursor API sandbox, JWTs, and a reader that tails a topic."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from koalr_connector.app import create_app
from koalr_connector.kafka_link import BrokerSupervisor
from koalr_connector.settings import ConnectorSettings
from koalr_contracts import AnyEvent, decode_event
from koalr_devstack.databases import scratch_database
from koalr_runtime.sealing import generate_key_entry
from koalr_sandbox.testing import (
    GithubSandboxClient,
    SandboxClient,
    SandboxOrg,
    SandboxTeam,
    run_sandbox,
)

JWT_SECRET = "connector-tests-secret-with-at-least-32-bytes"
SEALING_KEYS = generate_key_entry("k1")

#: Small, quiet sandbox teams: rate limits are switched on only by the tests about them.
TEAM_DEFAULTS: dict[str, Any] = {
    "members": 4,
    "days": 3,
    "seed": 11,
    "rate_limits_enabled": False,
}


def token(
    org_id: str,
    *,
    role: str = "admin",
    secret: str = JWT_SECRET,
    expires_in_s: int = 300,
    **claims: Any,
) -> str:
    body: dict[str, Any] = {
        "sub": "user-1",
        "org_id": org_id,
        "role": role,
        "exp": int(time.time()) + expires_in_s,
    }
    body.update(claims)
    return jwt.encode(body, secret, algorithm="HS256")


def auth(org_id: str, **kwargs: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(org_id, **kwargs)}"}


def new_org() -> str:
    return f"org_{uuid.uuid4().hex[:10]}"


def make_settings(
    *,
    kafka_bootstrap_servers: str,
    database_url: str,
    topic_namespace: str,
    cursor_api_base_url: str,
    **overrides: Any,
) -> ConnectorSettings:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": kafka_bootstrap_servers,
        "database_url": database_url,
        "topic_namespace": topic_namespace,
        "topic_partitions": 2,
        "cursor_api_base_url": cursor_api_base_url,
        "github_api_base_url": cursor_api_base_url,  # the sandbox serves both
        "jwt_secret": JWT_SECRET,
        "sealing_keys": SEALING_KEYS,
        "jwt_leeway_s": 0,
        "provider_timeout_s": 5.0,
        "outbox_relay_interval_s": 0.2,
        "outbox_retry_initial_s": 0.2,
        "outbox_retry_max_s": 1.0,
        "kafka_start_retry_max_s": 1.0,
    }
    values.update(overrides)
    return ConnectorSettings(**values)


@dataclass
class Stack:
    """A running connector app and a client for its HTTP API."""

    app: FastAPI
    http: httpx.AsyncClient
    settings: ConnectorSettings

    @property
    def kafka(self) -> BrokerSupervisor:
        supervisor: BrokerSupervisor = self.app.state.kafka
        return supervisor

    async def db(self) -> asyncpg.Connection[Any]:
        return await asyncpg.connect(self.settings.database_url)


@asynccontextmanager
async def running_app(settings: ConnectorSettings) -> AsyncIterator[Stack]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://connector", timeout=30
        ) as http:
            yield Stack(app, http, settings)


async def wait_until(
    condition: Callable[[], Any], *, timeout_s: float = 30.0, interval_s: float = 0.05
) -> Any:
    """Poll ``condition`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(interval_s)


@dataclass
class Received:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: dict[str, str]
    value: bytes

    def event(self) -> AnyEvent:
        return decode_event(self.topic, self.value)


@dataclass
class TopicTail:
    """Every message of a topic from its beginning, collected in the background."""

    bootstrap_servers: str
    topic: str
    records: list[Received] = field(default_factory=list)

    async def __aenter__(self) -> TopicTail:
        self._consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            metadata_max_age_ms=500,
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._pump())
        return self

    async def _pump(self) -> None:
        async for record in self._consumer:
            self.records.append(
                Received(
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    key=record.key,
                    headers={k: v.decode() for k, v in record.headers},
                    value=record.value,
                )
            )

    async def __aexit__(self, *_: object) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._consumer.stop()

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Wait until every message written so far has been read."""
        partitions = self._consumer.assignment()
        ends = await self._consumer.end_offsets(list(partitions))

        async def caught_up() -> bool:
            for tp, end in ends.items():
                if await self._position(tp) < end:
                    return False
            return True

        await wait_until(caught_up, timeout_s=timeout_s)

    async def _position(self, tp: Any) -> int:
        position: int = await self._consumer.position(tp)
        return position

    def matching(self, key: str) -> list[Received]:
        return [r for r in self.records if r.key == key.encode()]

    async def wait_for(self, key: str, count: int = 1, timeout_s: float = 30.0) -> list[Received]:
        await wait_until(lambda: len(self.matching(key)) >= count, timeout_s=timeout_s)
        return self.matching(key)


# --- infrastructure owned by a module ---------------------------------------------------------


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    with run_sandbox() as url:
        yield url


@pytest.fixture
async def sandbox(sandbox_url: str) -> AsyncIterator[SandboxClient]:
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=30) as http:
        yield SandboxClient(http, defaults=TEAM_DEFAULTS)


#: Small, quiet sandbox GitHub organisations.
GITHUB_ORG_DEFAULTS: dict[str, Any] = {
    "seats": 6,
    "days": 5,
    "seed": 5,
    "rate_limits_enabled": False,
}


@pytest.fixture
async def github(sandbox_url: str) -> AsyncIterator[GithubSandboxClient]:
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=30) as http:
        yield GithubSandboxClient(http, defaults=GITHUB_ORG_DEFAULTS)


@pytest.fixture(scope="module")
async def stack(
    kafka_bootstrap_servers: str, database_url: str, sandbox_url: str
) -> AsyncIterator[Stack]:
    """One running connector per test module, in its own database and topic namespace.

    Tests isolate themselves by using their own organisation ids and sandbox teams.
    """
    async with scratch_database(database_url) as dsn:
        settings = make_settings(
            kafka_bootstrap_servers=kafka_bootstrap_servers,
            database_url=dsn,
            topic_namespace=f"t{uuid.uuid4().hex[:12]}",
            cursor_api_base_url=sandbox_url,
        )
        async with running_app(settings) as running:
            await wait_until(lambda: running.kafka.is_started, timeout_s=60)
            yield running


async def connect_cursor(
    stack: Stack, org_id: str, team: SandboxTeam, *, api_key: str | None = None
) -> httpx.Response:
    return await stack.http.post(
        f"/v1/orgs/{org_id}/integrations",
        json={
            "provider": "cursor",
            "api_key": team.api_key if api_key is None else api_key,
            "team_id": team.team_id,
        },
        headers=auth(org_id),
    )


@pytest.fixture(scope="module")
async def integrations_tail(stack: Stack) -> AsyncIterator[TopicTail]:
    from koalr_contracts import topics

    async with TopicTail(
        stack.settings.kafka_bootstrap_servers, stack.settings.topic(topics.INTEGRATIONS)
    ) as tail:
        yield tail


@pytest.fixture(scope="module")
async def jobs_tail(stack: Stack) -> AsyncIterator[TopicTail]:
    from koalr_contracts import topics

    async with TopicTail(
        stack.settings.kafka_bootstrap_servers, stack.settings.topic(topics.SYNC_JOBS)
    ) as tail:
        yield tail


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text, 0 when absent."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


async def read_metric(stack: Stack, name: str, **labels: str) -> float:
    return metric_value((await stack.http.get("/metrics")).text, name, **labels)


async def connect_copilot(
    stack: Stack,
    org_id: str,
    github_org: SandboxOrg,
    *,
    token: str | None = None,
    login: str | None = None,
) -> httpx.Response:
    return await stack.http.post(
        f"/v1/orgs/{org_id}/integrations",
        json={
            "provider": "github_copilot",
            "token": github_org.token if token is None else token,
            "github_org": github_org.org if login is None else login,
        },
        headers=auth(org_id),
    )
