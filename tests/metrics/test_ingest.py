"""Decoding a consumed chunk: newest record per key, rejects named with their reason, and the
rows rendered for COPY."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from koalr_contracts import DaySpend, SeatsSnapshot, UsageRecord, encode_event, topics
from koalr_metrics.ingest import (
    decode_usage,
    prepare_usage,
    snapshot_rows,
    usage_copy,
    usage_rows,
)
from tests.metrics.support import new_id, snapshot, usage

TOPIC = "tns." + topics.USAGE_RECORDS
T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = date(2025, 12, 31)
"""A usage day before every fetch time of these records (a day is never after its fetch)."""


def test_newest_record_per_key_wins_and_ties_go_to_the_later_offset() -> None:
    integration = new_id()
    day = DAY
    old = usage("o", integration, day, "a@x.io", {"m": (1, "1")}, fetched_at=T0)
    new = usage("o", integration, day, "a@x.io", {"m": (2, "2")}, fetched_at=T0 + timedelta(1))
    tie = usage("o", integration, day, "a@x.io", {"m": (3, "3")}, fetched_at=T0 + timedelta(1))
    other = usage("o", integration, day, "b@x.io", {"m": (4, "4")}, fetched_at=T0)
    batch = decode_usage(TOPIC, [encode_event(e) for e in (new, old, other, tie)])
    assert batch.usage == [(3, tie), (2, other)]
    assert batch.superseded == 2
    assert batch.rejected == []


def test_undecodable_and_invalid_records_are_rejected_with_their_reason() -> None:
    good = usage("o", new_id(), DAY, "a@x.io", {"m": (1, "0.5")}, fetched_at=T0)
    invalid = json.loads(encode_event(good))
    invalid["charged_cents"] = "9.99"
    batch = decode_usage(
        TOPIC, [b"\xff\xfe", encode_event(good), json.dumps(invalid).encode(), b"{}", None]
    )
    assert batch.usage == [(1, good)]
    assert [r.index for r in batch.rejected] == [0, 2, 3, 4]
    assert {type(r.error).__name__ for r in batch.rejected} == {"EventDecodeError"}
    reasons = [str(r.error) for r in batch.rejected]
    assert "Invalid JSON" in reasons[0]
    assert "charged_cents add up to 0.5, not to charged_cents=9.99" in reasons[1]
    assert "event_type" in reasons[2] or "discriminator" in reasons[2]


def test_snapshot_with_a_member_twice_is_rejected_and_the_newest_snapshot_kept() -> None:
    integration = new_id()
    newer = snapshot("o", integration, DAY, {"a@x.io": "3", "b@x.io": "0"}, fetched_at=T0)
    older = snapshot("o", integration, DAY, {"a@x.io": "1"}, fetched_at=T0 - timedelta(hours=1))
    twice = json.loads(encode_event(newer))
    twice["members"].append(twice["members"][0])
    twice["total_cents"] = "6"
    batch = decode_usage(
        TOPIC, [encode_event(newer), encode_event(older), json.dumps(twice).encode()]
    )
    assert batch.snapshots == [(0, newer)]
    assert [r.index for r in batch.rejected] == [2]
    assert "more than once" in str(batch.rejected[0].error)
    rows = snapshot_rows(newer)
    assert (rows.total_cents, rows.spenders) == (Decimal(3), 1)
    assert [m[0] for m in rows.members] == ["a@x.io", "b@x.io"]


def test_rows_carry_each_model_and_the_envelope_of_unknown_integrations() -> None:
    integration = new_id()
    record = usage(
        "org-9",
        integration,
        DAY,
        "Dev@X.io",
        {"gpt-5": (3, "1.25"), "o3": (2, "0.75")},
        fetched_at=T0,
    )
    rows = usage_rows([record])
    assert rows.member_days == [
        (integration, DAY, "dev@x.io", "dev@x.io", "Dev", True, 5, Decimal("2.00"), T0, None)
    ]
    assert rows.models == [
        (integration, DAY, "dev@x.io", "gpt-5", 3, Decimal("1.25")),
        (integration, DAY, "dev@x.io", "o3", 2, Decimal("0.75")),
    ]
    assert rows.integrations == {integration: ("org-9", "cursor")}


def _seats(
    integration: UUID, fetched_at: datetime, *logins: str, plan: str = "business"
) -> SeatsSnapshot:
    return SeatsSnapshot.model_validate(
        {
            "org_id": "o",
            "integration_id": integration,
            "provider": "github_copilot",
            "plan": plan,
            "fetched_at": fetched_at,
            "seats": [
                {"member": {"login": login}, "created_at": "2025-12-01T00:00:00Z"}
                for login in logins
            ],
        }
    )


def _day_spend(integration: UUID, day: date, cents: str, fetched_at: datetime) -> DaySpend:
    return DaySpend(
        org_id="o",
        integration_id=integration,
        provider="github_copilot",
        day=day,
        cents=Decimal(cents),
        fetched_at=fetched_at,
    )


def test_newest_seats_snapshot_and_day_spend_per_key_win_in_a_chunk() -> None:
    one, two = new_id(), new_id()
    older = _seats(one, T0 - timedelta(hours=1), "ann")
    newer = _seats(one, T0, "ann", "bob")
    tie = _seats(one, T0, "bob")
    other = _seats(two, T0 - timedelta(days=1), "cy")
    spend_old = _day_spend(one, DAY, "100", T0 - timedelta(hours=1))
    spend_new = _day_spend(one, DAY, "250", T0)
    spend_day2 = _day_spend(one, DAY - timedelta(days=1), "7.5", T0 - timedelta(hours=2))
    events = (newer, older, other, tie, spend_new, spend_old, spend_day2)
    prepared = prepare_usage(TOPIC, [encode_event(e) for e in events])
    assert [(i, s.integration_id, [seat[1] for seat in s.seats]) for i, s in prepared.seats] == [
        (3, one, ["bob"]),
        (2, two, ["cy"]),
    ]
    assert [(i, s.day, s.cents) for i, s in prepared.day_spend] == [
        (4, DAY, Decimal(250)),
        (6, DAY - timedelta(days=1), Decimal("7.5")),
    ]
    assert prepared.superseded == 3
    assert prepared.rejected == []


def test_a_seats_snapshot_with_a_seat_that_has_no_price_is_rejected() -> None:
    integration = new_id()
    unpriced = _seats(integration, T0, "ann", plan="team")
    prepared = prepare_usage(TOPIC, [encode_event(unpriced)])
    assert prepared.seats == []
    assert [(r.index, r.integration_id) for r in prepared.rejected] == [(0, integration)]
    assert "'unknown' in an organisation on the 'team' plan has no Copilot list price" in str(
        prepared.rejected[0].error
    )


def test_a_copilot_members_login_is_stored_beside_its_key() -> None:
    integration = new_id()
    record = UsageRecord.model_validate(
        {
            "org_id": "o",
            "integration_id": integration,
            "provider": "github_copilot",
            "day": DAY,
            "member": {"login": "ann-lee"},
            "is_active": True,
            "requests": 4,
            "models": [{"model": "gpt-5", "requests": 3}, {"model": "unattributed", "requests": 1}],
            "fetched_at": T0,
        }
    )
    rows = usage_rows([record])
    assert rows.member_days == [
        (integration, DAY, "github:ann-lee", None, None, True, 4, Decimal(0), T0, "ann-lee")
    ]
    assert (
        usage_copy([record]).member_days
        == (
            f"{integration}\t2025-12-31\tgithub:ann-lee\t\\N\t\\N\tt\t4\t0\t"
            "2026-01-01T00:00:00+00:00\tann-lee\n"
        ).encode()
    )
