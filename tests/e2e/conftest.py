"""End-to-end fixtures: every service as its own process on the real Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from koalr_devstack.databases import create_database, drop_database
from koalr_devstack.stack import Stack, StackConfig
from tests.e2e.client import Platform


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap_servers: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    name = f"e2e_{uuid.uuid4().hex[:12]}"
    e2e_database = asyncio.run(create_database(database_url, name))
    log_dir: Path = tmp_path_factory.mktemp("e2e-logs")
    config = StackConfig(
        kafka_bootstrap_servers=kafka_bootstrap_servers,
        database_url=e2e_database,
        log_dir=log_dir,
        topic_namespace=f"e2e{uuid.uuid4().hex[:10]}",
        syncer_workers=2,
        extra_env={"LOG_LEVEL": "INFO", "SYNCER_SCHEDULER_POLL_S": "1"},
    )
    with Stack(config) as running:
        yield running
    asyncio.run(drop_database(database_url, name))


@pytest.fixture(scope="module")
def platform(stack: Stack) -> Iterator[Platform]:
    with Platform(stack, org_id=f"org-{uuid.uuid4().hex[:8]}") as client:
        yield client
