"""Fixtures for the operator command line: run ``koalr`` against the real Kafka and PostgreSQL.

The command runs in a worker thread (it owns its event loop, as on a terminal) while the test's
loop keeps serving whatever the command talks to.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner

from koalr_cli.main import cli
from tests.connector.conftest import (  # noqa: F401 - fixtures shared with the connector's tests
    jobs_tail,
    sandbox,
    sandbox_url,
    stack,
)


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Koalr:
    """``koalr`` with a fixed environment (Kafka, PostgreSQL, namespace, URLs)."""

    env: dict[str, str]

    async def __call__(self, *args: str) -> Outcome:
        runner = CliRunner()
        result = await asyncio.to_thread(
            runner.invoke, cli, list(args), env=self.env, catch_exceptions=False
        )
        return Outcome(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def koalr(kafka_bootstrap_servers: str, database_url: str, topic_namespace: str) -> Koalr:
    return Koalr(
        {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
            "DATABASE_URL": database_url,
            "KOALR_TOPIC_NAMESPACE": topic_namespace,
        }
    )
