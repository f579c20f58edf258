"""Three independent ways of counting agree: user rows (by the definitions), the aggregate
report, and the truth route; spend from the billing routes agrees with the truth as well."""

from __future__ import annotations

import calendar
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Any

from koalr_sandbox.clock import ManualClock
from koalr_sandbox.testing import GithubSandboxClient, SandboxOrg

START, END = "2026-03-01", "2026-03-18"  # data through 03-15; 03-18 is today
PRICES = {"business": 1900, "enterprise": 3900}


def days_between(start: str, end: str) -> list[str]:
    first, last = date.fromisoformat(start), date.fromisoformat(end)
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def requests_and_models(row: dict[str, Any]) -> tuple[int, Counter[str]]:
    """``requests(r)`` and ``models(r)`` plus ``unattributed``, as the definitions say."""
    models: Counter[str] = Counter()
    for entry in row.get("totals_by_model_feature", []):
        models[entry["model"]] += entry["user_initiated_interaction_count"]
    attributed = sum(models.values())
    cli = row.get("totals_by_cli", {}).get("request_count", 0)
    requests = max(row["user_initiated_interaction_count"], attributed) + cli
    if requests > attributed:
        models["unattributed"] += requests - attributed
    return requests, models


def exact_cents(value: Fraction) -> str:
    """Truth money: exact, rounded to 1e-5 cent, without trailing zeros."""
    rounded = Decimal(value.numerator) / Decimal(value.denominator)
    text = str(rounded.quantize(Decimal("0.00001"), rounding=ROUND_HALF_EVEN))
    return text.rstrip("0").rstrip(".") if "." in text else text


async def counts_from_user_rows(
    github: GithubSandboxClient, org: SandboxOrg, days: list[str]
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for day in days:
        rows = await github.report_rows(org, "users-1-day", day)
        models: Counter[str] = Counter()
        requests = 0
        for row in rows:
            row_requests, row_models = requests_and_models(row)
            requests += row_requests
            models.update(row_models)
        dau = len({row["user_id"] for row in rows})
        result[day] = {"dau": dau, "requests": requests, "models": dict(sorted(models.items()))}
    return result


async def counts_from_aggregates(
    github: GithubSandboxClient, org: SandboxOrg, days: list[str]
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for day in days:
        files = await github.report_rows(org, "organization-1-day", day)
        totals = [t for body in files for t in body["day_totals"]]
        if not totals:
            result[day] = {"dau": 0, "requests": 0, "models": {}}
            continue
        [item] = totals
        models: Counter[str] = Counter()
        for entry in item["totals_by_model_feature"]:
            models[entry["model"]] += entry["user_initiated_interaction_count"]
        requests = item["user_initiated_interaction_count"] + item["totals_by_cli"]["request_count"]
        if requests > sum(models.values()):
            models["unattributed"] = requests - sum(models.values())
        result[day] = {
            "dau": item["daily_active_users"],
            "requests": requests,
            "models": dict(sorted(models.items())),
        }
    return result


async def test_three_counts_of_dau_requests_and_models_agree(
    github: GithubSandboxClient,
) -> None:
    org = await github.create_org(seats=60, days=40, rows_per_file=9)
    days = days_between(START, END)
    truth = await github.truth(org, START, END)
    assert truth["data_through"] == "2026-03-15"
    expected = {
        day: {k: truth["days"][day][k] for k in ("dau", "requests", "models")} for day in days
    }
    assert [truth["days"][d]["reported"] for d in days] == [d <= "2026-03-15" for d in days]
    assert sum(1 for d in days if expected[d]["dau"] > 0) >= 12
    assert any("unattributed" in expected[d]["models"] for d in days)
    for day in days:
        assert sum(expected[day]["models"].values()) == expected[day]["requests"]
    assert await counts_from_user_rows(github, org, days) == expected
    assert await counts_from_aggregates(github, org, days) == expected

    # Per member, from the rows of every published day.
    members: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"active_days": 0, "requests": 0, "models": Counter()}
    )
    for day in days:
        for row in await github.report_rows(org, "users-1-day", day):
            requests, models = requests_and_models(row)
            member = members[row["user_login"]]
            member["active_days"] += 1
            member["requests"] += requests
            member["models"].update(models)
    for login, member in truth["members"].items():
        counted = members.get(login, {"active_days": 0, "requests": 0, "models": Counter()})
        assert member["active_days"] == counted["active_days"], login
        assert member["requests"] == counted["requests"], login
        assert member["models"] == dict(sorted(counted["models"].items())), login
    assert set(members) <= set(truth["members"])


