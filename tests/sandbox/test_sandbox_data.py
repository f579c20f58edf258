"""The generated world: deterministic, internally consistent and realistic in its rhythms."""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from koalr_sandbox.catalog import MODEL_NAMES, PERSONAS, Billing
from koalr_sandbox.clock import ManualClock
from koalr_sandbox.data import TeamData, cycle_start_day, generate_day
from koalr_sandbox.roster import build_roster
from koalr_sandbox.testing import SandboxClient
from koalr_sandbox.units import DAY_MS, cents_float, cents_str, day_start_ms

TODAY = date(2026, 3, 18).toordinal()


def test_models_are_in_alphabetical_order() -> None:
    assert list(MODEL_NAMES) == sorted(MODEL_NAMES)
    assert len(MODEL_NAMES) >= 6


async def test_same_seed_same_data(sandbox: SandboxClient, clock: ManualClock) -> None:
    now_ms = int(clock.now() * 1000)
    snapshots = []
    for _ in range(2):
        team = await sandbox.create_team(seed=1234)
        truth = await sandbox.truth(team, "2026-02-20", "2026-03-18")
        truth.pop("team_id")
        snapshots.append(
            (
                await sandbox.cursor_ok(team, "GET", "/teams/members"),
                await sandbox.usage_events(team, now_ms - 10 * DAY_MS, now_ms),
                await sandbox.cursor_ok(team, "POST", "/teams/spend", body={}),
                truth,
            )
        )
    assert snapshots[0] == snapshots[1]
    other = await sandbox.create_team(seed=1235)
    assert (await sandbox.cursor_ok(other, "GET", "/teams/members")) != snapshots[0][0]
    assert (await sandbox.usage_events(other, now_ms - 10 * DAY_MS, now_ms)) != snapshots[0][1]


def test_a_day_does_not_depend_on_generation_order_or_cache() -> None:
    roster = build_roster(5, 40, TODAY - 30, TODAY)
    fresh = generate_day(roster, 77, TODAY - 3)
    data = TeamData(roster, 5, event_cache_events=1)  # every new day evicts the previous one
    first = [data.events(day).timestamp_ms.copy() for day in range(TODAY - 10, TODAY)]
    again = [data.events(day).timestamp_ms for day in reversed(range(TODAY - 10, TODAY))]
    assert all(np.array_equal(a, b) for a, b in zip(first, reversed(again), strict=True))
    latest = data.events(TODAY - 1)
    assert data.events_held == latest.size > 0  # only the most recent day is held
    replay = generate_day(roster, 77, TODAY - 3)
    for name in ("timestamp_ms", "member", "model", "charged_units", "conversation"):
        assert np.array_equal(getattr(fresh, name), getattr(replay, name)), name


def test_roster() -> None:
    roster = build_roster(11, 1000, TODAY - 90, TODAY)
    members = roster.members
    assert len({m.email for m in members}) == 1000
    assert len({m.user_id for m in members}) == 1000
    assert len({m.user_number for m in members}) == 1000
    assert members[0].role == "owner"
    assert Counter(m.role for m in members)["free-owner"] == 1
    assert {m.persona for m in members} == {p.name for p in PERSONAS}
    assert all(m.email.endswith("@" + roster.domain) for m in members)
    joiners = [m for m in members if m.join_day > roster.history_start]
    leavers = [m for m in members if m.removal_day is not None]
    assert 40 <= len(joiners) <= 120
    assert 30 <= len(leavers) <= 90
    assert all(roster.history_start < m.join_day <= TODAY for m in joiners)
    assert all(roster.history_start < m.removal_day <= TODAY for m in leavers if m.removal_day)
    assert 1 <= roster.cycle_day_of_month <= 28


def test_small_teams_have_every_kind_of_member() -> None:
    roster = build_roster(3, 6, TODAY - 10, TODAY)
    personas = {m.persona for m in roster.members}
    assert {"heavy", "tab-only", "idle"} <= personas


