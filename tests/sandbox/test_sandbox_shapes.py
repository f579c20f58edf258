"""Every endpoint's response against the examples of the Cursor API reference.

The examples below are copied from the reference (current docs) so that field names are checked
against the documentation, not against the implementation. Types are checked per field.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from koalr_sandbox.clock import ManualClock
from koalr_sandbox.testing import SandboxClient

DAY_MS = 86_400_000
NUMBER = (int, Decimal)

MEMBER_EXAMPLE = {
    "id": "user_PDSPmvukpYgZEDXsoNirw3CFhy",
    "name": "Alex",
    "email": "developer@company.com",
    "role": "member",
    "isRemoved": False,
}
DAILY_USAGE_EXAMPLE = {
    "userId": 12345, "day": "2024-03-18", "date": 1710720000000, "email": "developer@company.com",
    "isActive": True, "totalLinesAdded": 1543, "totalLinesDeleted": 892,
    "acceptedLinesAdded": 1102, "acceptedLinesDeleted": 645, "totalApplies": 87,
    "totalAccepts": 73, "totalRejects": 14, "totalTabsShown": 342, "totalTabsAccepted": 289,
    "composerRequests": 45, "chatRequests": 128, "agentRequests": 12, "cmdkUsages": 67,
    "subscriptionIncludedReqs": 180, "apiKeyReqs": 0, "usageBasedReqs": 5, "bugbotUsages": 3,
    "mostUsedModel": "gpt-5", "applyMostUsedExtension": ".tsx", "tabMostUsedExtension": ".ts",
    "clientVersion": "0.25.1",
}  # fmt: skip
DAILY_USAGE_PAGINATION_EXAMPLE = {
    "page": 1, "pageSize": 1000, "totalUsers": 150, "totalPages": 1,
    "hasNextPage": False, "hasPreviousPage": False,
}  # fmt: skip
SPEND_EXAMPLE = {
    "userId": "user_PDSPmvukpYgZEDXsoNirw3CFhy", "name": "Alex", "email": "developer@company.com",
    "role": "member", "spendCents": 2450.125487, "overallSpendCents": 2450.125487,
    "fastPremiumRequests": 1250, "hardLimitOverrideDollars": 100,
    "monthlyLimitDollars": 200, "effectivePerUserLimitDollars": 100,
}  # fmt: skip
EVENT_EXAMPLE: dict[str, Any] = {
    "timestamp": "1750979225854", "userEmail": "developer@company.com",
    "conversationId": "8f2e4a1b-6c3d-4e5f-9a7b-2d1c8e6f4a3b", "model": "claude-4.5-sonnet",
    "kind": "Usage-based", "maxMode": True, "requestsCosts": 5, "isTokenBasedCall": True,
    "isChargeable": True, "isHeadless": False,
    "tokenUsage": {"inputTokens": 126, "outputTokens": 450, "cacheWriteTokens": 6112,
                   "cacheReadTokens": 11964, "totalCents": 20.18232},
    "chargedCents": 21.36232, "cursorTokenFee": 1.18,
}  # fmt: skip
EVENT_OPTIONAL = {"tokenUsage", "cursorTokenFee", "conversationId", "cloudAgentId"}
EVENTS_PAGINATION_EXAMPLE = {
    "numPages": 5, "currentPage": 1, "pageSize": 25, "hasNextPage": True, "hasPreviousPage": False,
}  # fmt: skip
DAU_EXAMPLE = {
    "date": "2025-01-15",
    "dau": 42,
    "cli_dau": 5,
    "cloud_agent_dau": 37,
    "bugbot_dau": 10,
}
ANALYTICS_PARAMS_EXAMPLE = {
    "metric": "dau", "teamId": 12345, "startDate": "2025-01-01", "endDate": "2025-01-31",
}  # fmt: skip

DAILY_USAGE_TYPES: dict[str, Any] = {
    "userId": int, "day": str, "date": int, "email": str, "isActive": bool,
    "mostUsedModel": (str, type(None)), "applyMostUsedExtension": (str, type(None)),
    "tabMostUsedExtension": (str, type(None)), "clientVersion": (str, type(None)),
}  # fmt: skip
SPEND_TYPES: dict[str, Any] = {
    "userId": str, "name": str, "email": str, "role": str, "spendCents": NUMBER,
    "overallSpendCents": NUMBER, "fastPremiumRequests": int, "hardLimitOverrideDollars": int,
    "monthlyLimitDollars": (int, type(None)), "effectivePerUserLimitDollars": int,
}  # fmt: skip
EVENT_TYPES: dict[str, Any] = {
    "timestamp": str, "userEmail": str, "conversationId": str, "model": str, "kind": str,
    "maxMode": bool, "requestsCosts": NUMBER, "isTokenBasedCall": bool, "isChargeable": bool,
    "isHeadless": bool, "tokenUsage": dict, "chargedCents": NUMBER, "cursorTokenFee": NUMBER,
    "cloudAgentId": str,
}  # fmt: skip


def assert_types(item: dict[str, Any], types: dict[str, Any], default: Any = int) -> None:
    for name, value in item.items():
        expected = types.get(name, default)
        assert isinstance(value, expected), (name, value)
        assert not (isinstance(value, bool) and expected in (int, NUMBER)), name


async def test_members_shape(sandbox: SandboxClient) -> None:
    team = await sandbox.create_team()
    body = await sandbox.cursor_ok(team, "GET", "/teams/members")
    assert set(body) == {"teamMembers"}
    members = body["teamMembers"]
    assert len(members) == 12
    for member in members:
        assert set(member) == set(MEMBER_EXAMPLE)
        assert re.fullmatch(r"user_[A-Za-z0-9]{28}", member["id"])
        assert member["role"] in {"owner", "member", "free-owner"}
        assert_types(member, {"isRemoved": bool}, str)
    assert members[0]["role"] == "owner"
    assert len({m["email"] for m in members}) == 12
    assert any(m["isRemoved"] for m in members)


async def test_daily_usage_shape_paginated(sandbox: SandboxClient, clock: ManualClock) -> None:
    team = await sandbox.create_team()
    today = int(clock.now() * 1000) // DAY_MS * DAY_MS
    request = {"startDate": today - 2 * DAY_MS, "endDate": today + 5, "page": 1, "pageSize": 100}
    body = await sandbox.cursor_ok(team, "POST", "/teams/daily-usage-data", body=request)
    assert set(body) == {"data", "period", "pagination"}
    assert body["period"] == {"startDate": request["startDate"], "endDate": request["endDate"]}
    assert set(body["pagination"]) == set(DAILY_USAGE_PAGINATION_EXAMPLE)
    assert body["data"]
    for row in body["data"]:
        assert set(row) == set(DAILY_USAGE_EXAMPLE)
        assert_types(row, DAILY_USAGE_TYPES)
        assert row["date"] % DAY_MS == 0
        assert row["date"] in {today - 2 * DAY_MS, today - DAY_MS, today}
        if not row["isActive"]:
            assert row["mostUsedModel"] is None
            assert row["clientVersion"] is None
            assert row["chatRequests"] + row["agentRequests"] == 0
    assert any(not row["isActive"] for row in body["data"])


async def test_daily_usage_shape_unpaginated(sandbox: SandboxClient, clock: ManualClock) -> None:
    team = await sandbox.create_team()
    now_ms = int(clock.now() * 1000)
    request = {"startDate": now_ms - 7 * DAY_MS, "endDate": now_ms}
    body = await sandbox.cursor_ok(team, "POST", "/teams/daily-usage-data", body=request)
    assert set(body) == {"data", "period"}
    assert body["data"]
    for row in body["data"]:
        assert set(row) == set(DAILY_USAGE_EXAMPLE)
        assert_types(row, DAILY_USAGE_TYPES)
        assert row["isActive"] is True  # only active member-days without paging


async def test_spend_shape(sandbox: SandboxClient) -> None:
    team = await sandbox.create_team()
    body = await sandbox.cursor_ok(team, "POST", "/teams/spend", body={})
    assert set(body) == {"teamMemberSpend", "subscriptionCycleStart", "totalMembers", "totalPages"}
    assert body["subscriptionCycleStart"] % DAY_MS == 0
    assert body["totalPages"] == 1
    assert len(body["teamMemberSpend"]) == body["totalMembers"]
    for item in body["teamMemberSpend"]:
        assert set(item) == set(SPEND_EXAMPLE)
        assert_types(item, SPEND_TYPES)
        assert item["spendCents"] <= item["overallSpendCents"]
    spends = [item["overallSpendCents"] for item in body["teamMemberSpend"]]
    assert any(isinstance(s, Decimal) and s != s.to_integral_value() for s in spends)
    assert any(s == 0 for s in spends)  # members without spend are listed too


async def test_usage_events_shape(sandbox: SandboxClient, clock: ManualClock) -> None:
    team = await sandbox.create_team(plan="business")
    now_ms = int(clock.now() * 1000)
    # Late in the previous billing cycle (it starts on the 13th for this seed), so heavy users
    # have used up their included allowance and some events are usage-based.
    start = now_ms - 8 * DAY_MS
    request = {"startDate": start, "endDate": start + 2 * DAY_MS, "page": 1, "pageSize": 1000}
    body = await sandbox.cursor_ok(team, "POST", "/teams/filtered-usage-events", body=request)
    assert set(body) == {"totalUsageEventsCount", "pagination", "usageEvents", "period"}
    assert set(body["pagination"]) == set(EVENTS_PAGINATION_EXAMPLE)
    assert body["period"] == {"startDate": request["startDate"], "endDate": request["endDate"]}
    events = body["usageEvents"]
    assert len(events) == body["totalUsageEventsCount"] > 100
    required = set(EVENT_EXAMPLE) - EVENT_OPTIONAL
    kinds = set()
    for event in events:
        assert required <= set(event) <= set(EVENT_EXAMPLE) | EVENT_OPTIONAL
        assert_types(event, EVENT_TYPES)
        assert event["timestamp"].isdigit()
        kinds.add(event["kind"])
        if event["isTokenBasedCall"]:
            assert set(event["tokenUsage"]) == set(EVENT_EXAMPLE["tokenUsage"])
            assert_types(event["tokenUsage"], {"totalCents": NUMBER})
            fee = event.get("cursorTokenFee", 0)
            assert event["chargedCents"] == event["tokenUsage"]["totalCents"] + fee
        else:
            assert "tokenUsage" not in event
            assert "cursorTokenFee" not in event
            assert event["chargedCents"] == 0
            assert event["isChargeable"] is False
    assert {"Included in Business", "Usage-based"} <= kinds


async def test_usage_events_kind_follows_the_plan(
    sandbox: SandboxClient, clock: ManualClock
) -> None:
    team = await sandbox.create_team(plan="enterprise")
    now_ms = int(clock.now() * 1000)
    events = await sandbox.usage_events(team, now_ms - 2 * DAY_MS, now_ms)
    kinds = {event["kind"] for event in events}
    assert "Included in Enterprise" in kinds
    assert "Included in Business" not in kinds


async def test_analytics_shapes(sandbox: SandboxClient) -> None:
    team = await sandbox.create_team()
    params = {"startDate": "2026-03-10", "endDate": "today"}
    dau = await sandbox.cursor_ok(team, "GET", "/analytics/team/dau", params=params)
    assert set(dau) == {"data", "params"}
    assert set(dau["params"]) == set(ANALYTICS_PARAMS_EXAMPLE)
    assert dau["params"]["metric"] == "dau"
    assert dau["params"]["teamId"] == int(team.team_id)
    assert (dau["params"]["startDate"], dau["params"]["endDate"]) == ("2026-03-10", "2026-03-18")
    assert [row["date"] for row in dau["data"]] == [f"2026-03-{d:02d}" for d in range(10, 19)]
    for row in dau["data"]:
        assert set(row) == set(DAU_EXAMPLE)
        assert_types(row, {"date": str})
    models = await sandbox.cursor_ok(team, "GET", "/analytics/team/models", params=params)
    assert models["params"]["metric"] == "models"
    for row in models["data"]:
        assert set(row) == {"date", "model_breakdown"}
        for name, value in row["model_breakdown"].items():
            assert isinstance(name, str)
            assert set(value) == {"messages", "users"}
            assert value["messages"] >= value["users"] >= 1


async def test_analytics_relative_dates(sandbox: SandboxClient) -> None:
    team = await sandbox.create_team()
    for start, end, expected in [
        ("30d", "today", ("2026-02-16", "2026-03-18")),
        ("yesterday", "now", ("2026-03-17", "2026-03-18")),
        ("2026-03-01T12:30:00Z", "2026-03-02", ("2026-03-01", "2026-03-02")),
    ]:
        body = await sandbox.cursor_ok(
            team, "GET", "/analytics/team/dau", params={"startDate": start, "endDate": end}
        )
        assert (body["params"]["startDate"], body["params"]["endDate"]) == expected
    default = await sandbox.cursor_ok(team, "GET", "/analytics/team/dau")
    assert (default["params"]["startDate"], default["params"]["endDate"]) == (
        "2026-03-11",
        "2026-03-18",
    )


async def test_legacy_shapes(sandbox: SandboxClient, clock: ManualClock) -> None:
    team = await sandbox.create_team(plan="business", legacy_shapes=True)
    assert re.fullmatch(r"key_[0-9a-f]{64}", team.api_key)
    now_ms = int(clock.now() * 1000)

    members = (await sandbox.cursor_ok(team, "GET", "/teams/members"))["teamMembers"]
    assert members
    assert all(set(m) == {"name", "email", "role"} for m in members)

    window = {"startDate": now_ms - 60 * DAY_MS, "endDate": now_ms, "page": 1, "pageSize": 5}
    usage = await sandbox.cursor_ok(team, "POST", "/teams/daily-usage-data", body=window)
    assert set(usage) == {"data", "period"}  # paging ignored, 90-day range allowed
    assert all(set(row) == set(DAILY_USAGE_EXAMPLE) - {"userId", "day"} for row in usage["data"])

    events = await sandbox.cursor_ok(
        team, "POST", "/teams/filtered-usage-events", body={"startDate": now_ms - DAY_MS}
    )
    assert events["pagination"]["pageSize"] == 10
    assert len(events["usageEvents"]) == 10
    for event in events["usageEvents"]:
        assert "kindLabel" in event
        assert event["isFreeBugbot"] is False
        assert not {"kind", "chargedCents", "isChargeable", "isHeadless"} & set(event)

    spend = await sandbox.cursor_ok(team, "POST", "/teams/spend", body={})
    for item in spend["teamMemberSpend"]:
        assert set(item) == {
            "spendCents", "fastPremiumRequests", "name", "email", "role",
            "hardLimitOverrideDollars",
        }  # fmt: skip


async def test_current_key_format(sandbox: SandboxClient) -> None:
    team = await sandbox.create_team()
    assert re.fullmatch(r"crsr_[0-9a-f]{64}", team.api_key)
    assert team.team_id.isdigit()