async def test_spend_from_seats_and_premium_requests_agrees_with_truth(
    github: GithubSandboxClient, clock: ManualClock
) -> None:
    org = await github.create_org(seats=50, days=40)
    days = days_between("2026-02-20", "2026-04-02")
    truth = await github.truth(org, days[0], days[-1])
    billing = await github.call_ok(org, f"/orgs/{org.org}/copilot/billing")
    seats = await github.seats(org)

    def price(seat: dict[str, Any]) -> int:
        plan = billing["plan_type"] if seat["plan_type"] == "unknown" else seat["plan_type"]
        return PRICES[plan]

    def cost(seat: dict[str, Any], day: str) -> Fraction:
        created = datetime.fromisoformat(seat["created_at"]).astimezone(UTC).date().isoformat()
        ends = seat["pending_cancellation_date"]
        if created > day or (ends is not None and ends <= day):
            return Fraction(0)
        d = date.fromisoformat(day)
        return Fraction(price(seat), calendar.monthrange(d.year, d.month)[1])

    for day in days:
        seat_cents = sum((cost(seat, day) for seat in seats), Fraction(0))
        assert truth["days"][day]["seat_cents"] == exact_cents(seat_cents), day
    assert truth["days"]["2026-04-02"]["seat_cents"] != truth["days"]["2026-03-31"]["seat_cents"]

    premium_path = f"/organizations/{org.org}/settings/billing/premium_request/usage"
    month_total = Decimal(0)
    for day in days:
        d = date.fromisoformat(day)
        params = {"year": d.year, "month": d.month, "day": d.day}
        usage = await github.call_ok(org, premium_path, params=params)
        net = sum((Decimal(str(i["netAmount"])) * 100 for i in usage["usageItems"]), Decimal(0))
        assert Decimal(truth["days"][day]["premium_cents"]) == net, day
        if d.month == 3:
            month_total += net
    assert truth["days"]["2026-03-17"]["premium_cents"] != "0"
    assert truth["days"]["2026-03-18"]["premium_cents"] == "0", "today is not billed yet"
    march = await github.call_ok(org, premium_path, params={"year": 2026, "month": 3})
    assert march["timePeriod"] == {"year": 2026, "month": 3}
    assert sum(Decimal(str(i["netAmount"])) * 100 for i in march["usageItems"]) == month_total

    now = clock.now()
    last_used = [
        None if s["last_activity_at"] is None else datetime.fromisoformat(s["last_activity_at"])
        for s in seats
    ]
    assert truth["seats"] == {
        "total": len(seats),
        "never_used": sum(1 for t in last_used if t is None),
        "active_30d": sum(
            1 for t in last_used if t is not None and t.timestamp() >= now - 30 * 86400
        ),
        "monthly_cents": str(sum(price(seat) for seat in seats)),
    }
    for seat in seats:
        login = seat["assignee"]["login"]
        spent = sum((cost(seat, day) for day in days), Fraction(0))
        assert truth["members"][login]["spend_cents"] == exact_cents(spent), login


async def test_late_rows_reach_the_reports_and_the_truth_alike(
    github: GithubSandboxClient,
) -> None:
    org = await github.create_org()
    before = await github.truth(org, "2026-03-10", "2026-03-10")
    logins = await github.add_late_rows(org, "2026-03-10", 3)
    assert len(logins) == 3
    after = await github.truth(org, "2026-03-10", "2026-03-10")
    assert after["days"]["2026-03-10"]["dau"] == before["days"]["2026-03-10"]["dau"] + 3
    rows = await github.report_rows(org, "users-1-day", "2026-03-10")
    assert {r["user_login"] for r in rows} >= set(logins)
    expected = {k: after["days"]["2026-03-10"][k] for k in ("dau", "requests", "models")}
    assert (await counts_from_user_rows(github, org, ["2026-03-10"]))["2026-03-10"] == expected
    aggregates = await counts_from_aggregates(github, org, ["2026-03-10"])
    assert aggregates["2026-03-10"] == expected


