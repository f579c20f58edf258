"""Rotating the sealing key: stored credentials are re-sealed and re-announced."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from koalr_connector.copilot import CopilotValidator
from koalr_connector.repository import Repository
from koalr_connector.service import ConnectorService
from koalr_contracts import IntegrationCredentialsRotated, decode_event, topics
from koalr_providers.cursor import CursorPlanDetector
from koalr_providers.github import GitHubDetector
from koalr_runtime.db import create_pool
from koalr_runtime.migrations import migrate
from koalr_runtime.sealing import Sealer, generate_key_entry
from koalr_sandbox.testing import SandboxClient

pytestmark = pytest.mark.integration

MIGRATIONS = (
    Path(__file__).resolve().parents[2] / "services/connector/src/koalr_connector/migrations"
)


@pytest.fixture
async def repository(fresh_database_url: str) -> AsyncIterator[Repository]:
    await migrate(fresh_database_url, "connector", MIGRATIONS)
    pool = await create_pool(fresh_database_url, max_size=3)
    try:
        yield Repository(pool, "connector")
    finally:
        await pool.close()


async def test_credentials_sealed_with_a_retired_key_are_resealed_and_announced(
    repository: Repository, sandbox_url: str, sandbox: SandboxClient
) -> None:
    old_key, new_key = generate_key_entry("old"), generate_key_entry("new")
    team = await sandbox.create_team(plan="business")
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=5) as http:
        cursor = CursorPlanDetector(http, timeout_s=5)
        copilot = CopilotValidator(GitHubDetector(http, timeout_s=5))
        before = ConnectorService(repository, cursor, copilot, Sealer.from_config(old_key))
        integration = await before.connect_cursor("org_reseal", team.api_key, team.team_id)
        assert integration.sealed_credential is not None
        assert integration.sealed_credential.startswith("v1.old.")
        wakes: list[bool] = []
        after = ConnectorService(
            repository,
            cursor,
            copilot,
            Sealer.from_config(f"{new_key},{old_key}"),
            on_outbox_write=lambda: wakes.append(True),
        )

        assert await after.reseal_credentials() == 1
        assert await after.reseal_credentials() == 0

    assert wakes == [True]
    async with repository.transaction() as conn:
        sealed = await conn.fetchval(
            "SELECT sealed_credential FROM connector.integrations WHERE id = $1", integration.id
        )
        last = await conn.fetchrow(
            "SELECT topic, event_type, payload FROM connector.outbox ORDER BY id DESC LIMIT 1"
        )
    assert sealed.startswith("v1.new.")
    only_new = Sealer.from_config(new_key)
    assert only_new.open(sealed, context=str(integration.id)) == team.api_key
    assert last is not None
    assert (last["topic"], last["event_type"]) == (
        topics.INTEGRATIONS,
        "IntegrationCredentialsRotated",
    )
    event = decode_event(topics.INTEGRATIONS, last["payload"])
    assert isinstance(event, IntegrationCredentialsRotated)
    assert event.sealed_credential == sealed
    assert (event.correlation_id, event.plan) == (integration.correlation_id, "business")
