"""Every endpoint derives from the same events: independent counts agree with the truth route."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from koalr_sandbox.clock import ManualClock
from koalr_sandbox.testing import SandboxClient, SandboxTeam

DAY_MS = 86_400_000
START, END = "2026-03-01", "2026-03-18"  # END is today: incomplete, visible up to 14:00 UTC


def ms_of(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)


def day_of(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).date().isoformat()


def requests_of(row: dict[str, Any]) -> int:
    fields = ("chatRequests", "agentRequests", "composerRequests", "cmdkUsages")
    return sum(int(row[name]) for name in fields)


async def daily_rows(sandbox: SandboxClient, team: SandboxTeam, page_size: int) -> list[Any]:
    rows, page = [], 1
    body = {"startDate": ms_of(START), "endDate": ms_of(END) + DAY_MS - 1, "pageSize": page_size}
    while True:
        result = await sandbox.cursor_ok(
            team, "POST", "/teams/daily-usage-data", body=body | {"page": page}
        )
        rows.extend(result["data"])
        if not result["pagination"]["hasNextPage"]:
            return rows
        page += 1


async def test_three_counts_of_requests_agree_with_truth(sandbox: SandboxClient) -> None:
    team = await sandbox.create_team()
    truth = await sandbox.truth(team, START, END)
    days = [row["date"] for row in truth["days"]]
    assert days == [date(2026, 3, d).isoformat() for d in range(1, 19)]
    truth_requests = {row["date"]: row["requests"] for row in truth["days"]}
    assert sum(1 for d in days if truth_requests[d] > 0) >= 12  # quiet weekends may be empty

    # 1. Daily-usage counters, summed over members per day.
    from_daily: Counter[str] = Counter()
    active: Counter[str] = Counter()
    for row in await daily_rows(sandbox, team, page_size=5):
        from_daily[row["day"]] += requests_of(row)
        active[row["day"]] += row["isActive"]
    # 2. Usage events, counted per UTC day of their timestamp.
    events = await sandbox.usage_events(team, ms_of(START), ms_of(END) + DAY_MS - 1)
    from_events = Counter(day_of(int(e["timestamp"])) for e in events)
    # 3. Analytics model messages, summed per day.
    models = await sandbox.cursor_ok(
        team, "GET", "/analytics/team/models", params={"startDate": START, "endDate": END}
    )
    from_analytics = {
        row["date"]: sum(v["messages"] for v in row["model_breakdown"].values())
        for row in models["data"]
    }
    dau = await sandbox.cursor_ok(
        team, "GET", "/analytics/team/dau", params={"startDate": START, "endDate": END}
    )

    assert {d: from_daily[d] for d in days} == truth_requests
    assert {d: from_events[d] for d in days} == truth_requests
    assert from_analytics == truth_requests
    assert sum(from_events.values()) == len(events)
    truth_active = {row["date"]: row["active_users"] for row in truth["days"]}
    assert {d: active[d] for d in days} == truth_active
    assert {row["date"]: row["dau"] for row in dau["data"]} == truth_active


async def test_models_and_money_agree_with_truth(sandbox: SandboxClient) -> None:
    team = await sandbox.create_team(plan="business")
    truth = await sandbox.truth(team, START, END)
    events = await sandbox.usage_events(team, ms_of(START), ms_of(END) + DAY_MS - 1)

    by_model: dict[str, list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    by_day: dict[str, Decimal] = defaultdict(Decimal)
    by_member_day: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for event in events:
        cents = Decimal(event["chargedCents"])
        by_model[event["model"]][0] += 1
        by_model[event["model"]][1] += cents
        by_day[day_of(int(event["timestamp"]))] += cents
        key = (day_of(int(event["timestamp"])), event["userEmail"])
        by_member_day[key][0] += 1
        by_member_day[key][1] += cents

    expected_models = [
        {"model": m, "requests": n, "charged_cents": c}
        for m, (n, c) in sorted(by_model.items(), key=lambda kv: (-kv[1][0], kv[0]))
    ]
    assert [
        {**row, "charged_cents": Decimal(row["charged_cents"])} for row in truth["models"]
    ] == expected_models
    assert len(truth["models"]) >= 5
    assert {row["date"]: Decimal(row["charged_cents"]) for row in truth["days"]} == {
        d: by_day[d] for d in (row["date"] for row in truth["days"])
    }
    with_requests = {
        (row["date"], row["email"]): [row["requests"], Decimal(row["charged_cents"])]
        for row in truth["member_days"]
        if row["requests"]
    }
    assert with_requests == dict(by_member_day)
    assert all(row["is_active"] for row in truth["member_days"])


async def test_member_day_rules(sandbox: SandboxClient) -> None:
    team = await sandbox.create_team()
    events = await sandbox.usage_events(team, ms_of(START), ms_of(END) + DAY_MS - 1)
    per_member_day: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for event in events:
        per_member_day[(day_of(int(event["timestamp"])), event["userEmail"])][event["model"]] += 1

    rows = await daily_rows(sandbox, team, page_size=100)
    tab_only = 0
    for row in rows:
        models = per_member_day.get((row["day"], row["email"]), Counter())
        count = sum(models.values())
        billed = row["subscriptionIncludedReqs"] + row["usageBasedReqs"] + row["apiKeyReqs"]
        assert requests_of(row) == count == billed, row
        assert row["isActive"] == (count > 0 or row["totalTabsAccepted"] > 0)
        if count:
            top = max(models.values())
            assert row["mostUsedModel"] == min(m for m, n in models.items() if n == top)
        else:
            assert row["mostUsedModel"] is None
        assert row["totalRejects"] == row["totalApplies"] - row["totalAccepts"]
        assert row["acceptedLinesAdded"] <= row["totalLinesAdded"]
        tab_only += row["isActive"] and count == 0
    assert tab_only > 0, "some days are active from tab completions only"
    counted = {key for key, models in per_member_day.items() if models}
    assert counted <= {(row["day"], row["email"]) for row in rows}


async def test_cycle_spend_agrees_with_events_and_truth(
    sandbox: SandboxClient, clock: ManualClock
) -> None:
    team = await sandbox.create_team(plan="business")
    spend = await sandbox.cursor_ok(team, "POST", "/teams/spend", body={"pageSize": 100})
    truth = await sandbox.truth(team, START, END)
    cycle_start = spend["subscriptionCycleStart"]
    assert day_of(cycle_start) == truth["cycle"]["start"]

    now_ms = int(clock.now() * 1000)
    events: list[Any] = []
    window_start = cycle_start
    while window_start <= now_ms:  # windows of at most 30 days
        window_end = min(window_start + 10 * DAY_MS - 1, now_ms)
        events += await sandbox.usage_events(team, window_start, window_end)
        window_start = window_end + 1
    overall: dict[str, Decimal] = defaultdict(Decimal)
    on_demand: dict[str, Decimal] = defaultdict(Decimal)
    for event in events:
        overall[event["userEmail"]] += event["chargedCents"]
        if event["kind"] == "Usage-based":
            on_demand[event["userEmail"]] += event["chargedCents"]

    served = {
        item["email"]: (Decimal(item["overallSpendCents"]), Decimal(item["spendCents"]))
        for item in spend["teamMemberSpend"]
    }
    truth_cycle = {
        row["email"]: (Decimal(row["overall_spend_cents"]), Decimal(row["spend_cents"]))
        for row in truth["cycle"]["members"]
    }
    from_events = {email: (overall[email], on_demand[email]) for email in served}
    assert served == from_events == truth_cycle
    assert sum(v[0] for v in served.values()) == Decimal(truth["cycle"]["total_cents"]) > 0


async def test_visibility_delay(sandbox: SandboxClient, clock: ManualClock) -> None:
    team = await sandbox.create_team()
    now_ms = int(clock.now() * 1000)
    today = ms_of(END)
    events = await sandbox.usage_events(team, today, today + DAY_MS - 1)
    assert events
    assert max(int(e["timestamp"]) for e in events) <= now_ms - 3600 * 1000
    before = (await sandbox.truth(team, END, END))["days"][0]

    clock.advance(6 * 3600)  # 21:00 UTC: six more hours of the day are visible
    later = await sandbox.usage_events(team, today, today + DAY_MS - 1)
    after = (await sandbox.truth(team, END, END))["days"][0]
    assert len(later) == after["requests"] > before["requests"] == len(events)
    assert {e["timestamp"] for e in events} < {e["timestamp"] for e in later}

    await sandbox.configure(team, visibility_delay_s=0)
    instant = await sandbox.usage_events(team, today, today + DAY_MS - 1)
    assert len(instant) > len(later)
    assert max(int(e["timestamp"]) for e in instant) <= now_ms + 6 * 3600 * 1000

    clock.advance(86_400)  # next day: the whole of the 18th is visible and stays put
    final = (await sandbox.truth(team, END, END))["days"][0]
    clock.advance(86_400)
    assert (await sandbox.truth(team, END, END))["days"][0] == final
    assert final["requests"] >= len(instant)
