"""Rotating the sealing key: stored credentials are re-sealed in batches, announced and audited.

Against real PostgreSQL: credentials are sealed with an old key (through the connect path, checked
by the Cursor API sandbox), a new key is put first, ``koalr-connector reseal`` runs as the operator
would run it, and the old key is then removed: every credential still opens.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from koalr_connector.copilot import CopilotValidator
from koalr_connector.integrations import Integration
from koalr_connector.repository import Repository
from koalr_connector.service import ConnectorService
from koalr_contracts import IntegrationCredentialsRotated, decode_event, topics
from koalr_providers.cursor import CursorPlanDetector
from koalr_providers.github import GitHubDetector
from koalr_runtime.auth import Principal
from koalr_runtime.db import create_pool
from koalr_runtime.migrations import migrate
from koalr_runtime.sealing import Sealer, generate_key_entry
from koalr_sandbox.testing import SandboxClient, SandboxTeam

pytestmark = pytest.mark.integration

MIGRATIONS = (
    Path(__file__).resolve().parents[2] / "services/connector/src/koalr_connector/migrations"
)
ORG = "org_reseal"
ADMIN = Principal(sub="admin-1", org_id=ORG, role="admin", email="admin@example.com")
OLD, NEW = generate_key_entry("old"), generate_key_entry("new")


@pytest.fixture
async def repository(fresh_database_url: str) -> AsyncIterator[Repository]:
    await migrate(fresh_database_url, "connector", MIGRATIONS)
    pool = await create_pool(fresh_database_url, max_size=3)
    try:
        yield Repository(pool, "connector")
    finally:
        await pool.close()


def service(
    repository: Repository,
    http: httpx.AsyncClient,
    keys: str,
    on_outbox_write: Callable[[], None] = lambda: None,
) -> ConnectorService:
    return ConnectorService(
        repository,
        CursorPlanDetector(http, timeout_s=5),
        CopilotValidator(GitHubDetector(http, timeout_s=5)),
        Sealer.from_config(keys),
        on_outbox_write=on_outbox_write,
    )


async def connect_teams(
    repository: Repository, http: httpx.AsyncClient, sandbox: SandboxClient, keys: str, n: int
) -> list[tuple[Integration, SandboxTeam]]:
    connector = service(repository, http, keys)
    connected = []
    for _ in range(n):
        team = await sandbox.create_team(plan="business")
        integration = await connector.connect_cursor(ORG, team.api_key, team.team_id, actor=ADMIN)
        connected.append((integration, team))
    return connected


async def stored_credentials(repository: Repository) -> dict[UUID, str]:
    async with repository.transaction() as conn:
        rows = await conn.fetch("SELECT id, sealed_credential FROM connector.integrations")
    return {row["id"]: row["sealed_credential"] for row in rows}


async def run_reseal(database_url: str, keys: str, batch_size: int) -> tuple[int, str, str]:
    """``python -m koalr_connector reseal`` as a separate process, as an operator runs it.

    Returns the exit status, the summary (the last line) and everything else it wrote (logs)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "KOALR_SEALING_KEYS": keys,
        "KOALR_JWT_SECRET": "reseal-tests-secret-with-at-least-32-bytes",
        "CONNECTOR_RESEAL_BATCH_SIZE": str(batch_size),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "DEBUG",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "koalr_connector",
        "reseal",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    logs_and_summary = out.decode().strip().splitlines()
    assert logs_and_summary, err.decode()
    return process.returncode, logs_and_summary[-1], "\n".join(logs_and_summary[:-1]) + err.decode()


