"""The sandbox's ground truth against what the pipeline shows, for both providers.

Each ``*_differences`` function lists every way a summary entry differs from the truth over the
entry's own range (empty when they agree), so a failing test says what is wrong, not just that
something is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from tests.e2e.client import Platform, today_utc, wait_for

Differences = Callable[[Platform, str, dict[str, Any]], list[str]]


def end_of_yesterday_ms() -> int:
    """Sandbox visibility frozen here keeps the truth still while the clock moves."""
    midnight = datetime.combine(today_utc(), datetime.min.time(), tzinfo=UTC)
    return int(midnight.timestamp() * 1000) - 1


def new_team(platform: Platform, **spec: Any) -> dict[str, str]:
    """A Cursor team whose visible data ends with yesterday."""
    return platform.create_team(
        **{"plan": "business", "days": 45, "visibility_delay_s": 0, **spec},
        visible_until_ms=end_of_yesterday_ms(),
    )


def new_github_org(platform: Platform, **spec: Any) -> dict[str, str]:
    """A GitHub organisation whose publication, premium usage and seat activity end with
    yesterday (so its ``data_through`` is the truth's, about four days back)."""
    return platform.create_github_org(
        **{"plan": "business", "days": 45, **spec}, visible_until_ms=end_of_yesterday_ms()
    )


def _range_start(entry: dict[str, Any]) -> date:
    return date.fromisoformat(entry["dau"][0]["date"])


def cursor_differences(platform: Platform, team_id: str, entry: dict[str, Any]) -> list[str]:
    """Every way a Cursor admin summary differs from the sandbox's truth over the same range."""
    truth = platform.truth(team_id, _range_start(entry), today_utc())
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


def copilot_day_cents(day: dict[str, Any]) -> Decimal:
    """A Copilot day's spend (section 6b): premium requests plus the seats' cost."""
    return Decimal(day["premium_cents"]) + Decimal(day["seat_cents"])


def copilot_differences(platform: Platform, org: str, entry: dict[str, Any]) -> list[str]:
    """Every way a Copilot admin summary differs from the sandbox's truth (section 6b) over the
    same range: every day's DAU, requests and spend, the model mix, the totals, the billing
    month, the seats block and ``data_through``."""
    start, today = _range_start(entry), today_utc()
    truth = platform.github_truth(org, start, today)
    days: dict[str, Any] = truth["days"]
    problems = []
    if [d["date"] for d in entry["dau"]] != list(days):
        problems.append("the summary's days are not the range's days")
    problems += [f"dau {p}" for p in entry["dau"] if p["active_users"] != days[p["date"]]["dau"]]
    problems += [
        f"requests {p}" for p in entry["requests"] if p["requests"] != days[p["date"]]["requests"]
    ]
    spend = entry["spend"]
    problems += [
        f"spend {p} != {copilot_day_cents(days[p['date']])}"
        for p in spend["daily"]
        if Decimal(p["cents"]) != copilot_day_cents(days[p["date"]])
    ]
    total = sum((copilot_day_cents(d) for d in days.values()), Decimal(0))
    if Decimal(spend["total_cents"]) != total:
        problems.append(f"total spend {spend['total_cents']} != {total}")
    expected_models: Counter[str] = Counter()
    for day in days.values():
        expected_models.update(day["models"])
    models = {m["model"]: m["requests"] for m in entry["models"]}
    if models != {m: n for m, n in expected_models.items() if n}:
        problems.append(f"models {models} != {dict(expected_models)}")
    month_start = today.replace(day=1)
    month = platform.github_truth(org, month_start, today)["days"]
    cycle_total = sum((copilot_day_cents(d) for d in month.values()), Decimal(0))
    cycle = spend.get("cycle") or {}
    if (
        cycle.get("start") != month_start.isoformat()
        or Decimal(str(cycle.get("total_cents"))) != cycle_total
    ):
        problems.append(f"cycle {cycle} != {month_start} {cycle_total}")
    seats = truth["seats"]
    expected_seats = {**seats, "monthly_cents": Decimal(seats["monthly_cents"])}
    got_seats = spend.get("seats")
    if (
        got_seats is None
        or {
            **got_seats,
            "monthly_cents": Decimal(str(got_seats["monthly_cents"])),
        }
        != expected_seats
    ):
        problems.append(f"seats {got_seats} != {expected_seats}")
    if entry["freshness"]["data_through"] != truth["data_through"]:
        problems.append(
            f"data_through {entry['freshness']['data_through']} != {truth['data_through']}"
        )
    return problems


def assert_matches(
    platform: Platform, integration_id: str, external_id: str, differences: Differences
) -> Any:
    """Wait (briefly: the last records may still be in flight) until the admin summary of the
    integration equals the truth, else fail with every difference."""

    def probe() -> Any:
        entry = platform.provider_summary(integration_id)
        return entry if entry and not differences(platform, external_id, entry) else None

    try:
        return wait_for(probe, timeout_s=60, what="the summary to equal the truth", interval_s=1)
    except AssertionError:
        entry = platform.provider_summary(integration_id)
        problems = differences(platform, external_id, entry) if entry else ["no summary entry"]
        raise AssertionError("summary differs from the truth:\n" + "\n".join(problems)) from None


def walk(value: Any) -> list[tuple[str, Any]]:
    """Every (key, value) pair of a JSON document, at any depth."""
    found: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((key, item))
            found.extend(walk(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(walk(item))
    return found
