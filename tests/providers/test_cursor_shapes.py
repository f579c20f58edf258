"""Both the current and the older response shapes of the Cursor API are read correctly."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from koalr_providers.cursor.shapes import (
    parse_daily_usage,
    parse_members,
    parse_spend,
    parse_usage_events,
)
from koalr_providers.errors import ProviderShapeError
from koalr_providers.http import decode_json


def test_members_current_legacy_and_bare_list() -> None:
    current = decode_json(
        b'{"teamMembers": [{"id": "user_P", "name": "Alex", "email": "Dev@Company.com",'
        b' "role": "member", "isRemoved": true}, {"id": 12345, "name": "Sam",'
        b' "email": "admin@company.com", "role": "owner"}]}'
    )
    legacy = decode_json(b'{"teamMembers": [{"name": "Alex", "email": "dev@company.com"}]}')
    bare = decode_json(b'[{"name": "Alex", "email": "dev@company.com", "role": "member"}]')
    members = parse_members(current)
    assert [(m.email, m.external_id, m.is_removed) for m in members] == [
        ("dev@company.com", "user_P", True),
        ("admin@company.com", "12345", False),
    ]
    assert [m.email for m in parse_members(legacy)] == ["dev@company.com"]
    assert parse_members(bare)[0].role == "member"


def test_daily_usage_current_shape_with_pagination() -> None:
    body = decode_json(
        b'{"data": [{"userId": 12345, "day": "2024-03-18", "date": 1710720000000,'
        b' "email": "dev@company.com", "isActive": true, "totalLinesAdded": 1543,'
        b' "acceptedLinesAdded": 1102, "totalTabsShown": 342, "totalTabsAccepted": 289,'
        b' "composerRequests": 45, "chatRequests": 128, "agentRequests": 12, "cmdkUsages": 67,'
        b' "mostUsedModel": "gpt-5"}, {"userId": 12346, "day": "2024-03-18",'
        b' "date": 1710720000000, "email": "idle@company.com", "isActive": false,'
        b' "chatRequests": 0, "mostUsedModel": null}],'
        b' "pagination": {"page": 1, "pageSize": 1000, "totalUsers": 150, "totalPages": 2,'
        b' "hasNextPage": true, "hasPreviousPage": false}}'
    )
    page = parse_daily_usage(body)
    assert page.has_next is True
    active, idle = page.rows
    assert active.day == date(2024, 3, 18)
    assert (active.chat, active.agent, active.composer, active.cmdk) == (128, 12, 45, 67)
    assert (active.lines_added, active.lines_accepted) == (1543, 1102)
    assert (active.tabs_shown, active.tabs_accepted) == (342, 289)
    assert active.user_id == "12345"
    assert idle.is_active is False


def test_daily_usage_older_shape_without_day_user_id_or_pagination() -> None:
    body = decode_json(
        b'{"data": [{"date": 1710720000000, "email": "dev@company.com", "chatRequests": 3},'
        b' {"date": 1710806400000, "email": "dev@company.com", "chatRequests": 0},'
        b' {"date": 1710806400000, "chatRequests": 9}]}'
    )
    page = parse_daily_usage(body)
    assert page.has_next is False
    assert [(r.day, r.is_active) for r in page.rows] == [
        (date(2024, 3, 18), True),
        (date(2024, 3, 19), False),
    ]
    assert page.skipped_rows == 1


def test_usage_events_current_and_older_money() -> None:
    body = decode_json(
        b'{"totalUsageEventsCount": 3, "pagination": {"numPages": 1, "currentPage": 1,'
        b' "pageSize": 1000, "hasNextPage": false, "hasPreviousPage": false}, "usageEvents": ['
        b'{"timestamp": "1750979225854", "userEmail": "Dev@Company.com", "model": "claude-4.5-sonnet",'
        b' "kind": "Usage-based", "isTokenBasedCall": true, "tokenUsage": {"totalCents": 20.18232},'
        b' "chargedCents": 21.36232, "cursorTokenFee": 1.18},'
        b'{"timestamp": "1750978339901", "userEmail": "admin@company.com", "model": "o3",'
        b' "kindLabel": "Usage-based", "isTokenBasedCall": true,'
        b' "tokenUsage": {"totalCents": 20.18232}, "cursorTokenFee": 1.18},'
        b'{"timestamp": 1750978339000, "userEmail": "admin@company.com", "model": "cursor-small",'
        b' "kindLabel": "Included in Business", "isTokenBasedCall": false}]}'
    )
    page = parse_usage_events(body)
    assert page.total == 3
    assert page.has_next is False
    current, legacy, request_based = page.events
    assert current.email == "dev@company.com"
    assert current.charged_cents == Decimal("21.36232")
    assert legacy.charged_cents == Decimal("21.36232")  # totalCents + cursorTokenFee
    assert request_based.charged_cents == Decimal(0)
    assert current.day == date(2025, 6, 26)
    assert request_based.timestamp_ms == 1750978339000


def test_spend_current_and_older_shapes() -> None:
    current = parse_spend(
        decode_json(
            b'{"teamMemberSpend": [{"userId": "user_P", "name": "Alex", "email": "dev@c.com",'
            b' "spendCents": 1875.500123, "overallSpendCents": 3200.750456}],'
            b' "subscriptionCycleStart": 1708992000000, "totalMembers": 1, "totalPages": 1}'
        )
    )
    legacy = parse_spend(
        decode_json(
            b'{"teamMemberSpend": [{"name": "Alex", "email": "dev@c.com", "spendCents": 2450}]}'
        )
    )
    (row,) = current.rows
    assert (row.spend_cents, row.overall_spend_cents) == (
        Decimal("1875.500123"),
        Decimal("3200.750456"),
    )
    assert current.cycle_start == date(2024, 2, 27)
    assert current.total_pages == 1
    (old,) = legacy.rows
    assert (old.spend_cents, old.overall_spend_cents) == (None, Decimal(2450))
    assert legacy.cycle_start is None
    assert legacy.total_pages is None


@pytest.mark.parametrize(
    ("parse", "body", "message"),
    [
        (parse_members, {"teamMembers": "x"}, "expected a list"),
        (parse_daily_usage, {"data": [{"email": "a@b.c"}]}, "neither `day` nor `date`"),
        (
            parse_daily_usage,
            {"data": [{"email": "a@b.c", "day": "2024-01-01", "chatRequests": -1}]},
            "non-negative",
        ),
        (parse_usage_events, {"usageEvents": [{"timestamp": "soon"}]}, "epoch milliseconds"),
        (
            parse_usage_events,
            {"usageEvents": [{"timestamp": "1", "chargedCents": "x"}]},
            "not a number",
        ),
        (parse_spend, [], "expected a JSON object"),
    ],
)
def test_bodies_of_unknown_shape_are_rejected_with_the_reason(
    parse: object, body: object, message: str
) -> None:
    assert callable(parse)
    with pytest.raises(ProviderShapeError, match=message):
        parse(body)
