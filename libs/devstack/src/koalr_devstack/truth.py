"""A summary entry of the metrics API against the sandbox's ground truth, for both providers.

Each ``*_differences`` function lists every way an admin summary entry differs from the truth over
the entry's own range (empty when they agree), so a failed check says what is wrong, not just that
something is. Pure functions: the caller fetches the entry and the truth (parsed with ``Decimal``
for numbers, so money compares exactly).
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal
from typing import Any


def range_start(entry: dict[str, Any]) -> date:
    """The first day of a summary entry's range."""
    return date.fromisoformat(entry["dau"][0]["date"])


def cursor_differences(entry: dict[str, Any], truth: dict[str, Any]) -> list[str]:
    """Every way a Cursor entry differs from ``truth`` (the sandbox's truth over the entry's
    range): each day's DAU, requests and spend, the total, the model mix and the billing cycle."""
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
    """A Copilot day's spend (architecture section 6b): premium requests plus the seats' cost."""
    return Decimal(day["premium_cents"]) + Decimal(day["seat_cents"])


def copilot_differences(
    entry: dict[str, Any], truth: dict[str, Any], month: dict[str, Any], month_start: date
) -> list[str]:
    """Every way a Copilot entry differs from ``truth`` (over the entry's range) and ``month``
    (the truth from ``month_start``, the billing month, to the same end): each day's DAU,
    requests and spend, the model mix, the totals, the billing month, the seats block and
    ``data_through``."""
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
    cycle_total = sum((copilot_day_cents(d) for d in month["days"].values()), Decimal(0))
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
        or {**got_seats, "monthly_cents": Decimal(str(got_seats["monthly_cents"]))}
        != expected_seats
    ):
        problems.append(f"seats {got_seats} != {expected_seats}")
    if entry["freshness"]["data_through"] != truth["data_through"]:
        problems.append(
            f"data_through {entry['freshness']['data_through']} != {truth['data_through']}"
        )
    return problems
