"""From connect to dashboard numbers, with every service as its own process.

The sandbox freezes what is visible at the end of yesterday (``visible_until_ms``), so the numbers
the pipeline shows can be compared with the sandbox's ground truth exactly, to the cent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.e2e.client import Platform, final_day, today_utc, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(600)]


def _end_of_yesterday_ms() -> int:
    midnight = datetime.combine(today_utc(), datetime.min.time(), tzinfo=UTC)
    return int(midnight.timestamp() * 1000) - 1


def _new_team(platform: Platform, **spec: Any) -> dict[str, str]:
    return platform.create_team(
        **{"plan": "business", "days": 45, "visibility_delay_s": 0, **spec},
        visible_until_ms=_end_of_yesterday_ms(),
    )


def _differences(platform: Platform, team_id: str, entry: dict[str, Any]) -> list[str]:
    """Every way the admin summary differs from the sandbox's truth over the same range."""
    start = datetime.fromisoformat(entry["dau"][0]["date"]).date()
    truth = platform.truth(team_id, start, today_utc())
    days = {d["date"]: d for d in truth["days"]}
    problems = []
    if [d["date"] for d in entry["dau"]] != list(days):
        problems.append("the summary's days are not the range's days")
    problems += [
        f"dau {p}" for p in entry["dau"] if p["active_users"] != days[p["date"]]["active_users"]
    ]
    problems += [
        f"requests {p}" for p in entry["requests"] if p["requests"] != days[p["date"]]["requests"]
    ]
    problems += [
        f"spend {p} != {days[p['date']]['charged_cents']}"
        for p in entry["spend"]["daily"]
        if Decimal(p["cents"]) != Decimal(days[p["date"]]["charged_cents"])
    ]
    total = sum((Decimal(d["charged_cents"]) for d in truth["days"]), Decimal(0))
    if Decimal(entry["spend"]["total_cents"]) != total:
        problems.append(f"total spend {entry['spend']['total_cents']} != {total}")
    models = {m["model"]: m["requests"] for m in entry["models"]}
    if models != {m["model"]: m["requests"] for m in truth["models"] if m["requests"]}:
        problems.append(f"models {models} != {truth['models']}")
    cycle = entry["spend"].get("cycle") or {}
    if cycle.get("start") != truth["cycle"]["start"] or Decimal(
        str(cycle.get("total_cents"))
    ) != Decimal(truth["cycle"]["total_cents"]):
        problems.append(
            f"cycle {cycle} != {truth['cycle']['start']} {truth['cycle']['total_cents']}"
        )
    return problems


def _assert_matches_truth(platform: Platform, integration_id: str, team_id: str) -> Any:
    def probe() -> Any:
        entry = platform.provider_summary(integration_id)
        return entry if entry and not _differences(platform, team_id, entry) else None

    try:
        return wait_for(probe, timeout_s=60, what="the summary to equal the truth", interval_s=1)
    except AssertionError:
        entry = platform.provider_summary(integration_id)
        problems = _differences(platform, team_id, entry) if entry else ["no summary entry"]
        raise AssertionError("summary differs from the truth:\n" + "\n".join(problems)) from None


@pytest.fixture(scope="module")
def business(platform: Platform) -> dict[str, Any]:
    """A Business-plan team of 12, connected and backfilled."""
    team = _new_team(platform, members=12, seed=21)
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
    entry = _assert_matches_truth(platform, integration_id, team_id)
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


def _walk(value: Any) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((key, item))
            found.extend(_walk(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_walk(item))
    return found


def test_the_member_view_is_private(platform: Platform, business: dict[str, Any]) -> None:
    integration_id, team_id = business["integration"]["id"], business["team"]["team_id"]
    _assert_matches_truth(platform, integration_id, team_id)
    status, summary = platform.summary(platform.member)
    assert status == 200
    assert summary["viewer_role"] == "member"
    truth = platform.truth(team_id, today_utc() - timedelta(days=29), today_utc())
    secrets = {m["email"] for m in truth["members"]} | {m["name"] for m in truth["members"]}
    for key, value in _walk(summary):
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
    team = _new_team(platform, plan="team", members=6, seed=5)
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
    _assert_matches_truth(platform, integration_id, team["team_id"])


def test_killing_a_worker_and_metrics_mid_backfill_loses_nothing(
    platform: Platform, business: dict[str, Any]
) -> None:
    stack = platform.stack
    first, second = stack.syncers[0], stack.syncers[1]
    second.stop()
    try:
        team = _new_team(platform, members=30, seed=99)
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
        _assert_matches_truth(platform, integration_id, team["team_id"])
        _assert_matches_truth(platform, business["integration"]["id"], business["team"]["team_id"])
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
    }
    metrics_paths = platform.http.get(stack.metrics.base_url + "/openapi.json").json()["paths"]
    assert {
        "/v1/orgs/{org_id}/ai-analytics/summary",
        "/v1/orgs/{org_id}/ai-analytics/members",
        "/v1/orgs/{org_id}/ai-analytics/settings",
    } <= set(metrics_paths)
