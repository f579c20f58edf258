"""``koalr integrations``, ``resync`` and ``status`` against a connector serving real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import uvicorn

from koalr_contracts import SyncJobRequested
from koalr_devstack.processes import free_port
from koalr_sandbox.testing import SandboxClient
from tests.cli.conftest import Koalr
from tests.connector.conftest import (
    JWT_SECRET,
    Stack,
    TopicTail,
    auth,
    connect_cursor,
    new_org,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def connector_url(stack: Stack) -> AsyncIterator[str]:
    """The module's connector app on a real port (its lifespan already runs in ``stack``)."""
    port = free_port()
    config = uvicorn.Config(
        stack.app, host="127.0.0.1", port=port, lifespan="off", log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started, timeout_s=30)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.fixture
def operator(koalr: Koalr, connector_url: str, stack: Stack) -> Koalr:
    koalr.env.update(
        {
            "KOALR_CONNECTOR_URL": connector_url,
            "KOALR_JWT_SECRET": JWT_SECRET,
            "KOALR_TOPIC_NAMESPACE": stack.settings.topic_namespace,
        }
    )
    return koalr


async def test_list_and_show_are_what_the_connector_answers(
    operator: Koalr, stack: Stack, sandbox: SandboxClient
) -> None:
    org = new_org()
    team = await sandbox.create_team(plan="business")
    connected = (await connect_cursor(stack, org, team)).json()
    api = (await stack.http.get(f"/v1/orgs/{org}/integrations", headers=auth(org))).json()

    listed = await operator("--json", "integrations", "list", "--org", org)
    assert listed.exit_code == 0, listed.stderr
    assert listed.json() == api

    table = await operator("integrations", "list", "--org", org)
    assert table.exit_code == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split() == [
        "ID", "PROVIDER", "EXTERNAL_ID", "PLAN", "STATUS", "SYNC_STATE", "DATA_THROUGH",
    ]  # fmt: skip
    assert row.split()[:5] == [connected["id"], "cursor", team.team_id, "business", "active"]

    shown = await operator("--json", "integrations", "show", "--org", org, connected["id"])
    assert shown.exit_code == 0, shown.stderr
    assert shown.json() == api["integrations"][0]


async def test_resync_asks_the_connector_for_a_manual_job(
    operator: Koalr, stack: Stack, sandbox: SandboxClient, jobs_tail: TopicTail
) -> None:
    org = new_org()
    team = await sandbox.create_team(plan="business")
    connected = (await connect_cursor(stack, org, team)).json()

    out = await operator("--json", "resync", "--org", org, "--days", "7", connected["id"])

    assert out.exit_code == 0, out.stderr
    (record,) = await jobs_tail.wait_for(connected["id"])
    event = record.event()
    assert isinstance(event, SyncJobRequested)
    assert out.json() == {"job_id": str(event.job_id)}
    today = datetime.now(UTC).date()
    assert (event.reason, event.days, event.window_start) == (
        "manual",
        7,
        today - timedelta(days=6),
    )


async def test_connector_errors_keep_their_code_and_exit_1(operator: Koalr) -> None:
    org = new_org()
    missing = await operator(
        "integrations", "show", "--org", org, "0b8f6c1e-2d0e-4f59-9a36-2f1f6c1c0a11"
    )
    assert missing.exit_code == 1
    assert missing.stderr.startswith("error[not_found]: ")

    operator.env["KOALR_JWT_SECRET"] = "another-secret-that-is-at-least-32-bytes"
    forged = await operator("--json", "integrations", "list", "--org", org)
    assert forged.exit_code == 1
    assert forged.json()["error"]["code"] == "invalid_token"


async def test_without_the_jwt_secret_it_is_a_usage_error(operator: Koalr) -> None:
    operator.env["KOALR_JWT_SECRET"] = ""

    out = await operator("integrations", "list", "--org", "acme")

    assert out.exit_code == 2
    assert out.stderr.startswith("error[missing_jwt_secret]: Set KOALR_JWT_SECRET")


async def test_status_reports_each_part_and_fails_when_one_is_down(
    operator: Koalr, connector_url: str, kafka_bootstrap_servers: str, database_url: str
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    operator.env.update({"KOALR_SYNCER_URLS": down, "KOALR_METRICS_URL": connector_url})

    out = await operator("--json", "status")

    assert out.exit_code == 1
    body = out.json()
    assert body["ok"] is False
    assert [(c["name"], c["target"], c["state"]) for c in body["checks"]] == [
        ("connector", connector_url, "ok"),
        ("syncer", down, "down"),
        ("metrics", connector_url, "ok"),
        ("kafka", kafka_bootstrap_servers, "ok"),
        ("postgres", database_url.rpartition("@")[2], "ok"),
    ]