async def test_the_command_reseals_every_credential_in_batches_and_the_old_key_can_go(
    repository: Repository, fresh_database_url: str, sandbox_url: str, sandbox: SandboxClient
) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=5) as http:
        old = await connect_teams(repository, http, sandbox, OLD, 5)
        current = await connect_teams(repository, http, sandbox, f"{NEW},{OLD}", 1)
    secrets = {integration.id: team.api_key for integration, team in old + current}
    before = await stored_credentials(repository)
    assert sorted(v.split(".")[1] for v in before.values()) == ["new"] + ["old"] * 5

    status, out, err = await run_reseal(fresh_database_url, f"{NEW},{OLD}", batch_size=2)
    assert status == 0, err
    assert "integration.reseal_batch" in err  # the logs were captured, at DEBUG
    assert out == (
        "connector: re-sealed 5 credential(s) with key new; 1 already current; "
        "0 could not be opened (6 scanned in 3 batch(es))"
    )
    for secret in secrets.values():
        assert secret not in out + err

    # Run again: nothing left to do, nothing changes.
    after = await stored_credentials(repository)
    status, out, _ = await run_reseal(fresh_database_url, f"{NEW},{OLD}", batch_size=2)
    assert status == 0
    assert "re-sealed 0 credential(s) with key new; 6 already current" in out
    assert await stored_credentials(repository) == after

    # The old key is removed: every credential opens with the new key alone.
    only_new = Sealer.from_config(NEW)
    for integration_id, sealed in after.items():
        assert sealed.startswith("v1.new.")
        assert only_new.open(sealed, context=str(integration_id)) == secrets[integration_id]
    assert after[current[0][0].id] == before[current[0][0].id]  # already current: untouched

    # Each re-sealed credential was announced (so the syncer gets it) and audited.
    async with repository.transaction() as conn:
        rows = await conn.fetch(
            "SELECT payload FROM connector.outbox WHERE event_type = 'IntegrationCredentialsRotated'"
        )
    events = [decode_event(topics.INTEGRATIONS, row["payload"]) for row in rows]
    announced = {
        e.integration_id: e.sealed_credential
        for e in events
        if isinstance(e, IntegrationCredentialsRotated)
    }
    assert announced == {integration.id: after[integration.id] for integration, _ in old}
    page = await repository.audit_page(ORG, limit=50, before=None)
    reseals = [e for e in page.entries if e.action == "integration.reseal"]
    assert {e.target for e in reseals} == {str(integration.id) for integration, _ in old}
    assert {(e.actor.sub, e.actor.email) for e in reseals} == {
        ("operator:koalr-connector reseal", None)
    }
    assert {e.details["previous_sealing_key_id"] for e in reseals} == {"old"}


async def test_an_interrupted_run_is_finished_by_the_next(
    repository: Repository, sandbox_url: str, sandbox: SandboxClient
) -> None:
    class CrashError(Exception):
        pass

    def crash_after_the_first_batch() -> None:
        raise CrashError

    async with httpx.AsyncClient(base_url=sandbox_url, timeout=5) as http:
        connected = await connect_teams(repository, http, sandbox, OLD, 4)
        interrupted = service(
            repository, http, f"{NEW},{OLD}", on_outbox_write=crash_after_the_first_batch
        )
        with pytest.raises(CrashError):
            await interrupted.reseal_credentials(batch_size=3)
        halfway = await stored_credentials(repository)
        assert sorted(v.split(".")[1] for v in halfway.values()) == ["new"] * 3 + ["old"]

        report = await service(repository, http, f"{NEW},{OLD}").reseal_credentials(batch_size=3)
    assert (report.resealed, report.current, report.failed, report.batches) == (1, 3, [], 2)
    only_new = Sealer.from_config(NEW)
    finished = await stored_credentials(repository)
    for integration, team in connected:
        assert only_new.open(finished[integration.id], context=str(integration.id)) == (
            team.api_key
        )


async def test_a_credential_that_does_not_open_is_counted_and_the_rest_proceed(
    repository: Repository, fresh_database_url: str, sandbox_url: str, sandbox: SandboxClient
) -> None:
    lost = generate_key_entry("lost")
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=5) as http:
        (orphan, _), *_ = await connect_teams(repository, http, sandbox, lost, 1)
        fine = await connect_teams(repository, http, sandbox, OLD, 2)

    status, out, err = await run_reseal(fresh_database_url, f"{NEW},{OLD}", batch_size=10)
    assert status == 1
    assert (
        "re-sealed 2 credential(s) with key new; 0 already current; 1 could not be opened "
        f"(3 scanned in 1 batch(es)); not opened: {orphan.id}"
    ) in out
    assert "integration.reseal_failed" in err
    stored = await stored_credentials(repository)
    assert stored[orphan.id].startswith("v1.lost.")  # left as it was, for the operator to fix
    for integration, team in fine:
        assert Sealer.from_config(NEW).open(stored[integration.id], context=str(integration.id))
        assert team.api_key not in out + err
