"""Every documented error, with its exact body."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from koalr_sandbox.testing import SandboxClient

DAY_MS = 86_400_000
UNAUTHORIZED = {"error": "Unauthorized", "message": "Invalid API key"}
FORBIDDEN = {"error": "Forbidden", "message": "Enterprise access required"}
ADMIN_CALLS: list[tuple[str, str, Any]] = [
    ("POST", "/teams/daily-usage-data", {"startDate": 1773100800000, "endDate": 1773187200000}),
    ("POST", "/teams/spend", {}),
    ("POST", "/teams/filtered-usage-events", {}),
]
ANALYTICS_CALLS: list[tuple[str, str, Any]] = [
    ("GET", "/analytics/team/dau", None),
    ("GET", "/analytics/team/models", None),
]
ALL_CALLS = [("GET", "/teams/members", None), *ADMIN_CALLS, *ANALYTICS_CALLS]


@pytest.mark.parametrize(("method", "path", "body"), ALL_CALLS)
async def test_unknown_key_is_401(
    sandbox: SandboxClient, method: str, path: str, body: Any
) -> None:
    team = await sandbox.create_team()
    response = await sandbox.cursor(team, method, path, body=body, api_key="crsr_" + "0" * 64)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


async def test_missing_or_malformed_credentials_are_401(sandbox: SandboxClient) -> None:
    team = await sandbox.create_team()
    bearer = {"Authorization": f"Bearer {team.api_key}"}
    garbage = {"Authorization": "Basic !!!not-base64!!!"}
    empty_user = {
        "Authorization": "Basic " + base64.b64encode(b":" + team.api_key.encode()).decode()
    }
    for headers in ({}, bearer, garbage, empty_user):
        response = await sandbox.http.get("/teams/members", headers=headers)
        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED
    password_ignored = await sandbox.http.get("/teams/members", auth=(team.api_key, "anything"))
    assert password_ignored.status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS + ANALYTICS_CALLS)
async def test_team_plan_only_answers_members(
    sandbox: SandboxClient, method: str, path: str, body: Any
) -> None:
    team = await sandbox.create_team(plan="team")
    assert (await sandbox.cursor(team, "GET", "/teams/members")).status_code == 200
    response = await sandbox.cursor(team, method, path, body=body)
    assert response.status_code == 403
    assert response.json() == FORBIDDEN


async def test_business_plan_has_admin_but_not_analytics(sandbox: SandboxClient) -> None:
    team = await sandbox.create_team(plan="business")
    for method, path, body in ADMIN_CALLS:
        assert (await sandbox.cursor(team, method, path, body=body)).status_code == 200
    for method, path, body in ANALYTICS_CALLS:
        response = await sandbox.cursor(team, method, path, body=body)
        assert response.status_code == 403
        assert response.json() == FORBIDDEN
    await sandbox.configure(team, plan="enterprise")
    for method, path, body in ANALYTICS_CALLS:
        assert (await sandbox.cursor(team, method, path, body=body)).status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("/teams/daily-usage-data", {}, "required"),
        ("/teams/daily-usage-data", {"startDate": 1773100800000}, "required"),
        ("/teams/daily-usage-data", {"startDate": "2026-03-01", "endDate": 1}, "epoch"),
        (
            "/teams/daily-usage-data",
            {"startDate": 1773187200000, "endDate": 1773100800000},
            "after",
        ),
        ("/teams/daily-usage-data", {"startDate": 0, "endDate": 30 * DAY_MS + 1}, "30 days"),
        (
            "/teams/daily-usage-data",
            {"startDate": 0, "endDate": DAY_MS, "page": 0, "pageSize": 10},
            "page",
        ),
        ("/teams/filtered-usage-events", {"pageSize": 1001}, "1000"),
        ("/teams/filtered-usage-events", {"page": -1}, "page"),
        ("/teams/filtered-usage-events", {"startDate": 0, "endDate": 31 * DAY_MS}, "30 days"),
        ("/teams/filtered-usage-events", {"hostingType": "MOON"}, "hostingType"),
        ("/teams/filtered-usage-events", {"email": 42}, "email"),
        ("/teams/spend", {"sortBy": "size"}, "sortBy"),
        ("/teams/spend", {"sortDirection": "up"}, "sortDirection"),
        ("/teams/spend", {"pageSize": 1.5}, "pageSize"),
    ],
)
async def test_bad_requests_are_400(
    sandbox: SandboxClient, path: str, body: dict[str, Any], fragment: str
) -> None:
    team = await sandbox.create_team()
    response = await sandbox.cursor(team, "POST", path, body=body)
    assert response.status_code == 400
    error = response.json()
    assert set(error) == {"error", "message"}
    assert error["error"] == "Bad Request"
    assert fragment in error["message"]


async def test_thirty_day_range_is_the_limit(sandbox: SandboxClient) -> None:
    team = await sandbox.create_team()
    start = 1771000000000
    exact = {"startDate": start, "endDate": start + 30 * DAY_MS}
    assert (await sandbox.cursor(team, "POST", "/teams/daily-usage-data", body=exact)).is_success
    over = {"startDate": start, "endDate": start + 30 * DAY_MS + 1}
    response = await sandbox.cursor(team, "POST", "/teams/daily-usage-data", body=over)
    assert response.status_code == 400


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"'])
async def test_invalid_json_body_is_400(sandbox: SandboxClient, raw: bytes) -> None:
    team = await sandbox.create_team()
    response = await sandbox.http.post(
        "/teams/spend",
        content=raw,
        auth=(team.api_key, ""),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "Bad Request"


async def test_empty_body_is_an_empty_object(sandbox: SandboxClient) -> None:
    team = await sandbox.create_team()
    response = await sandbox.http.post("/teams/spend", auth=(team.api_key, ""))
    assert response.status_code == 200
    assert response.json()["totalMembers"] > 0


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"startDate": "31d"}, "30 days"),
        ({"startDate": "2026-01-01", "endDate": "2026-03-01"}, "30 days"),
        ({"startDate": "today", "endDate": "yesterday"}, "after"),
        ({"startDate": "last tuesday"}, "startDate"),
        ({"users": "nobody@example.com"}, "Some users are not in the team"),
    ],
)
async def test_analytics_bad_requests_are_400(
    sandbox: SandboxClient, params: dict[str, str], fragment: str
) -> None:
    team = await sandbox.create_team()
    response = await sandbox.cursor(team, "GET", "/analytics/team/dau", params=params)
    assert response.status_code == 400
    assert response.json()["error"] == "Bad Request"
    assert fragment in response.json()["message"]


async def test_analytics_users_filter(sandbox: SandboxClient) -> None:
    team = await sandbox.create_team()
    members = (await sandbox.cursor_ok(team, "GET", "/teams/members"))["teamMembers"]
    params = {"startDate": "7d", "users": f"{members[0]['email']},{members[1]['id']}"}
    some = await sandbox.cursor_ok(team, "GET", "/analytics/team/dau", params=params)
    everyone = await sandbox.cursor_ok(
        team, "GET", "/analytics/team/dau", params={"startDate": "7d"}
    )
    assert all(row["dau"] <= 2 for row in some["data"])
    assert sum(row["dau"] for row in some["data"]) < sum(row["dau"] for row in everyone["data"])


async def test_unknown_route_is_404_in_cursor_shape(sandbox: SandboxClient) -> None:
    team = await sandbox.create_team()
    response = await sandbox.cursor(team, "GET", "/teams/audit-logs")
    assert response.status_code == 404
    assert response.json() == {"error": "Not Found", "message": "Resource not found"}
    wrong_method = await sandbox.cursor(team, "GET", "/teams/spend")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "Method Not Allowed"


async def test_injected_500_has_the_documented_body(sandbox: SandboxClient) -> None:
    team = await sandbox.create_team(fault_rate_5xx=1.0)
    response = await sandbox.cursor(team, "GET", "/teams/members")
    assert response.status_code == 500
    assert response.json() == {
        "error": "Internal Server Error",
        "message": "An unexpected error occurred",
    }
