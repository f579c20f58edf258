"""The sandbox's own routes under /_sandbox."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI

from koalr_sandbox.clock import ManualClock
from koalr_sandbox.testing import SandboxClient

DEFAULT_CONFIG = {
    "plan": "business",
    "rate_limits": {"default": 20, "usage_events": 60, "analytics": 100},
    "rate_limits_enabled": True,
    "rate_window_s": 60.0,
    "retry_after_ratio": 0.5,
    "latency_ms": 0,
    "fault_rate_5xx": 0.0,
    "fault_rate_stall": 0.0,
    "stall_s": 30.0,
    "legacy_shapes": False,
    "visibility_delay_s": 3600,
    "visible_until_ms": None,
}


async def test_create_with_defaults(sandbox: SandboxClient) -> None:
    response = await sandbox.http.post("/_sandbox/teams")
    assert response.status_code == 201
    created = response.json()
    assert set(created) == {"team_id", "api_key"}
    assert created["team_id"].isdigit()
    assert re.fullmatch(r"crsr_[0-9a-f]{64}", created["api_key"])
    described = (await sandbox.http.get(f"/_sandbox/teams/{created['team_id']}")).json()
    assert described["members"] == 50
    assert described["days"] == 60
    assert described["history_start"] == "2026-01-17"
    assert described["config"] == DEFAULT_CONFIG
    members = await sandbox.http.get("/teams/members", auth=(created["api_key"], ""))
    assert len(members.json()["teamMembers"]) == 50


async def test_team_ids_and_keys_are_distinct(sandbox: SandboxClient) -> None:
    teams = [await sandbox.create_team() for _ in range(5)]
    assert len({t.team_id for t in teams}) == 5
    assert len({t.api_key for t in teams}) == 5


async def test_patch_returns_the_full_config(sandbox: SandboxClient) -> None:
    team = await sandbox.create_team(plan="business", rate_limits_enabled=True)
    config = await sandbox.configure(
        team, plan="team", rate_limits={"usage_events": 5}, latency_ms=10, legacy_shapes=True
    )
    assert config == DEFAULT_CONFIG | {
        "plan": "team",
        "rate_limits": {"default": 20, "usage_events": 5, "analytics": 100},
        "latency_ms": 10,
        "legacy_shapes": True,
    }
    assert await sandbox.configure(team) == config


@pytest.mark.parametrize(
    "body",
    [
        {"plan": "pro"},
        {"fault_rate_5xx": 1.5},
        {"rate_limits": {"default": 0}},
        {"rate_limits": {"burst": 3}},
        {"latency_ms": -1},
        {"colour": "blue"},
    ],
)
async def test_patch_rejects_invalid_config(sandbox: SandboxClient, body: object) -> None:
    team = await sandbox.create_team()
    response = await sandbox.http.patch(f"/_sandbox/teams/{team.team_id}", json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "Unprocessable Entity"


@pytest.mark.parametrize(
    "body", [{"members": 0}, {"members": 5001}, {"days": 366}, {"seed": -1}, {"plan": "free"}]
)
async def test_create_rejects_invalid_spec(sandbox: SandboxClient, body: object) -> None:
    response = await sandbox.http.post("/_sandbox/teams", json=body)
    assert response.status_code == 422
    assert set(response.json()) == {"error", "message"}


async def test_rotate_key(sandbox: SandboxClient) -> None:
    team = await sandbox.create_team()
    rotated = await sandbox.rotate_key(team)
    assert rotated.api_key != team.api_key
    assert re.fullmatch(r"crsr_[0-9a-f]{64}", rotated.api_key)
    old = await sandbox.cursor(team, "GET", "/teams/members")
    assert old.status_code == 401
    assert old.json() == {"error": "Unauthorized", "message": "Invalid API key"}
    assert (await sandbox.cursor(rotated, "GET", "/teams/members")).status_code == 200
    log = await sandbox.request_log(team)
    assert [entry["status"] for entry in log] == [401, 200]  # the revoked key's call is logged


async def test_unknown_team_is_404(sandbox: SandboxClient) -> None:
    for method, path in [
        ("GET", "/_sandbox/teams/1"),
        ("PATCH", "/_sandbox/teams/1"),
        ("DELETE", "/_sandbox/teams/1"),
        ("POST", "/_sandbox/teams/1/rotate-key"),
        ("GET", "/_sandbox/teams/1/truth"),
        ("GET", "/_sandbox/teams/1/requests"),
    ]:
        response = await sandbox.http.request(method, path, json={} if method == "PATCH" else None)
        assert response.status_code == 404, path
        assert response.json() == {"error": "Not Found", "message": "Team 1 does not exist"}


async def test_delete_team(sandbox: SandboxClient) -> None:
    team = await sandbox.create_team()
    response = await sandbox.http.delete(f"/_sandbox/teams/{team.team_id}")
    assert response.status_code == 204
    assert (await sandbox.cursor(team, "GET", "/teams/members")).status_code == 401
    assert (await sandbox.http.get(f"/_sandbox/teams/{team.team_id}")).status_code == 404


async def test_truth_validation_and_defaults(sandbox: SandboxClient) -> None:
    team = await sandbox.create_team()
    url = f"/_sandbox/teams/{team.team_id}/truth"
    default = (await sandbox.http.get(url)).json()
    assert (default["start"], default["end"]) == ("2026-02-17", "2026-03-18")
    assert len(default["days"]) == 30
    assert default["currency"] == "USD"
    assert default["as_of"] == "2026-03-18T15:00:00.000Z"
    for params in (
        {"start": "2026-03-10", "end": "2026-03-01"},
        {"start": "March 1"},
        {"start": "2020-01-01", "end": "2026-01-01"},
    ):
        response = await sandbox.http.get(url, params=params)
        assert response.status_code == 400
        assert response.json()["error"] == "Bad Request"


async def test_truth_covers_days_before_history_and_after_today(sandbox: SandboxClient) -> None:
    team = await sandbox.create_team(days=3)
    truth = await sandbox.truth(team, "2026-03-10", "2026-03-20")
    by_date = {row["date"]: row for row in truth["days"]}
    assert len(by_date) == 11
    quiet = ("2026-03-10", "2026-03-14", "2026-03-19", "2026-03-20")
    assert all(by_date[d]["requests"] == 0 and by_date[d]["charged_cents"] == "0" for d in quiet)
    assert sum(row["requests"] for row in truth["days"]) > 0
    assert all(row["date"] >= "2026-03-15" for row in truth["member_days"])


async def test_healthz(sandbox: SandboxClient) -> None:
    response = await sandbox.http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_too_many_teams(sandbox: SandboxClient, app: FastAPI) -> None:
    app.state.settings.max_teams = 2
    await sandbox.create_team()
    await sandbox.create_team()
    response = await sandbox.http.post("/_sandbox/teams", json={})
    assert response.status_code == 409
    assert "DELETE" in response.json()["message"]


async def test_openapi_document_lists_both_apis(sandbox: SandboxClient) -> None:
    paths = (await sandbox.http.get("/openapi.json")).json()["paths"]
    assert {"/teams/members", "/teams/filtered-usage-events", "/_sandbox/teams"} <= set(paths)
    assert "/_sandbox/teams/{team_id}/truth" in paths


async def test_visible_until_freezes_what_is_visible(
    sandbox: SandboxClient, clock: ManualClock
) -> None:
    team = await sandbox.create_team(visibility_delay_s=0)
    midnight_ms = int(datetime(2026, 3, 18, tzinfo=UTC).timestamp() * 1000)
    before = await sandbox.truth(team, "2026-03-17", "2026-03-18")
    assert before["days"][1]["requests"] > 0, "with no freeze, today's data is visible"
    config = await sandbox.configure(team, visible_until_ms=midnight_ms - 1)
    assert config["visible_until_ms"] == midnight_ms - 1
    frozen = await sandbox.truth(team, "2026-03-17", "2026-03-18")
    clock.advance(3 * 3600)
    later = await sandbox.truth(team, "2026-03-17", "2026-03-18")
    for truth in (frozen, later):
        today = truth["days"][1]
        assert (today["date"], today["requests"], today["active_users"]) == ("2026-03-18", 0, 0)
        assert truth["visible_through"] == "2026-03-17T23:59:59.999Z"
    assert frozen["days"][0] == later["days"][0] == before["days"][0]
    assert frozen["member_days"] == later["member_days"]
