"""Connecting GitHub Copilot: validation with GitHub (the sandbox, over HTTP) before anything is
stored, the plan, the degraded policy-off case, every refusal, duplicates and token rotation."""

from __future__ import annotations

import time
from uuid import UUID

import pytest

from koalr_connector.integrations import METRICS_DISABLED_MESSAGE
from koalr_contracts import IntegrationConnected, IntegrationCredentialsRotated
from koalr_sandbox.testing import GithubSandboxClient, SandboxOrg
from tests.connector.conftest import Stack, TopicTail, auth, connect_copilot, new_org
from tests.connector.test_api import PENDING_SYNC, counts, error_of, sealer

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("plan", ["business", "enterprise"])
async def test_copilot_connects_with_the_billing_plan_and_emits_integration_connected(
    stack: Stack, github: GithubSandboxClient, integrations_tail: TopicTail, plan: str
) -> None:
    org = new_org()
    github_org = await github.create_org(plan=plan)

    response = await connect_copilot(stack, org, github_org)

    assert response.status_code == 201, response.text
    body = response.json()
    integration_id = UUID(body.pop("id"))
    body.pop("created_at")
    assert body == {
        "org_id": org,
        "provider": "github_copilot",
        "external_id": github_org.org,
        "plan": plan,
        "status": "active",
        "sync": PENDING_SYNC,
    }
    assert response.headers["location"] == f"/v1/orgs/{org}/integrations/{integration_id}"
    assert github_org.token not in response.text
    (record,) = await integrations_tail.wait_for(str(integration_id))
    event = record.event()
    assert isinstance(event, IntegrationConnected)
    assert (event.provider, event.external_id, event.plan) == (
        "github_copilot",
        github_org.org,
        plan,
    )
    assert (event.status, event.status_reason, event.backfill_days) == ("active", None, 30)
    assert github_org.token not in record.value.decode()
    assert sealer().open(event.sealed_credential, context=str(integration_id)) == github_org.token


async def test_policy_off_connects_degraded_with_metrics_disabled(
    stack: Stack, github: GithubSandboxClient, integrations_tail: TopicTail
) -> None:
    org = new_org()
    github_org = await github.create_org(plan="enterprise", metrics_policy=False)

    response = await connect_copilot(stack, org, github_org)

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["plan"], body["status"]) == ("enterprise", "degraded")
    assert body["sync"] == {
        **PENDING_SYNC,
        "last_error": {"code": "metrics_disabled", "message": METRICS_DISABLED_MESSAGE},
    }
    assert '"Copilot usage metrics" policy' in METRICS_DISABLED_MESSAGE
    assert "organisation owner" in METRICS_DISABLED_MESSAGE
    (record,) = await integrations_tail.wait_for(body["id"])
    event = record.event()
    assert isinstance(event, IntegrationConnected)
    assert (event.status, event.status_reason) == ("degraded", "metrics_disabled")


async def test_githubs_refusals_become_422_and_nothing_is_stored(
    stack: Stack, github: GithubSandboxClient
) -> None:
    org = new_org()
    github_org = await github.create_org()
    before = await counts(stack)

    revoked = await connect_copilot(stack, org, github_org, token="ghp_" + "0" * 36)
    assert revoked.status_code == 422
    code, message = error_of(revoked.json())
    assert code == "invalid_api_key"
    assert message.endswith("Nothing was saved.")

    metrics_only = await github.token_with(github_org, "copilot_metrics")
    refused = await connect_copilot(stack, org, github_org, token=metrics_only)
    assert refused.status_code == 422
    code, message = error_of(refused.json())
    assert code == "insufficient_permissions"
    for needed in ("owner", '"GitHub Copilot Business"', "manage_billing:copilot", "read:org"):
        assert needed in message
    assert metrics_only not in refused.text

    unknown = await connect_copilot(stack, org, github_org, login="no-such-org-anywhere")
    assert unknown.status_code == 422
    code, message = error_of(unknown.json())
    assert code == "github_org_not_found"
    assert "'no-such-org-anywhere'" in message

    malformed = await connect_copilot(stack, org, github_org, login="acme/../orgs")
    assert malformed.status_code == 422
    assert error_of(malformed.json())[0] == "invalid_request"
    assert await counts(stack) == before