def test_no_activity_outside_membership_and_unique_event_keys() -> None:
    roster = build_roster(21, 60, TODAY - 40, TODAY)
    data = TeamData(roster, 21)
    changed = [m for m in roster.members if m.join_day > roster.history_start or m.removal_day]
    assert changed
    for day in range(TODAY - 45, TODAY + 1):
        events = data.events(day)
        active_members = set(events.member.tolist())
        for m in changed:
            if not (m.join_day <= day and (m.removal_day is None or day < m.removal_day)):
                assert m.index not in active_members
                assert events.tabs_accepted[m.index] == 0
        keys = list(zip(events.timestamp_ms.tolist(), events.member.tolist(), strict=True))
        assert len(set(keys)) == len(keys)
        start = day_start_ms(day)
        assert all(start <= ts < start + DAY_MS for ts, _ in keys)
        if day < roster.history_start:
            assert events.size == 0


def test_rhythms_personas_and_mix() -> None:
    roster = build_roster(8, 400, TODAY - 60, TODAY)
    data = TeamData(roster, 8)
    weekday: list[int] = []
    weekend: list[int] = []
    per_member = np.zeros(len(roster), dtype=np.int64)
    models: Counter[int] = Counter()
    billing: Counter[int] = Counter()
    tab_only_days = 0
    for day in range(TODAY - 28, TODAY):
        summary = data.summary(day, 1 << 62)
        total = int(summary.requests.sum())
        (weekend if date.fromordinal(day).weekday() >= 5 else weekday).append(total)
        per_member += summary.requests
        tab_only_days += int((summary.active & (summary.requests == 0)).sum())
        events = data.events(day)
        models.update(events.model.tolist())
        billing.update(events.billing.tolist())
    assert np.mean(weekday) > 4 * np.mean(weekend) > 0
    assert tab_only_days > 20
    by_persona = {
        name: float(np.mean([per_member[m.index] for m in roster.members if m.persona == name]))
        for name in ("heavy", "moderate", "light", "idle")
    }
    assert by_persona["heavy"] > by_persona["moderate"] > by_persona["light"] > by_persona["idle"]
    assert sum(1 for n in per_member if n == 0) > 0  # some members never make a request
    shares = {MODEL_NAMES[k]: n / sum(models.values()) for k, n in models.items()}
    assert len(shares) == len(MODEL_NAMES)
    assert max(shares.values()) < 0.45
    assert shares["claude-4.5-sonnet"] > shares["claude-4.1-opus"]
    assert billing[Billing.INCLUDED] > billing[Billing.USAGE_BASED] > billing[Billing.API_KEY] > 0


async def test_money_has_at_most_five_decimals(sandbox: SandboxClient, clock: ManualClock) -> None:
    team = await sandbox.create_team(members=30)
    now_ms = int(clock.now() * 1000)
    events = await sandbox.usage_events(team, now_ms - 3 * DAY_MS, now_ms)
    amounts: list[Any] = []
    for event in events:
        amounts.append(event["chargedCents"])
        amounts.extend(event[key] for key in ("cursorTokenFee",) if key in event)
        if "tokenUsage" in event:
            amounts.append(event["tokenUsage"]["totalCents"])
    fractional = [Decimal(a) for a in amounts if isinstance(a, Decimal)]
    assert fractional
    assert all(-d.as_tuple().exponent <= 5 for d in fractional)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("units", "text", "number"),
    [(0, "0", 0.0), (1, "0.00001", 0.00001), (123456789, "1234.56789", 1234.56789),
     (250000, "2.5", 2.5), (-150000, "-1.5", -1.5), (10**15 + 7, "10000000000.00007", 1e10 + 7e-5)],
)  # fmt: skip
def test_money_formatting(units: int, text: str, number: float) -> None:
    assert cents_str(units) == text
    assert cents_float(units) == number
    assert Decimal(repr(cents_float(units))) == Decimal(text)


@pytest.mark.parametrize(
    ("day", "day_of_month", "expected"),
    [
        (date(2026, 3, 18), 13, date(2026, 3, 13)),
        (date(2026, 3, 13), 13, date(2026, 3, 13)),
        (date(2026, 3, 12), 13, date(2026, 2, 13)),
        (date(2026, 1, 5), 28, date(2025, 12, 28)),
        (date(2026, 3, 1), 1, date(2026, 3, 1)),
    ],
)
def test_cycle_start(day: date, day_of_month: int, expected: date) -> None:
    assert cycle_start_day(day.toordinal(), day_of_month) == expected.toordinal()
