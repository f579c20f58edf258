"""The summary document and its privacy rules, on hand-made rollups."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from koalr_metrics.analytics import (
    DayRange,
    DayRollup,
    MemberActivity,
    ModelTotal,
    Policy,
    ProviderData,
    StatusReason,
    members_document,
    provider_summary,
    share,
)
from koalr_metrics.jsonio import dumps

RANGE = DayRange.ending(date(2026, 3, 5), 5)  # 1 to 5 March
ID = UUID("00000000-0000-0000-0000-000000000001")


def _data(models: list[ModelTotal], **overrides: object) -> ProviderData:
    fields: dict[str, object] = {
        "integration_id": ID,
        "provider": "cursor",
        "state": None,
        "data_through": None,
        "last_success_at": None,
        "cycle_start": None,
        "cycle_total_cents": None,
        "cycle_spenders": None,
        "days": [
            DayRollup(date(2026, 3, 4), 7, 6, 100, Decimal("10.5")),
            DayRollup(date(2026, 3, 2), 3, 2, 40, Decimal("4.25")),
            DayRollup(date(2026, 3, 3), 1, 0, 0, Decimal(0)),
        ],
        "models": models,
    }
    fields.update(overrides)
    return ProviderData(**fields)  # type: ignore[arg-type]


def rendered(document: object) -> Any:
    """The document as a client reads it (exact decimals)."""
    return json.loads(dumps(document), parse_float=Decimal)


def rendered_summary(data: ProviderData, day_range: DayRange, **kwargs: Any) -> Any:
    return rendered(provider_summary(data, day_range, **kwargs))


def rendered_members(members: list[MemberActivity]) -> Any:
    return rendered(members_document(members, RANGE))


def test_range_and_share() -> None:
    assert RANGE.start == date(2026, 3, 1)
    assert len(RANGE.days) == 5
    assert share(1, 3) == Decimal("0.3333")
    assert share(2, 3) == Decimal("0.6667")
    assert share(1, 8) == Decimal("0.1250")
    assert share(5, 0) == Decimal(0)


def test_admin_sees_every_day_unsuppressed_with_spend() -> None:
    models = [ModelTotal("o3", 40), ModelTotal("gpt-5", 60), ModelTotal("a-model", 40)]
    entry = rendered_summary(
        _data(
            models,
            cycle_start=date(2026, 3, 1),
            cycle_total_cents=Decimal("99.9"),
            cycle_spenders=1,
            state="idle",
        ),
        RANGE,
        is_admin=True,
        policy=Policy(),
    )
    assert [p["active_users"] for p in entry["dau"]] == [0, 2, 0, 6, 0]
    assert [p["requests"] for p in entry["requests"]] == [0, 40, 0, 100, 0]
    assert all("suppressed" not in p for p in entry["dau"] + entry["requests"])
    assert [(m["model"], m["share"]) for m in entry["models"]] == [
        ("gpt-5", Decimal("0.4286")),
        ("a-model", Decimal("0.2857")),
        ("o3", Decimal("0.2857")),
    ]
    assert entry["spend"]["total_cents"] == Decimal("14.75")
    assert entry["spend"]["cycle"] == {"start": "2026-03-01", "total_cents": Decimal("99.9")}
    assert entry["freshness"]["days_with_data"] == 3
    assert entry["freshness"]["state"] == "idle"


def test_member_sees_only_days_with_enough_active_members_and_no_spend() -> None:
    entry = rendered_summary(
        _data([ModelTotal("gpt-5", 100)]), RANGE, is_admin=False, policy=Policy()
    )
    assert entry["dau"][3] == {"date": "2026-03-04", "active_users": 6, "suppressed": False}
    assert entry["dau"][1] == {"date": "2026-03-02", "active_users": None, "suppressed": True}
    assert entry["requests"][1] == {"date": "2026-03-02", "requests": None, "suppressed": True}
    assert sum(1 for p in entry["requests"] if p["suppressed"]) == 4
    assert "spend" not in entry
    assert entry["models"] == [{"model": "gpt-5", "requests": 100, "share": Decimal(1)}]
    assert entry["freshness"]["state"] == "pending"


def test_the_reason_shows_only_while_the_sync_is_in_error() -> None:
    reason = StatusReason("rate_limited", "Cursor answered 429. Retrying in 60 s.")
    shown = {
        state: rendered_summary(
            _data([], state=state, reason=reason), RANGE, is_admin=False, policy=Policy()
        )["freshness"]["reason"]
        for state in ("error", "syncing", "idle")
    }
    assert shown == {
        "error": {"code": "rate_limited", "message": "Cursor answered 429. Retrying in 60 s."},
        "syncing": None,
        "idle": None,
    }
    without = StatusReason("internal_error", None)
    admin = {"is_admin": True, "policy": Policy()}
    entry = rendered_summary(_data([], state="error", reason=without), RANGE, **admin)
    assert entry["freshness"]["reason"] == {"code": "internal_error", "message": None}
    entry = rendered_summary(_data([], state="error"), RANGE, **admin)
    assert entry["freshness"]["reason"] is None


def test_suppressed_days_do_not_count_as_days_with_data_for_members() -> None:
    # Rows on 2, 3 and 4 March; only 4 March (6 active) reaches the default group size of 5.
    member = rendered_summary(_data([]), RANGE, is_admin=False, policy=Policy())
    assert (member["freshness"]["days_with_data"], member["freshness"]["days_in_range"]) == (1, 5)
    # With a group size of 2, 2 March (2 active) shows too; 3 March (0 active) stays hidden.
    small = rendered_summary(_data([]), RANGE, is_admin=False, policy=Policy(min_group_size=2))
    assert small["freshness"]["days_with_data"] == 2
    admin = rendered_summary(_data([]), RANGE, is_admin=True, policy=Policy())
    assert admin["freshness"]["days_with_data"] == 3


def test_member_spend_follows_the_policy() -> None:
    policy = Policy(members_can_see_spend=True, min_group_size=2)
    entry = rendered_summary(
        _data(
            [],
            cycle_start=date(2026, 3, 1),
            cycle_total_cents=Decimal(5),
            cycle_spenders=1,
        ),
        RANGE,
        is_admin=False,
        policy=policy,
    )
    assert entry["spend"]["total_cents"] == Decimal("14.75")
    assert [p["suppressed"] for p in entry["spend"]["daily"]] == [True, False, True, False, True]
    assert entry["spend"]["cycle"] == {
        "start": "2026-03-01",
        "total_cents": None,
        "suppressed": True,
    }


def test_members_are_sorted_by_requests() -> None:
    doc = rendered_members(
        [
            MemberActivity("cursor", "b@x.io", None, "B", 1, 5, "o3", Decimal("1.5")),
            MemberActivity("cursor", "a@x.io", None, "A", 2, 9, None, Decimal(0)),
            MemberActivity("cursor", "c@x.io", None, None, 0, 5, None, Decimal(0)),
        ]
    )
    assert [m["email"] for m in doc["members"]] == ["a@x.io", "b@x.io", "c@x.io"]
