"""Shared fixtures: a real Kafka broker and a real PostgreSQL, with per-test isolation.

Where the services come from, in order:
1. ``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL`` when set (``make test`` starts both and sets them);
2. testcontainers, when a Docker engine answers (a laptop with Docker);
3. otherwise the tests that need them **fail** with a sentence saying how to start them.
Nothing is ever skipped for lack of infrastructure.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, MutableMapping
from typing import Any

import asyncpg
import pytest
import stamina
import structlog
from stamina.instrumentation import RetryDetails, get_on_retry_hooks, set_on_retry_hooks

from koalr_devstack.databases import scratch_database
from koalr_runtime.db import wait_for_postgres
from koalr_runtime.kafka import wait_for_kafka

HOW_TO_START = (
    "run `make services-up` (or `deploy/local/infra.sh start`) and export the variables it "
    "prints, or run `make test`, which does both"
)


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:  # noqa: BLE001 - any failure means "no engine"
        return False
    return True


@pytest.fixture(scope="session")
def kafka_bootstrap_servers() -> Iterator[str]:
    """Bootstrap servers of a running Kafka broker (verified reachable)."""
    url = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if url:
        problem = None
        try:
            asyncio.run(wait_for_kafka(url, timeout_s=10))
        except ConnectionError as exc:
            problem = str(exc)
        if problem is not None:
            pytest.fail(f"{problem}. To fix: {HOW_TO_START}.", pytrace=False)
        yield url
        return
    if _docker_answers():
        from testcontainers.community.kafka import KafkaContainer

        container = KafkaContainer("confluentinc/cp-kafka:8.0.0").with_kraft()
        container.start()
        try:
            yield container.get_bootstrap_server()
        finally:
            container.stop()
        return
    pytest.fail(
        f"KAFKA_BOOTSTRAP_SERVERS is not set and no Docker engine answers; {HOW_TO_START}.",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """DSN of a running PostgreSQL whose role may create databases (verified reachable)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        problem = None
        try:
            asyncio.run(wait_for_postgres(url, timeout_s=10))
        except ConnectionError as exc:
            problem = str(exc)
        if problem is not None:
            pytest.fail(f"{problem}. To fix: {HOW_TO_START}.", pytrace=False)
        yield url
        return
    if _docker_answers():
        from testcontainers.community.postgres import PostgresContainer

        container = PostgresContainer("postgres:16-alpine", driver=None)
        container.start()
        try:
            yield container.get_connection_url()
        finally:
            container.stop()
        return
    pytest.fail(
        f"DATABASE_URL is not set and no Docker engine answers; {HOW_TO_START}.", pytrace=False
    )


@pytest.fixture
async def fresh_database_url(database_url: str) -> AsyncIterator[str]:
    """A brand-new, empty database for one test, dropped afterwards."""
    async with scratch_database(database_url) as dsn:
        yield dsn


@pytest.fixture
async def db(fresh_database_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    conn = await asyncpg.connect(fresh_database_url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
def topic_namespace() -> str:
    """A unique topic prefix (and consumer-group prefix) for one test."""
    return f"t{uuid.uuid4().hex[:12]}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With KOALR_FORBID_SKIPS=1 (set by `make test`), any skipped test fails the run."""
    if os.environ.get("KOALR_FORBID_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped and exitstatus == 0 and reporter is not None:
        reporter.write_line(
            f"{len(skipped)} test(s) skipped; skips are not allowed in this run "
            "(KOALR_FORBID_SKIPS=1)",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def retry_waits() -> Iterator[list[float]]:
    """The seconds ``stamina`` waited before each retry, in order."""
    assert stamina.is_active()
    waits: list[float] = []
    previous = get_on_retry_hooks()

    def record(details: RetryDetails) -> None:
        waits.append(details.wait_for)

    set_on_retry_hooks([record])
    yield waits
    set_on_retry_hooks(previous)


@pytest.fixture
def captured_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[MutableMapping[str, Any]]]:
    """The structlog events our modules log during the test.

    ``structlog.testing.capture_logs`` alone misses a module logger that an app configured
    earlier in the session (``cache_logger_on_first_use``) has already cached, so each of our
    modules' ``log`` is swapped for a fresh one for the duration of the test.
    """
    with structlog.testing.capture_logs() as logs:
        for name, module in list(sys.modules.items()):
            if name.startswith("koalr_") and hasattr(module, "log"):
                monkeypatch.setattr(module, "log", structlog.stdlib.get_logger(name))
        yield logs
