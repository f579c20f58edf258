"""Billing and seats: the plan, the seat breakdown, Link pagination and the seat fields."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from koalr_sandbox.testing import GithubSandboxClient

SEAT_FIELDS = {
    "created_at", "updated_at", "pending_cancellation_date", "last_activity_at",
    "last_activity_editor", "last_authenticated_at", "plan_type", "assignee", "organization",
    "assigning_team",
}  # fmt: skip
OFFSET_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")


async def test_seats_are_link_paginated_with_total_seats(github: GithubSandboxClient) -> None:
    org = await github.create_org(seats=120)
    path = f"/orgs/{org.org}/copilot/billing/seats"
    first = await github.call(org, path)
    assert first.status_code == 200
    assert first.json()["total_seats"] == 120
    assert len(first.json()["seats"]) == 50, "per_page defaults to 50"
    assert set(first.links) == {"next", "last"}
    assert first.links["next"]["url"].endswith(f"{path}?per_page=50&page=2")
    assert first.links["last"]["url"].endswith(f"{path}?per_page=50&page=3")
    last = await github.call(org, first.links["last"]["url"])
    assert len(last.json()["seats"]) == 20
    assert set(last.links) == {"first", "prev"}
    assert last.links["prev"]["url"].endswith(f"{path}?per_page=50&page=2")
    middle = await github.call(org, f"{path}?page=2")
    assert set(middle.links) == {"next", "last", "first", "prev"}
    capped = await github.call(org, f"{path}?per_page=500")
    assert len(capped.json()["seats"]) == 100, "per_page is at most 100"
    assert capped.links["last"]["url"].endswith("per_page=100&page=2")
    beyond = await github.call(org, f"{path}?page=9")
    assert beyond.json() == {"total_seats": 120, "seats": []}
    logins = [s["assignee"]["login"] for s in await github.seats(org, per_page=7)]
    assert len(logins) == len(set(logins)) == 120


async def test_one_page_has_no_link_header(github: GithubSandboxClient) -> None:
    org = await github.create_org(seats=40)
    response = await github.call(org, f"/orgs/{org.org}/copilot/billing/seats")
    assert "link" not in response.headers
    assert len(response.json()["seats"]) == 40


async def test_seat_fields_as_documented(github: GithubSandboxClient) -> None:
    org = await github.create_org(seats=200, plan="enterprise")
    seats = await github.seats(org)
    for seat in seats:
        assert set(seat) == SEAT_FIELDS
        assert OFFSET_TIMESTAMP.match(seat["created_at"])
        assert seat["plan_type"] in {"enterprise", "unknown"}
        assert seat["assignee"]["type"] == "User"
        assert isinstance(seat["assignee"]["id"], int)
        if seat["last_activity_at"] is None:
            assert seat["last_activity_editor"] is None
        else:
            assert OFFSET_TIMESTAMP.match(seat["last_activity_at"])
            assert seat["last_activity_editor"].count("/") == 3
    never_used = [s for s in seats if s["last_activity_at"] is None]
    pending = [s for s in seats if s["pending_cancellation_date"] is not None]
    assert never_used, "some seats were never used"
    assert {s["pending_cancellation_date"] for s in pending} == {"2026-04-01"}
    assert any(s["plan_type"] == "unknown" for s in seats)
    assert any(s["assigning_team"] is None for s in seats)
    assert any(s["assigning_team"] is not None for s in seats)
    billing = await github.call_ok(org, f"/orgs/{org.org}/copilot/billing")
    assert billing["plan_type"] == "enterprise"
    breakdown = billing["seat_breakdown"]
    assert breakdown["total"] == 200
    assert breakdown["pending_cancellation"] == len(pending)
    assert breakdown["active_this_cycle"] + breakdown["inactive_this_cycle"] == 200
    assert breakdown["active_this_cycle"] == sum(
        1
        for s in seats
        if s["last_activity_at"] is not None
        and datetime.fromisoformat(s["last_activity_at"]).astimezone(UTC).month == 3
    )
    assert billing["seat_management_setting"] in {
        "assign_all", "assign_selected", "disabled", "unconfigured",
    }  # fmt: skip
