"""Copilot answers become events per section 6b: requests, models with ``unattributed``, logins,
premium spend per day and one seat per login."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import uuid4

from koalr_providers.github.shapes import CopilotSeat, UserDayRow
from koalr_syncer.copilot import copilot_usage_records, premium_day_spend, seats_snapshot
from koalr_syncer.normalise import Origin

ORIGIN = Origin("org", uuid4(), uuid4(), provider="github_copilot")
DAY = date(2026, 3, 10)
FETCHED = datetime(2026, 3, 14, 8, tzinfo=UTC)


def test_a_row_counts_prompts_or_model_interactions_plus_cli_and_names_the_rest_unattributed() -> (
    None
):
    rows = [
        UserDayRow(
            login="zoe-li",
            user_id=42,
            day=DAY,
            interactions=5,
            model_interactions={"gpt-5": 3, "claude-sonnet-4.5": 0},
            cli_requests=2,
        ),
        # More model-attributed interactions than prompts: the models count.
        UserDayRow(
            login="al-ng", user_id=None, day=DAY, interactions=1, model_interactions={"gpt-5": 4}
        ),
        # Telemetry only: active, no requests.
        UserDayRow(login="bo-wu", user_id=7, day=DAY, interactions=0),
    ]
    records = copilot_usage_records(ORIGIN, DAY, rows, FETCHED)
    got = {
        r.member.login: (r.requests, {m.model: m.requests for m in r.models}, r.member.external_id)
        for r in records
    }
    assert got == {
        "zoe-li": (7, {"gpt-5": 3, "unattributed": 4}, "42"),
        "al-ng": (4, {"gpt-5": 4}, None),
        "bo-wu": (0, {}, "7"),
    }
    assert [r.member.login for r in records] == ["al-ng", "bo-wu", "zoe-li"]
    assert {(r.provider, r.day, r.is_active, r.charged_cents) for r in records} == {
        ("github_copilot", DAY, True, Decimal(0))
    }
    assert all(r.member.email is None for r in records)


def test_premium_spend_is_one_event_per_day_even_at_zero() -> None:
    spend = premium_day_spend(ORIGIN, DAY, Decimal(0), FETCHED)
    assert (spend.day, spend.source, spend.cents, spend.provider) == (
        DAY,
        "premium_requests",
        Decimal(0),
        "github_copilot",
    )


def test_a_login_listed_twice_holds_one_seat() -> None:
    def seat(login: str, plan_type: str) -> CopilotSeat:
        return CopilotSeat(
            login=login,
            user_id=1,
            plan_type="business" if plan_type == "business" else "unknown",
            created_at=datetime(2026, 1, 5, tzinfo=UTC),
            pending_cancellation_date=None,
            last_activity_at=None,
            last_activity_editor=None,
        )

    snapshot = seats_snapshot(
        ORIGIN, "enterprise", [seat("b", "business"), seat("a", "x"), seat("b", "y")], FETCHED
    )
    assert [(s.member.login, s.plan_type) for s in snapshot.seats] == [
        ("a", "unknown"),
        ("b", "unknown"),
    ]
    assert snapshot.plan == "enterprise"
