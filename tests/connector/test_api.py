"""The connector's HTTP API against real Kafka, PostgreSQL and the Cursor API sandbox."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
import respx

from koalr_connector.integrations import TEAM_PLAN_MESSAGE
from koalr_contracts import (
    AnyEvent,
    IntegrationConnected,
    IntegrationCredentialsRotated,
    IntegrationDisconnected,
    SyncJobRequested,
)
from koalr_runtime.sealing import Sealer
from koalr_sandbox.testing import SandboxClient
from tests.connector.conftest import (
    SEALING_KEYS,
    Stack,
    TopicTail,
    auth,
    connect_cursor,
    new_org,
    read_metric,
    wait_until,
)

pytestmark = pytest.mark.integration

PENDING_SYNC = {
    "state": "pending",
    "last_success_at": None,
    "data_through": None,
    "progress": None,
    "last_error": None,
}


def sealer() -> Sealer:
    return Sealer.from_config(SEALING_KEYS)


async def counts(stack: Stack) -> tuple[int, int]:
    db = await stack.db()
    try:
        integrations = await db.fetchval("SELECT count(*) FROM connector.integrations")
        outbox = await db.fetchval("SELECT count(*) FROM connector.outbox")
    finally:
        await db.close()
    return integrations, outbox


def error_of(body: dict[str, Any]) -> tuple[str, str]:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    return body["error"]["code"], body["error"]["message"]


# --- connect ------------------------------------------------------------------------------------


@pytest.mark.parametrize("plan", ["business", "enterprise"])
async def test_connect_stores_the_integration_and_emits_integration_connected(
    stack: Stack, sandbox: SandboxClient, integrations_tail: TopicTail, plan: str
) -> None:
    org = new_org()
    team = await sandbox.create_team(plan=plan)
    before = datetime.now(UTC)

    response = await connect_cursor(stack, org, team)

    assert response.status_code == 201, response.text
    body = response.json()
    integration_id = UUID(body["id"])
    created_at = datetime.fromisoformat(body.pop("created_at"))
    assert before - timedelta(seconds=5) <= created_at <= datetime.now(UTC)
    assert body == {
        "id": str(integration_id),
        "org_id": org,
        "provider": "cursor",
        "external_id": team.team_id,
        "plan": plan,
        "status": "active",
        "sync": PENDING_SYNC,
    }
    assert response.headers["location"] == f"/v1/orgs/{org}/integrations/{integration_id}"
    assert team.api_key not in response.text

    (record,) = await integrations_tail.wait_for(str(integration_id))
    assert record.headers["event_type"] == "IntegrationConnected"
    event = record.event()
    assert isinstance(event, IntegrationConnected)
    assert record.headers["correlation_id"] == str(event.correlation_id)
    assert event.org_id == org
    assert event.integration_id == integration_id
    assert (event.provider, event.external_id, event.plan) == ("cursor", team.team_id, plan)
    assert (event.status, event.status_reason, event.backfill_days) == ("active", None, 30)
    assert team.api_key not in record.value.decode()
    assert sealer().open(event.sealed_credential, context=str(integration_id)) == team.api_key

    fetched = await stack.http.get(
        f"/v1/orgs/{org}/integrations/{integration_id}", headers=auth(org)
    )
    assert fetched.status_code == 200
    assert fetched.json() == response.json()
    listed = await stack.http.get(f"/v1/orgs/{org}/integrations", headers=auth(org))
    assert listed.json() == {"integrations": [response.json()]}


async def test_a_team_plan_connects_degraded_with_insufficient_plan(
    stack: Stack, sandbox: SandboxClient, integrations_tail: TopicTail
) -> None:
    org = new_org()
    team = await sandbox.create_team(plan="team")

    response = await connect_cursor(stack, org, team)

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["plan"], body["status"]) == ("team", "degraded")
    assert body["sync"] == {
        **PENDING_SYNC,
        "last_error": {"code": "insufficient_plan", "message": TEAM_PLAN_MESSAGE},
    }
    assert "member list" in TEAM_PLAN_MESSAGE
    assert "Business" in TEAM_PLAN_MESSAGE
    (record,) = await integrations_tail.wait_for(body["id"])
    event = record.event()
    assert isinstance(event, IntegrationConnected)
    assert (event.plan, event.status, event.status_reason) == (
        "team",
        "degraded",
        "insufficient_plan",
    )


async def test_a_rejected_key_stores_nothing_and_emits_nothing(
    stack: Stack, sandbox: SandboxClient
) -> None:
    org = new_org()
    team = await sandbox.create_team(plan="business")
    before = await counts(stack)

    response = await connect_cursor(stack, org, team, api_key="crsr_" + "0" * 64)

    assert response.status_code == 422
    code, message = error_of(response.json())
    assert code == "invalid_api_key"
    assert "rejected this API key" in message
    assert "0" * 64 not in response.text
    assert await counts(stack) == before
    listed = await stack.http.get(f"/v1/orgs/{org}/integrations", headers=auth(org))
    assert listed.json() == {"integrations": []}


async def test_a_provider_outage_is_502_and_stores_nothing(
    stack: Stack, sandbox: SandboxClient
) -> None:
    org = new_org()
    team = await sandbox.create_team(plan="business", fault_rate_5xx=1.0)
    before = await counts(stack)

    response = await connect_cursor(stack, org, team)

    assert response.status_code == 502
    code, message = error_of(response.json())
    assert code == "provider_unavailable"
    assert "nothing was saved" in message.lower()
    assert await counts(stack) == before


async def test_a_business_key_connects_when_the_enterprise_probe_answers_404(
    stack: Stack, sandbox: SandboxClient
) -> None:
    org = new_org()
    team = await sandbox.create_team(plan="enterprise")
    with respx.mock(base_url=stack.settings.cursor_api_base_url) as cursor:
        probe = cursor.get("/analytics/team/dau").respond(404, json={"error": "Not Found"})
        cursor.route().pass_through()
        response = await connect_cursor(stack, org, team)

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["plan"], body["status"], body["sync"]) == ("business", "active", PENDING_SYNC)
    assert probe.call_count == 1


async def test_connecting_the_same_team_twice_is_409_naming_the_first(
    stack: Stack, sandbox: SandboxClient
) -> None:
    org = new_org()
    team = await sandbox.create_team(plan="business")
    first = await connect_cursor(stack, org, team)
    assert first.status_code == 201
    before = await counts(stack)

    again = await connect_cursor(stack, org, team)

    assert again.status_code == 409
    code, message = error_of(again.json())
    assert code == "already_connected"
    assert first.json()["id"] in message
    assert await counts(stack) == before
    other_org = new_org()
    elsewhere = await connect_cursor(stack, other_org, team)
    assert elsewhere.status_code == 201
    assert elsewhere.json()["id"] != first.json()["id"]


async def test_an_incomplete_github_copilot_body_is_an_invalid_request(stack: Stack) -> None:
    org = new_org()
    before = await counts(stack)
    incomplete = await stack.http.post(
        f"/v1/orgs/{org}/integrations",
        json={"provider": "github_copilot", "token": "ghp_x"},
        headers=auth(org),
    )
    assert incomplete.status_code == 422
    code, message = error_of(incomplete.json())
    assert code == "invalid_request"
    assert "github_org" in message
    assert "ghp_x" not in incomplete.text
    assert await counts(stack) == before


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({"provider": "cursor", "team_id": "t1"}, "api_key: Field required"),
        ({"provider": "cursor", "api_key": "crsr_secretvalue1"}, "team_id: Field required"),
        ({"provider": "cursor", "api_key": "", "team_id": "t1"}, "api_key"),
        ({"provider": "windsurf", "api_key": "crsr_secretvalue1", "team_id": "t1"}, "windsurf"),
        ({"api_key": "crsr_secretvalue1", "team_id": "t1"}, "provider"),
        (
            {"provider": "cursor", "api_key": "crsr_secretvalue1", "team_id": "t1", "x": 1},
            "Extra inputs are not permitted",
        ),
        ([], "body"),
    ],
)
async def test_invalid_connect_bodies_are_422_invalid_request(
    stack: Stack, body: Any, mentions: str
) -> None:
    org = new_org()
    before = await counts(stack)
    response = await stack.http.post(f"/v1/orgs/{org}/integrations", json=body, headers=auth(org))
    assert response.status_code == 422
    code, message = error_of(response.json())
    assert code == "invalid_request"
    assert message.startswith("The request is invalid: ")
    assert mentions in message
    assert "crsr_secretvalue1" not in response.text
    assert await counts(stack) == before


async def test_malformed_json_is_422_invalid_request(stack: Stack) -> None:
    org = new_org()
    response = await stack.http.post(
        f"/v1/orgs/{org}/integrations",
        content=b'{"provider": "cursor", "api_key": "crsr_secretvalue1"',
        headers={**auth(org), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert error_of(response.json())[0] == "invalid_request"
    assert "crsr_secretvalue1" not in response.text


async def test_unknown_or_malformed_ids_are_404(stack: Stack) -> None:
    org = new_org()
    for integration_id in ("7d2c8a2e-8f7e-4a3b-9d64-0c9b1b9f0a11", "not-a-uuid"):
        base = f"/v1/orgs/{org}/integrations/{integration_id}"
        calls = [
            await stack.http.get(base, headers=auth(org)),
            await stack.http.put(
                f"{base}/credentials", json={"api_key": "crsr_x"}, headers=auth(org)
            ),
            await stack.http.post(f"{base}/sync", json={}, headers=auth(org)),
            await stack.http.delete(base, headers=auth(org)),
        ]
        for response in calls:
            assert response.status_code == 404, response.text
            code, message = error_of(response.json())
            assert code == "not_found"
            assert integration_id in message


# --- rotate -------------------------------------------------------------------------------------


async def test_rotation_revalidates_the_new_key_and_emits_credentials_rotated(
    stack: Stack, sandbox: SandboxClient, integrations_tail: TopicTail
) -> None:
    org = new_org()
    team = await sandbox.create_team(plan="enterprise")
    connected = (await connect_cursor(stack, org, team)).json()
    url = f"/v1/orgs/{org}/integrations/{connected['id']}/credentials"
    rotated_team = await sandbox.rotate_key(team)

    stale = await stack.http.put(url, json={"api_key": team.api_key}, headers=auth(org))
    assert stale.status_code == 422
    assert error_of(stale.json())[0] == "invalid_api_key"

    response = await stack.http.put(url, json={"api_key": rotated_team.api_key}, headers=auth(org))

    assert response.status_code == 200, response.text
    assert response.json() == connected
    assert rotated_team.api_key not in response.text
    connect_record, rotate_record = await integrations_tail.wait_for(connected["id"], count=2)
    first, second = connect_record.event(), rotate_record.event()
    assert isinstance(first, IntegrationConnected)
    assert isinstance(second, IntegrationCredentialsRotated)
    assert rotate_record.headers["event_type"] == "IntegrationCredentialsRotated"
    assert second.correlation_id == first.correlation_id
    assert (second.org_id, second.provider, second.plan) == (org, "cursor", "enterprise")
    assert sealer().open(second.sealed_credential, context=connected["id"]) == rotated_team.api_key
    assert len(integrations_tail.matching(connected["id"])) == 2


async def test_integration_events_carry_the_integrations_next_sequence(
    stack: Stack, sandbox: SandboxClient, integrations_tail: TopicTail
) -> None:
    org = new_org()
    team = await sandbox.create_team(plan="business")
    connected = (await connect_cursor(stack, org, team)).json()
    url = f"/v1/orgs/{org}/integrations/{connected['id']}"
    other = (await connect_cursor(stack, new_org(), await sandbox.create_team())).json()

    rotations = await asyncio.gather(
        *(
            stack.http.put(f"{url}/credentials", json={"api_key": team.api_key}, headers=auth(org))
            for _ in range(3)
        )
    )
    assert [r.status_code for r in rotations] == [200, 200, 200]
    assert (await stack.http.delete(url, headers=auth(org))).status_code == 204

    records = await integrations_tail.wait_for(connected["id"], count=5)
    assert [sequenced(r.event()) for r in records] == [
        ("IntegrationConnected", 1),
        ("IntegrationCredentialsRotated", 2),
        ("IntegrationCredentialsRotated", 3),
        ("IntegrationCredentialsRotated", 4),
        ("IntegrationDisconnected", 5),
    ]
    (other_connected,) = await integrations_tail.wait_for(other["id"])
    assert sequenced(other_connected.event()) == ("IntegrationConnected", 1)


def sequenced(event: AnyEvent) -> tuple[str, int]:
    assert isinstance(
        event, IntegrationConnected | IntegrationCredentialsRotated | IntegrationDisconnected
    )
    return event.event_type, event.sequence


async def test_rotation_after_a_plan_upgrade_leaves_degraded(
    stack: Stack, sandbox: SandboxClient
) -> None:
    org = new_org()
    team = await sandbox.create_team(plan="team")
    connected = (await connect_cursor(stack, org, team)).json()
    assert connected["status"] == "degraded"
    await sandbox.configure(team, plan="business")

    response = await stack.http.put(
        f"/v1/orgs/{org}/integrations/{connected['id']}/credentials",
        json={"api_key": team.api_key},
        headers=auth(org),
    )

    assert response.status_code == 200
    assert (response.json()["plan"], response.json()["status"]) == ("business", "active")
    assert response.json()["sync"] == PENDING_SYNC


@pytest.mark.parametrize(
    "body", [{}, {"token": "ghp_abc"}, {"api_key": "crsr_a", "token": "ghp_b"}, {"key": "x"}]
)
async def test_rotation_bodies_are_validated(
    stack: Stack, sandbox: SandboxClient, body: dict[str, str]
) -> None:
    org = new_org()
    team = await sandbox.create_team(plan="business")
    connected = (await connect_cursor(stack, org, team)).json()
    response = await stack.http.put(
        f"/v1/orgs/{org}/integrations/{connected['id']}/credentials", json=body, headers=auth(org)
    )
    assert response.status_code == 422
    assert error_of(response.json())[0] == "invalid_request"


# --- resync -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "days"),
    [(None, 30), ({}, 30), ({"days": 7}, 7), ({"days": 90}, 90), ({"days": 86.0}, 86)],
)
async def test_resync_emits_a_manual_sync_job(
    stack: Stack,
    sandbox: SandboxClient,
    jobs_tail: TopicTail,
    body: dict[str, int] | None,
    days: int,
) -> None:
    org = new_org()
    team = await sandbox.create_team(plan="business")
    connected = (await connect_cursor(stack, org, team)).json()
    url = f"/v1/orgs/{org}/integrations/{connected['id']}/sync"

    if body is None:
        response = await stack.http.post(url, headers=auth(org))
    else:
        response = await stack.http.post(url, json=body, headers=auth(org))

    assert response.status_code == 202, response.text
    assert set(response.json()) == {"job_id"}
    (record,) = await jobs_tail.wait_for(connected["id"])
    event = record.event()
    assert isinstance(event, SyncJobRequested)
    assert record.headers["event_type"] == "SyncJobRequested"
    today = datetime.now(UTC).date()
    assert str(event.job_id) == response.json()["job_id"]
    assert (event.org_id, event.provider, event.reason) == (org, "cursor", "manual")
    assert (event.window_start, event.window_end) == (today - timedelta(days=days - 1), today)
    assert event.cursor is None
    assert event.days == days


@pytest.mark.parametrize(
    "body", [{"days": 0}, {"days": 91}, {"days": "7"}, {"days": 7.5}, {"days": True}, {"weeks": 1}]
)
async def test_resync_days_are_validated(
    stack: Stack, sandbox: SandboxClient, body: dict[str, Any]
) -> None:
    org = new_org()
    team = await sandbox.create_team(plan="business")
    connected = (await connect_cursor(stack, org, team)).json()
    before = await counts(stack)
    response = await stack.http.post(
        f"/v1/orgs/{org}/integrations/{connected['id']}/sync", json=body, headers=auth(org)
    )
    assert response.status_code == 422
    assert error_of(response.json())[0] == "invalid_request"
    assert await counts(stack) == before


# --- disconnect ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "purge"), [("", False), ("?purge=true", True)])
async def test_disconnect_emits_integration_disconnected_and_hides_the_integration(
    stack: Stack,
    sandbox: SandboxClient,
    integrations_tail: TopicTail,
    query: str,
    purge: bool,
) -> None:
    org = new_org()
    team = await sandbox.create_team(plan="business")
    connected = (await connect_cursor(stack, org, team)).json()
    url = f"/v1/orgs/{org}/integrations/{connected['id']}"

    response = await stack.http.delete(url + query, headers=auth(org))

    assert response.status_code == 204
    assert response.content == b""
    assert (await stack.http.get(url, headers=auth(org))).status_code == 404
    listed = await stack.http.get(f"/v1/orgs/{org}/integrations", headers=auth(org))
    assert listed.json() == {"integrations": []}
    assert (await stack.http.delete(url, headers=auth(org))).status_code == 404
    _, record = await integrations_tail.wait_for(connected["id"], count=2)
    event = record.event()
    assert isinstance(event, IntegrationDisconnected)
    assert (event.org_id, event.provider, event.purge) == (org, "cursor", purge)
    db = await stack.db()
    try:
        sealed = await db.fetchval(
            "SELECT sealed_credential FROM connector.integrations WHERE id = $1",
            UUID(connected["id"]),
        )
    finally:
        await db.close()
    assert sealed is None

    reconnected = await connect_cursor(stack, org, team)
    assert reconnected.status_code == 201
    assert reconnected.json()["id"] != connected["id"]


# --- service endpoints --------------------------------------------------------------------------


async def test_health_readiness_metrics_and_openapi(stack: Stack) -> None:
    assert (await stack.http.get("/healthz")).json() == {"status": "ok", "service": "connector"}
    ready = await stack.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "service": "connector"}
    metrics = (await stack.http.get("/metrics")).text
    assert "koalr_connector_connects_total" in metrics
    assert "koalr_connector_key_validations_total" in metrics
    assert "koalr_connector_outbox_published_total" in metrics
    spec = (await stack.http.get("/openapi.json")).json()
    paths = spec["paths"]
    assert set(paths) == {
        "/v1/orgs/{org_id}/integrations",
        "/v1/orgs/{org_id}/integrations/{integration_id}",
        "/v1/orgs/{org_id}/integrations/{integration_id}/credentials",
        "/v1/orgs/{org_id}/integrations/{integration_id}/sync",
        "/v1/orgs/{org_id}/audit-log",
    }
    assert set(paths["/v1/orgs/{org_id}/integrations"]) == {"get", "post"}
    assert set(paths["/v1/orgs/{org_id}/audit-log"]) == {"get"}
    assert set(paths["/v1/orgs/{org_id}/integrations/{integration_id}"]) == {"get", "delete"}


async def test_connects_validations_and_publishes_are_counted(
    stack: Stack, sandbox: SandboxClient, integrations_tail: TopicTail
) -> None:
    connects = "koalr_connector_connects_total"
    validations = "koalr_connector_key_validations_total"
    published = "koalr_connector_outbox_published_total"
    before = {
        "connected": await read_metric(stack, connects, provider="cursor", outcome="connected"),
        "invalid": await read_metric(stack, connects, provider="cursor", outcome="invalid_api_key"),
        "business": await read_metric(stack, validations, provider="cursor", result="business"),
        "rejected": await read_metric(
            stack, validations, provider="cursor", result="invalid_api_key"
        ),
        "published": await read_metric(stack, published, event_type="IntegrationConnected"),
    }
    org = new_org()
    team = await sandbox.create_team(plan="business")
    created = await connect_cursor(stack, org, team)
    other = await sandbox.create_team(plan="business")
    rejected = await connect_cursor(stack, org, other, api_key="crsr_" + "1" * 64)
    assert (created.status_code, rejected.status_code) == (201, 422)
    await integrations_tail.wait_for(created.json()["id"])
    await wait_until(
        lambda: _at_least(
            stack, published, before["published"] + 1, event_type="IntegrationConnected"
        )
    )

    assert await read_metric(stack, connects, provider="cursor", outcome="connected") == (
        before["connected"] + 1
    )
    assert await read_metric(stack, connects, provider="cursor", outcome="invalid_api_key") == (
        before["invalid"] + 1
    )
    assert await read_metric(stack, validations, provider="cursor", result="business") == (
        before["business"] + 1
    )
    assert await read_metric(stack, validations, provider="cursor", result="invalid_api_key") == (
        before["rejected"] + 1
    )
    assert await read_metric(stack, published, event_type="IntegrationConnected") == (
        before["published"] + 1
    )


async def _at_least(stack: Stack, name: str, value: float, **labels: str) -> bool:
    return await read_metric(stack, name, **labels) >= value
