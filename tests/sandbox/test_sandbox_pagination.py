"""Paging through any endpoint returns every row exactly once."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from koalr_sandbox.clock import ManualClock
from koalr_sandbox.testing import SandboxClient

DAY_MS = 86_400_000


async def test_usage_events_pages_cover_every_event_once(
    sandbox: SandboxClient, clock: ManualClock
) -> None:
    team = await sandbox.create_team()
    now_ms = int(clock.now() * 1000)
    window = {"startDate": now_ms - 5 * DAY_MS, "endDate": now_ms}
    everything = await sandbox.usage_events(team, window["startDate"], window["endDate"])
    expected = [(e["timestamp"], e["userEmail"]) for e in everything]
    assert len(set(expected)) == len(expected) > 200

    seen: list[tuple[str, str]] = []
    page, size = 1, 37
    while True:
        body = await sandbox.cursor_ok(
            team,
            "POST",
            "/teams/filtered-usage-events",
            body=window | {"page": page, "pageSize": size},
        )
        pagination = body["pagination"]
        assert pagination["currentPage"] == page
        assert pagination["numPages"] == -(-len(expected) // size)
        assert pagination["hasPreviousPage"] == (page > 1)
        assert body["totalUsageEventsCount"] == len(expected)
        seen += [(e["timestamp"], e["userEmail"]) for e in body["usageEvents"]]
        if not pagination["hasNextPage"]:
            break
        assert len(body["usageEvents"]) == size
        page += 1
    assert seen == expected
    timestamps = [int(t) for t, _ in seen]
    assert timestamps == sorted(timestamps, reverse=True)  # newest first

    beyond = await sandbox.cursor_ok(
        team, "POST", "/teams/filtered-usage-events", body=window | {"page": page + 1}
    )
    assert beyond["usageEvents"] == []
    assert beyond["pagination"]["hasNextPage"] is False


async def test_usage_events_bounds_are_inclusive(
    sandbox: SandboxClient, clock: ManualClock
) -> None:
    team = await sandbox.create_team()
    now_ms = int(clock.now() * 1000)
    events = await sandbox.usage_events(team, now_ms - DAY_MS, now_ms)
    ts = int(events[len(events) // 2]["timestamp"])
    exact = await sandbox.usage_events(team, ts, ts)
    assert exact
    assert {int(e["timestamp"]) for e in exact} == {ts}
    assert not await sandbox.usage_events(team, ts + 1, ts + 1) or all(
        int(e["timestamp"]) == ts + 1 for e in await sandbox.usage_events(team, ts + 1, ts + 1)
    )


async def test_usage_events_email_filter(sandbox: SandboxClient, clock: ManualClock) -> None:
    team = await sandbox.create_team()
    now_ms = int(clock.now() * 1000)
    everything = await sandbox.usage_events(team, now_ms - 5 * DAY_MS, now_ms)
    email = max({e["userEmail"] for e in everything}, key=lambda m: (m.startswith("a"), m))
    mine = await sandbox.usage_events(team, now_ms - 5 * DAY_MS, now_ms, email=email)
    assert mine == [e for e in everything if e["userEmail"] == email]
    assert mine
    nobody = await sandbox.usage_events(
        team, now_ms - 5 * DAY_MS, now_ms, email="nobody@example.com"
    )
    assert nobody == []


async def test_daily_usage_pages_cover_every_member_day_once(
    sandbox: SandboxClient, clock: ManualClock
) -> None:
    team = await sandbox.create_team(days=29)  # joins and removals fall inside the window
    today = int(clock.now() * 1000) // DAY_MS * DAY_MS
    window = {"startDate": today - 29 * DAY_MS, "endDate": today + DAY_MS - 1}
    members = (await sandbox.cursor_ok(team, "GET", "/teams/members"))["teamMembers"]
    in_range = {
        m["email"] for m in (await sandbox.truth(team, "2026-02-17", "2026-03-18"))["members"]
    }
    assert 0 < len(in_range) <= len(members)

    rows: list[Any] = []
    page_users: list[set[str]] = []
    page = 1
    while True:
        body = await sandbox.cursor_ok(
            team, "POST", "/teams/daily-usage-data", body=window | {"page": page, "pageSize": 5}
        )
        assert body["pagination"]["totalUsers"] == len(in_range)
        assert body["pagination"]["totalPages"] == -(-len(in_range) // 5)
        rows += body["data"]
        page_users.append({row["email"] for row in body["data"]})
        if not body["pagination"]["hasNextPage"]:
            break
        assert len(page_users[-1]) == 5
        page += 1
    assert page == body["pagination"]["totalPages"] > 1
    assert sum(len(users) for users in page_users) == len(in_range)
    assert set.union(*page_users) == in_range
    keys = [(row["email"], row["date"]) for row in rows]
    assert len(keys) == len(set(keys))
    # One row per member per day of the range they were a member on: a full month for most,
    # fewer days for those who joined or were removed during it.
    per_member = Counter(email for email, _ in keys)
    removed = {m["email"] for m in members if m["isRemoved"]} & in_range
    assert max(per_member.values()) == 30
    assert removed
    assert all(per_member[email] < 30 for email in removed)
    assert len(in_range) == len(members)
    assert sum(1 for n in per_member.values() if n < 30) >= 2  # a joiner and a leaver


async def test_daily_usage_unpaginated_lists_active_member_days(
    sandbox: SandboxClient, clock: ManualClock
) -> None:
    team = await sandbox.create_team()
    today = int(clock.now() * 1000) // DAY_MS * DAY_MS
    window = {"startDate": today - 9 * DAY_MS, "endDate": today + DAY_MS - 1}
    sparse = await sandbox.cursor_ok(team, "POST", "/teams/daily-usage-data", body=window)
    paged = await sandbox.cursor_ok(
        team, "POST", "/teams/daily-usage-data", body=window | {"page": 1, "pageSize": 100}
    )
    active = [row for row in paged["data"] if row["isActive"]]
    key = lambda row: (row["date"], row["email"])  # noqa: E731
    assert sorted(sparse["data"], key=key) == sorted(active, key=key)
    assert len(paged["data"]) > len(sparse["data"]) > 0


@pytest.mark.parametrize(
    ("sort_by", "direction"),
    [("amount", "desc"), ("amount", "asc"), ("user", "asc"), ("date", "desc")],
)
async def test_spend_pages_cover_every_member_once(
    sandbox: SandboxClient, sort_by: str, direction: str
) -> None:
    team = await sandbox.create_team(members=23, plan="business")
    full = await sandbox.cursor_ok(team, "POST", "/teams/spend", body={"pageSize": 1000})
    expected = [item["email"] for item in full["teamMemberSpend"]]
    assert len(expected) == full["totalMembers"] >= 20

    seen: list[dict[str, Any]] = []
    page = 1
    while True:
        body = await sandbox.cursor_ok(
            team,
            "POST",
            "/teams/spend",
            body={"page": page, "pageSize": 4, "sortBy": sort_by, "sortDirection": direction},
        )
        assert body["totalPages"] == -(-len(expected) // 4)
        seen += body["teamMemberSpend"]
        if page >= body["totalPages"]:
            break
        page += 1
    assert sorted(item["email"] for item in seen) == sorted(expected)
    if sort_by == "amount":
        amounts = [item["overallSpendCents"] for item in seen]
        assert amounts == sorted(amounts, reverse=direction == "desc")
    if sort_by == "user":
        names = [item["name"].lower() for item in seen]
        assert names == sorted(names)


async def test_spend_search_term(sandbox: SandboxClient) -> None:
    team = await sandbox.create_team(plan="business")
    everyone = (await sandbox.cursor_ok(team, "POST", "/teams/spend", body={}))["teamMemberSpend"]
    target = everyone[3]
    first_name = target["name"].split()[0]
    for term in (first_name.upper(), target["email"].split("@")[0]):
        found = await sandbox.cursor_ok(team, "POST", "/teams/spend", body={"searchTerm": term})
        assert target in found["teamMemberSpend"]
        assert found["totalMembers"] == len(found["teamMemberSpend"]) < len(everyone)
        assert all(
            term.lower() in (item["name"] + " " + item["email"]).lower()
            for item in found["teamMemberSpend"]
        )
    none = await sandbox.cursor_ok(team, "POST", "/teams/spend", body={"searchTerm": "zzzz"})
    assert none == {
        "teamMemberSpend": [],
        "subscriptionCycleStart": none["subscriptionCycleStart"],
        "totalMembers": 0,
        "totalPages": 0,
    }


async def test_usage_events_user_and_cloud_agent_filters(
    sandbox: SandboxClient, clock: ManualClock
) -> None:
    team = await sandbox.create_team(members=40)
    now_ms = int(clock.now() * 1000)
    start = now_ms - 6 * DAY_MS
    everything = await sandbox.usage_events(team, start, now_ms)
    rows = await sandbox.cursor_ok(
        team, "POST", "/teams/daily-usage-data", body={"startDate": start, "endDate": now_ms}
    )
    busiest = max(rows["data"], key=lambda row: row["agentRequests"])
    by_user = await sandbox.usage_events(team, start, now_ms, userId=busiest["userId"])
    assert by_user == [e for e in everything if e["userEmail"] == busiest["email"]]
    assert by_user

    cloud = await sandbox.usage_events(team, start, now_ms, cloudAgentId="*")
    assert cloud == [e for e in everything if "cloudAgentId" in e]
    assert cloud
    assert all(e["isHeadless"] for e in cloud)
    one = cloud[0]["cloudAgentId"]
    assert await sandbox.usage_events(team, start, now_ms, cloudAgentId=one) == [
        e for e in cloud if e["cloudAgentId"] == one
    ]
    assert await sandbox.usage_events(team, start, now_ms, serviceAccountId="sa_1") == []