async def test_visible_until_freezes_publication_while_the_clock_moves(
    github: GithubSandboxClient, clock: ManualClock
) -> None:
    org = await github.create_org(visible_until_ms=int(clock.now() * 1000))
    before = await github.truth(org, START, END)
    clock.advance(3 * 86400)
    after = await github.truth(org, START, END)
    assert after["data_through"] == before["data_through"] == "2026-03-15"
    assert after["days"] == before["days"]
    assert after["seats"] == before["seats"]
    assert (await github.report(org, "users-1-day", "2026-03-16"))["download_links"] == []


async def test_same_seed_same_org(github: GithubSandboxClient) -> None:
    first = await github.create_org(seed=5)
    second = await github.create_org(seed=5)
    other = await github.create_org(seed=6)
    assert first.org != second.org
    truths = [await github.truth(o, START, END) for o in (first, second, other)]
    assert truths[0]["days"] == truths[1]["days"]
    assert truths[0]["members"] == truths[1]["members"]
    assert truths[0]["days"] != truths[2]["days"]
    rows = [await github.report_rows(o, "users-1-day", "2026-03-10") for o in (first, second)]
    assert rows[0] == rows[1]


async def test_premium_usage_filters_by_user_and_model(github: GithubSandboxClient) -> None:
    org = await github.create_org()
    truth = await github.truth(org, "2026-03-01", "2026-03-31")
    path = f"/organizations/{org.org}/settings/billing/premium_request/usage"
    march = await github.call_ok(org, path, params={"year": 2026, "month": 3})
    paying = [login for login, m in truth["members"].items() if m["premium_cents"] != "0"]
    assert len(paying) >= 3
    for login in paying[:3]:
        usage = await github.call_ok(org, path, params={"year": 2026, "month": 3, "user": login})
        assert usage["user"] == login
        net = sum(Decimal(str(i["netAmount"])) * 100 for i in usage["usageItems"])
        assert net == Decimal(truth["members"][login]["premium_cents"]), login
    for item in march["usageItems"]:
        params = {"year": 2026, "month": 3, "model": item["model"]}
        [only] = (await github.call_ok(org, path, params=params))["usageItems"]
        assert only == item
        assert item["netQuantity"] == item["grossQuantity"] - item["discountQuantity"]
    none = await github.call_ok(org, path, params={"year": 2026, "month": 3, "product": "Actions"})
    assert none["usageItems"] == []
    bad = await github.call(org, path, params={"year": 2026, "month": 13})
    assert bad.status_code == 400


async def test_a_premium_spike_reaches_the_billing_route_and_the_truth_alike(
    github: GithubSandboxClient,
) -> None:
    org = await github.create_org()
    day, other = "2026-03-10", "2026-03-11"
    path = f"/organizations/{org.org}/settings/billing/premium_request/usage"
    params = {"year": 2026, "month": 3, "day": 10}
    before_truth = await github.truth(org, day, other)
    before = await github.call_ok(org, path, params=params)
    assert await github.add_premium_spike(org, day, 1000) == 1000
    assert await github.add_premium_spike(org, day, 500) == 1500  # spikes add up
    after_truth = await github.truth(org, day, other)
    after = await github.call_ok(org, path, params=params)

    def net_cents(usage: dict[str, Any]) -> Decimal:
        return sum((Decimal(str(i["netAmount"])) * 100 for i in usage["usageItems"]), Decimal(0))

    # 1500 premium requests at 4 cents, none discounted, on that day only.
    assert net_cents(after) - net_cents(before) == 6000
    assert Decimal(after_truth["days"][day]["premium_cents"]) == (
        Decimal(before_truth["days"][day]["premium_cents"]) + 6000
    )
    assert net_cents(after) == Decimal(after_truth["days"][day]["premium_cents"])
    assert after_truth["days"][other] == before_truth["days"][other]
    # Billed to the organisation: no member's premium usage changes.
    assert after_truth["members"] == before_truth["members"]
    opus = await github.call_ok(org, path, params={**params, "model": "claude opus 4.5"})
    assert any(i["netQuantity"] >= 1500 for i in opus["usageItems"])
    refused = await github.http.post(
        f"/_sandbox/github/orgs/{org.org}/premium-spike", json={"day": "2027-01-01", "requests": 1}
    )
    assert refused.status_code == 400