async def test_githubs_outage_is_502_provider_unavailable(
    stack: Stack, github: GithubSandboxClient
) -> None:
    org = new_org()
    github_org = await github.create_org(fault_rate_5xx=1.0)
    before = await counts(stack)

    response = await connect_copilot(stack, org, github_org)

    assert response.status_code == 502
    code, message = error_of(response.json())
    assert code == "provider_unavailable"
    assert "GitHub" in message
    assert await counts(stack) == before


async def test_a_stalled_github_is_502_within_the_time_budget(
    stack: Stack, github: GithubSandboxClient
) -> None:
    org = new_org()
    github_org = await github.create_org(fault_rate_stall=1.0, stall_s=30)
    before = await counts(stack)
    started = time.monotonic()

    response = await connect_copilot(stack, org, github_org)

    assert time.monotonic() - started < stack.settings.provider_timeout_s + 2
    assert response.status_code == 502
    code, message = error_of(response.json())
    assert code == "provider_unavailable"
    assert f"did not answer within {stack.settings.provider_timeout_s:g} s" in message
    assert await counts(stack) == before


async def test_the_same_github_org_twice_in_one_org_is_409(
    stack: Stack, github: GithubSandboxClient
) -> None:
    org = new_org()
    github_org = await github.create_org()
    first = await connect_copilot(stack, org, github_org)
    assert first.status_code == 201
    before = await counts(stack)

    again = await connect_copilot(stack, org, github_org, login=github_org.org.upper())

    assert again.status_code == 409
    code, message = error_of(again.json())
    assert code == "already_connected"
    assert first.json()["id"] in message
    assert await counts(stack) == before
    elsewhere = await connect_copilot(stack, new_org(), github_org)
    assert elsewhere.status_code == 201


async def test_rotating_a_copilot_token_revalidates_it(
    stack: Stack, github: GithubSandboxClient, integrations_tail: TopicTail
) -> None:
    org = new_org()
    github_org = await github.create_org(plan="business")
    connected = (await connect_copilot(stack, org, github_org)).json()
    url = f"/v1/orgs/{org}/integrations/{connected['id']}/credentials"
    rotated = await github.rotate_token(github_org)

    stale = await stack.http.put(url, json={"token": github_org.token}, headers=auth(org))
    assert stale.status_code == 422
    assert error_of(stale.json())[0] == "invalid_api_key"
    wrong_kind = await stack.http.put(url, json={"api_key": rotated.token}, headers=auth(org))
    assert wrong_kind.status_code == 422
    assert error_of(wrong_kind.json())[0] == "invalid_request"

    await github.configure(rotated, metrics_policy=False)
    response = await stack.http.put(url, json={"token": rotated.token}, headers=auth(org))

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["plan"], body["status"]) == ("business", "degraded")
    assert body["sync"]["last_error"] == {
        "code": "metrics_disabled",
        "message": METRICS_DISABLED_MESSAGE,
    }
    assert rotated.token not in response.text
    records = await integrations_tail.wait_for(connected["id"], count=2)
    event = records[-1].event()
    assert isinstance(event, IntegrationCredentialsRotated)
    assert event.provider == "github_copilot"
    assert sealer().open(event.sealed_credential, context=connected["id"]) == rotated.token

    await github.configure(SandboxOrg(rotated.org, rotated.token), metrics_policy=True)
    again = await stack.http.put(url, json={"token": rotated.token}, headers=auth(org))
    assert (again.json()["status"], again.json()["sync"]["last_error"]) == ("active", None)
