"""Reading usage events page by page stays exact and bounded while the data moves."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from koalr_syncer.fetch import (
    EventsRead,
    UsageKeptChangingError,
    read_daily_usage,
    read_spend,
    read_usage_events,
)
from tests.syncer.fakes import FakeCursor, FakeTime, client_for, day_end, event

DAYS = [date(2026, 3, 10) + timedelta(days=i) for i in range(4)]
NOW_MS = day_end(DAYS[-1]) + 3_600_000


def busy_days(per_day: int) -> list[dict[str, object]]:
    """``per_day`` events on each of DAYS, two members, alternating models, 0.01 cent steps."""
    return [
        event(day, 1000 + i * 7, f"m{i % 2}@x.io", ["gpt-5", "auto"][i % 3 % 2], "0.01")
        for day in DAYS
        for i in range(per_day)
    ]


def total_requests(days: list[date], read: EventsRead) -> int:
    tally = read.tally
    return sum(m.requests for d in days for e in tally.members_on(d) for m in tally.models(e, d))


async def test_a_full_read_covers_every_event_once() -> None:
    fake = FakeCursor(busy_days(700))  # 2,800 events: three pages
    client, http = client_for(fake.handler, FakeTime())
    async with http:
        read = await read_usage_events(
            client, DAYS[0], DAYS[-1], now_ms=NOW_MS, page_budget=100, out_of_time=lambda: False
        )
    assert read.complete_from == DAYS[0]
    assert read.pages == 3
    assert total_requests(DAYS, read) == 2800
    cents = sum(
        (
            m.charged_cents
            for d in DAYS
            for e in read.tally.members_on(d)
            for m in read.tally.models(e, d)
        ),
        Decimal(0),
    )
    assert cents == Decimal("28.00")


async def test_later_pages_are_pinned_to_the_newest_event_of_the_first() -> None:
    fake = FakeCursor(busy_days(700))
    newest = max(int(str(e["timestamp"])) for e in fake.events)

    def newer_event_appears(cursor: FakeCursor, page: int) -> None:
        if page > 1:  # a newer event becomes visible while paging
            cursor.events.append(event(DAYS[-1], 80_000_000 + page, "late@x.io", "auto", "1"))

    fake.before_page = newer_event_appears
    client, http = client_for(fake.handler, FakeTime())
    async with http:
        read = await read_usage_events(
            client, DAYS[0], DAYS[-1], now_ms=NOW_MS, page_budget=100, out_of_time=lambda: False
        )
    assert fake.bodies[0]["endDate"] == day_end(DAYS[-1])
    assert {b["endDate"] for b in fake.bodies[1:]} == {newest}
    assert total_requests(DAYS, read) == 2800  # nothing skipped or counted twice


async def test_the_window_never_ends_after_now() -> None:
    fake = FakeCursor(busy_days(10))
    client, http = client_for(fake.handler, FakeTime())
    now_ms = day_end(DAYS[-1]) - 5_000_000
    async with http:
        await read_usage_events(
            client, DAYS[0], DAYS[-1], now_ms=now_ms, page_budget=100, out_of_time=lambda: False
        )
    assert fake.bodies[0]["endDate"] == now_ms


async def test_the_budget_stops_at_a_day_boundary() -> None:
    fake = FakeCursor(busy_days(700))
    client, http = client_for(fake.handler, FakeTime())
    async with http:
        read = await read_usage_events(
            client, DAYS[0], DAYS[-1], now_ms=NOW_MS, page_budget=1, out_of_time=lambda: False
        )
    # Page 1 holds the newest 1,000 events: day 4 whole and part of day 3.
    assert read.pages == 1
    assert read.complete_from == DAYS[3]
    assert total_requests(DAYS, read) == 700
    assert read.tally.members_on(DAYS[2]) == set()


async def test_at_least_one_day_completes_even_past_the_budget() -> None:
    fake = FakeCursor(busy_days(1500))  # the newest day alone needs two pages
    client, http = client_for(fake.handler, FakeTime())
    async with http:
        read = await read_usage_events(
            client, DAYS[0], DAYS[-1], now_ms=NOW_MS, page_budget=1, out_of_time=lambda: True
        )
    assert read.pages == 2
    assert read.complete_from == DAYS[3]
    assert total_requests(DAYS, read) == 1500


async def test_data_changing_inside_the_window_restarts_the_read() -> None:
    fake = FakeCursor(busy_days(700))
    inserted: list[bool] = []

    def late_arrival_once(cursor: FakeCursor, page: int) -> None:
        if page == 2 and not inserted:
            inserted.append(True)
            cursor.events.append(event(DAYS[1], 5, "late@x.io", "auto", "1"))

    fake.before_page = late_arrival_once
    client, http = client_for(fake.handler, FakeTime())
    async with http:
        read = await read_usage_events(
            client, DAYS[0], DAYS[-1], now_ms=NOW_MS, page_budget=100, out_of_time=lambda: False
        )
    assert total_requests(DAYS, read) == 2801
    assert [b["page"] for b in fake.bodies] == [1, 2, 1, 2, 3]


async def test_data_that_keeps_changing_fails_the_read() -> None:
    fake = FakeCursor(busy_days(700))

    def always_late(cursor: FakeCursor, page: int) -> None:
        if page == 2:
            cursor.events.append(event(DAYS[1], len(cursor.bodies), "late@x.io", "auto", "1"))

    fake.before_page = always_late
    client, http = client_for(fake.handler, FakeTime())
    async with http:
        with pytest.raises(UsageKeptChangingError, match="kept changing") as failed:
            await read_usage_events(
                client, DAYS[0], DAYS[-1], now_ms=NOW_MS, page_budget=100, out_of_time=lambda: False
            )
    # Reading later works: the run retries it, and the days stay incomplete until then.
    assert failed.value.retryable
    assert failed.value.code == "provider_unavailable"
    assert "retried later" not in str(failed.value)


async def test_daily_usage_and_spend_read_every_page() -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        calls.append((request.url.path, body))
        page = body["page"]
        if request.url.path == "/teams/daily-usage-data":
            rows = [{"email": f"u{page}@x.io", "day": "2026-03-10", "isActive": True}]
            return httpx.Response(
                200, json={"data": rows, "pagination": {"page": page, "totalPages": 3}}
            )
        rows = [{"email": f"s{page}@x.io", "spendCents": 1, "overallSpendCents": 2}]
        return httpx.Response(
            200, json={"teamMemberSpend": rows, "totalPages": 2, "subscriptionCycleStart": 0}
        )

    client, http = client_for(handler, FakeTime())
    async with http:
        rows, usage_calls = await read_daily_usage(client, DAYS[0], DAYS[-1])
        spend, cycle_start = await read_spend(client)
    assert [r.email for r in rows] == ["u1@x.io", "u2@x.io", "u3@x.io"]
    assert usage_calls == 3
    assert [r.email for r in spend] == ["s1@x.io", "s2@x.io"]
    assert cycle_start == date(1970, 1, 1)
    usage_bodies = [b for p, b in calls if p == "/teams/daily-usage-data"]
    assert usage_bodies[0]["pageSize"] == 1000
    assert usage_bodies[0]["endDate"] - usage_bodies[0]["startDate"] == 3 * 86_400_000
