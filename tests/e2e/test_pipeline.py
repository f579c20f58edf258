"""From connect to dashboard numbers, with every service as its own process.

The sandbox freezes what is visible at the end of yesterday (``visible_until_ms``), so the numbers
the pipeline shows can be compared with the sandbox's ground truth exactly, to the cent.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.e2e.checks import assert_matches, cursor_differences, new_team, walk
from tests.e2e.client import Platform, final_day, today_utc, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def business(platform: Platform) -> dict[str, Any]:
    """A Business-plan team of 12, connected and backfilled."""
    team = new_team(platform, members=12, seed=21)
    response = platform.connect(team)
    assert response.status_code == 201, response.text
    integration = response.json()
    assert (integration["plan"], integration["status"]) == ("business", "active")
    assert integration["external_id"] == team["team_id"]
    assert "api_key" not in response.text
    assert team["api_key"] not in response.text
    platform.wait_synced(integration["id"])
    return {"team": team, "integration": integration}


def test_connect_then_the_summary_equals_the_truth_to_the_cent(
    platform: Platform, business: dict[str, Any]
) -> None:
    integration_id, team_id = business["integration"]["id"], business["team"]["team_id"]
    entry = assert_matches(platform, integration_id, team_id, cursor_differences)
    assert len(entry["dau"]) == 30
    assert sum(m["requests"] for m in entry["models"]) == sum(
        p["requests"] for p in entry["requests"]
    )
    assert entry["freshness"]["data_through"] == final_day().isoformat()

    start = today_utc() - timedelta(days=29)
    truth = platform.truth(team_id, start, today_utc())
    status, body = platform.members(platform.admin)
    assert status == 200
    got = {m["email"]: m for m in body["members"]}
    expected = {m["email"]: m for m in truth["members"]}
    assert set(got) == set(expected), "every member of the period, idle ones included"
    assert any(m["active_days"] == 0 for m in expected.values()), "the team should have idle seats"
    for email, member in expected.items():
        assert got[email]["name"] == member["name"]
        assert got[email]["active_days"] == member["active_days"], email
        assert got[email]["requests"] == member["requests"], email
        assert Decimal(got[email]["spend_cents"]) == Decimal(member["charged_cents"]), email
        assert got[email]["top_model"] == member["top_model"], email


def test_the_member_view_is_private(platform: Platform, business: dict[str, Any]) -> None:
    integration_id, team_id = business["integration"]["id"], business["team"]["team_id"]
    assert_matches(platform, integration_id, team_id, cursor_differences)
    status, summary = platform.summary(platform.member)
    assert status == 200
    assert summary["viewer_role"] == "member"
    truth = platform.truth(team_id, today_utc() - timedelta(days=29), today_utc())
    secrets = {m["email"] for m in truth["members"]} | {m["name"] for m in truth["members"]}
    for key, value in walk(summary):
        assert key not in {"email", "name", "spend", "spend_cents", "cents", "total_cents"}, key
        assert not (isinstance(value, str) and (value in secrets or "@" in value)), value

    entry = next(p for p in summary["providers"] if p["integration_id"] == integration_id)
    active = {d["date"]: d["active_users"] for d in truth["days"]}
    for point in entry["dau"]:
        if active[point["date"]] < 5:
            assert point == {"date": point["date"], "active_users": None, "suppressed": True}
        else:
            assert point["active_users"] == active[point["date"]]
            assert point["suppressed"] is False
    status, body = platform.members(platform.member)
    assert status == 403
    assert body["error"]["code"] == "admin_only"


def test_a_team_plan_connects_degraded_with_its_reason(platform: Platform) -> None:
    team = new_team(platform, plan="team", members=6, seed=5)
    response = platform.connect(team)
    assert response.status_code == 201, response.text
    integration = response.json()
    assert (integration["plan"], integration["status"]) == ("team", "degraded")
    assert integration["sync"]["last_error"]["code"] == "insufficient_plan"

    def synced_members_only() -> dict[str, Any] | None:
        current = platform.integration(integration["id"])
        error = current["sync"]["last_error"] or {}
        done = current["sync"]["state"] == "error" and error.get("code") == "insufficient_plan"
        return current if done else None

    current = wait_for(synced_members_only, timeout_s=120, what="the team plan's first sync")
    assert current["status"] == "degraded"
    assert "plan" in current["sync"]["last_error"]["message"].lower()
    entry = platform.provider_summary(integration["id"])
    assert entry is None or sum(p["requests"] for p in entry["requests"]) == 0


def test_a_key_rotated_at_the_provider_fails_then_recovers(
    platform: Platform, business: dict[str, Any]
) -> None:
    integration_id, team = business["integration"]["id"], business["team"]
    new_key = platform.rotate_team_key(team["team_id"])
    assert platform.resync(integration_id, days=2).status_code == 202

    def failed() -> dict[str, Any] | None:
        current = platform.integration(integration_id)
        error = current["sync"]["last_error"] or {}
        return (
            current
            if current["status"] == "failed" and error.get("code") == "invalid_api_key"
            else None
        )

    wait_for(failed, timeout_s=120, what="the integration to fail with invalid_api_key")
    response = platform.rotate(integration_id, "crsr_" + "0" * 64)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_api_key"

    response = platform.rotate(integration_id, new_key)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "active"
    assert new_key not in response.text
    assert platform.resync(integration_id, days=3).status_code == 202
    platform.wait_synced(integration_id)
    assert_matches(platform, integration_id, team["team_id"], cursor_differences)


def test_killing_a_worker_and_metrics_mid_backfill_loses_nothing(
    platform: Platform, business: dict[str, Any]
) -> None:
    stack = platform.stack
    first, second = stack.syncers[0], stack.syncers[1]
    second.stop()
    try:
        team = new_team(platform, members=30, seed=99)
        response = platform.connect(team)
        assert response.status_code == 201, response.text
        integration_id = response.json()["id"]

        def some_progress() -> dict[str, Any] | None:
            sync = platform.integration(integration_id)["sync"]
            progress = sync.get("progress") or {}
            started = sync["state"] == "syncing" and (progress.get("done") or 0) >= 1
            return sync if started else None

        sync = wait_for(some_progress, timeout_s=120, what="the backfill to make progress")
        assert sync["progress"]["done"] < sync["progress"]["total"], "killed too late to matter"
        first.kill()
        stack.metrics.kill()
        second.start()
        stack.metrics.start()
        second.wait_ready()
        stack.metrics.wait_ready()
        platform.wait_synced(integration_id, timeout_s=300)
        assert_matches(platform, integration_id, team["team_id"], cursor_differences)
        assert_matches(
            platform, business["integration"]["id"], business["team"]["team_id"], cursor_differences
        )
    finally:
        for syncer in (first, second):
            if not syncer.running:
                syncer.start()
                syncer.wait_ready()


def test_every_service_serves_health_readiness_metrics_and_openapi(platform: Platform) -> None:
    stack = platform.stack
    for process in [stack.connector, *stack.syncers, stack.metrics]:
        for path in ("/healthz", "/readyz"):
            response = platform.http.get(process.base_url + path)
            assert response.status_code == 200, (process.name, path, response.text)
        metrics = platform.http.get(process.base_url + "/metrics")
        assert metrics.status_code == 200
        assert "koalr_http_requests_total" in metrics.text, process.name
        spec = platform.http.get(process.base_url + "/openapi.json")
        assert spec.status_code == 200
        assert spec.json()["openapi"].startswith("3."), process.name
    connector_paths = platform.http.get(stack.connector.base_url + "/openapi.json").json()["paths"]
    assert set(connector_paths) == {
        "/v1/orgs/{org_id}/integrations",
        "/v1/orgs/{org_id}/integrations/{integration_id}",
        "/v1/orgs/{org_id}/integrations/{integration_id}/credentials",
        "/v1/orgs/{org_id}/integrations/{integration_id}/sync",
        "/v1/orgs/{org_id}/audit-log",
    }
    metrics_paths = platform.http.get(stack.metrics.base_url + "/openapi.json").json()["paths"]
    assert {
        "/v1/orgs/{org_id}/ai-analytics/summary",
        "/v1/orgs/{org_id}/ai-analytics/members",
        "/v1/orgs/{org_id}/ai-analytics/settings",
    } <= set(metrics_paths)
