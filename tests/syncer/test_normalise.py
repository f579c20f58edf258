"""Normalisation follows the definitions: one record per member-day, exact money."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import uuid4

import pytest
from pydantic import ValidationError

from koalr_providers.cursor.shapes import (
    DailyUsageRow,
    SpendRow,
    UsageEvent,
    day_start_ms,
    usage_event,
)
from koalr_syncer.normalise import (
    EventTally,
    MemberInfo,
    Origin,
    cycle_spend_snapshot,
    usage_records,
)

D1, D2 = date(2026, 3, 16), date(2026, 3, 17)
FETCHED = datetime(2026, 3, 18, 12, tzinfo=UTC)
ORIGIN = Origin(org_id="org_1", integration_id=uuid4(), correlation_id=uuid4())


def row(email: str, day: date, *, active: bool, chat: int = 0, agent: int = 0) -> DailyUsageRow:
    return DailyUsageRow(
        email=email,
        day=day,
        is_active=active,
        chat=chat,
        agent=agent,
        composer=0,
        cmdk=0,
        lines_added=10 if active else 0,
        lines_accepted=4 if active else 0,
        tabs_shown=0,
        tabs_accepted=0,
        user_id="42",
    )


def ev(email: str | None, day: date, model: str, cents: str, ms: int = 0) -> UsageEvent:
    return usage_event(email, day_start_ms(day) + ms, model, Decimal(cents))


def test_records_per_member_day_with_models_and_exact_cents() -> None:
    tally = EventTally()
    tally.add_all(
        [
            ev("ann@x.io", D1, "gpt-5", "0.1"),
            ev("ann@x.io", D1, "gpt-5", "0.2", ms=1),
            ev("ann@x.io", D1, "claude-4.5-sonnet", "21.36232", ms=2),
            ev("bob@x.io", D2, "auto", "0", ms=3),  # events but no daily-usage row
            ev(None, D2, "auto", "5"),  # no email: cannot be attributed
        ]
    )
    rows = [
        row("ann@x.io", D1, active=True, chat=2, agent=1),
        row("cid@x.io", D1, active=False),  # inactive rows are kept
        row("ann@x.io", date(2026, 3, 1), active=True),  # outside the days asked for
    ]
    records = usage_records(
        ORIGIN,
        days=[D1, D2],
        rows=rows,
        tally=tally,
        directory={"ann@x.io": MemberInfo("Ann", "user_ann")},
        fetched_at=FETCHED,
    )
    by_key = {(r.day, r.member.key): r for r in records}
    assert sorted(by_key) == [(D1, "ann@x.io"), (D1, "cid@x.io"), (D2, "bob@x.io")]
    ann = by_key[(D1, "ann@x.io")]
    assert ann.is_active is True
    assert ann.requests == 3
    assert ann.charged_cents == Decimal("21.66232")
    assert [(m.model, m.requests, m.charged_cents) for m in ann.models] == [
        ("claude-4.5-sonnet", 1, Decimal("21.36232")),
        ("gpt-5", 2, Decimal("0.3")),
    ]
    assert ann.requests_by_kind == {"chat": 2, "agent": 1, "composer": 0, "cmdk": 0}
    assert (ann.lines_added, ann.lines_accepted) == (10, 4)
    assert (ann.member.name, ann.member.external_id) == ("Ann", "user_ann")
    assert ann.fetched_at == FETCHED
    assert ann.correlation_id == ORIGIN.correlation_id
    cid = by_key[(D1, "cid@x.io")]
    assert (cid.is_active, cid.requests, cid.models, cid.member.external_id) == (
        False,
        0,
        (),
        "42",
    )
    bob = by_key[(D2, "bob@x.io")]
    assert (bob.is_active, bob.requests, bob.requests_by_kind, bob.lines_added) == (
        True,
        1,
        {},
        None,
    )
    assert tally.without_email == 1


def test_dropping_days_forgets_their_events() -> None:
    tally = EventTally()
    tally.add_all([ev("ann@x.io", D1, "gpt-5", "1"), ev("ann@x.io", D2, "gpt-5", "2")])
    tally.drop_days_before(D2)
    assert tally.members_on(D1) == set()
    assert tally.members_on(D2) == {"ann@x.io"}


def test_cycle_snapshot_totals_the_members_overall_spend() -> None:
    snapshot = cycle_spend_snapshot(
        ORIGIN,
        [
            SpendRow("ann@x.io", "Ann", "user_a", Decimal("1.5"), Decimal("3200.750456")),
            SpendRow("bob@x.io", "Bob", None, None, Decimal("0.249544")),
        ],
        date(2026, 3, 4),
        FETCHED,
    )
    assert snapshot.total_cents == Decimal("3201.000000")
    assert snapshot.cycle_start == date(2026, 3, 4)
    assert [m.member.email for m in snapshot.members] == ["ann@x.io", "bob@x.io"]


def test_without_a_cycle_start_the_calendar_month_is_the_cycle() -> None:
    snapshot = cycle_spend_snapshot(ORIGIN, [], None, FETCHED)
    assert snapshot.cycle_start == date(2026, 3, 1)
    assert snapshot.total_cents == Decimal(0)


def test_a_negative_amount_is_refused_rather_than_published() -> None:
    tally = EventTally()
    tally.add(ev("ann@x.io", D1, "gpt-5", "-1"))
    with pytest.raises(ValidationError):
        usage_records(ORIGIN, days=[D1], rows=[], tally=tally, directory={}, fetched_at=FETCHED)
