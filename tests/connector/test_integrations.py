"""How a SyncStatusChanged event changes an integration (pure logic)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from koalr_connector.integrations import (
    DEFAULT_ERROR_MESSAGES,
    TEAM_PLAN_MESSAGE,
    Integration,
    SyncError,
    SyncSummary,
    apply_sync_status,
    follows,
)
from koalr_contracts import SyncProgress, SyncStatusChanged

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def integration(plan: str = "business", status: str = "active", **sync: Any) -> Integration:
    return Integration(
        id=uuid4(),
        org_id="org_1",
        provider="cursor",
        external_id="team_1",
        plan=plan,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        correlation_id=uuid4(),
        created_at=T0,
        sync=SyncSummary(**sync),
    )


def event(current: Integration, **fields: Any) -> SyncStatusChanged:
    values: dict[str, Any] = {
        "org_id": current.org_id,
        "integration_id": current.id,
        "provider": "cursor",
        "occurred_at": T0 + timedelta(minutes=1),
    }
    values.update(fields)
    return SyncStatusChanged(**values)


@pytest.mark.parametrize(
    ("plan", "status", "state", "reason", "expected_status", "expected_error"),
    [
        ("business", "active", "syncing", None, "active", None),
        ("business", "failed", "idle", None, "active", None),
        ("team", "degraded", "idle", None, "degraded", None),
        ("business", "active", "error", "invalid_api_key", "failed", "invalid_api_key"),
        ("business", "active", "error", "insufficient_plan", "degraded", "insufficient_plan"),
        ("business", "active", "error", "rate_limited", "active", "rate_limited"),
        ("business", "failed", "error", "provider_unavailable", "failed", "provider_unavailable"),
        ("business", "active", "idle", "insufficient_plan", "degraded", None),
        ("enterprise", "active", "error", "metrics_disabled", "degraded", "metrics_disabled"),
        ("enterprise", "degraded", "idle", "metrics_disabled", "degraded", None),
        (
            "business",
            "active",
            "error",
            "insufficient_permissions",
            "active",
            "insufficient_permissions",
        ),
    ],
)
def test_status_and_last_error_follow_the_event(
    *,
    plan: str,
    status: str,
    state: str,
    reason: str | None,
    expected_status: str,
    expected_error: str | None,
) -> None:
    current = integration(plan, status)
    updated = apply_sync_status(current, event(current, state=state, reason_code=reason))
    assert updated is not None
    assert updated.status == expected_status
    assert updated.sync.state == state
    if expected_error is None:
        assert updated.sync.last_error is None
    else:
        assert updated.sync.last_error == SyncError(
            expected_error, DEFAULT_ERROR_MESSAGES[expected_error]
        )


def test_the_events_message_wins_over_the_default() -> None:
    current = integration()
    updated = apply_sync_status(
        current,
        event(current, state="error", reason_code="invalid_api_key", message="Key revoked."),
    )
    assert updated is not None
    assert updated.sync.last_error == SyncError("invalid_api_key", "Key revoked.")


def test_a_higher_sequence_is_applied_even_with_an_older_clock() -> None:
    current = integration(state="error", status_sequence=4)
    updated = apply_sync_status(
        current, event(current, state="idle", sequence=5, occurred_at=T0 - timedelta(hours=1))
    )
    assert updated is not None
    assert (updated.sync.state, updated.sync.status_sequence) == ("idle", 5)


@pytest.mark.parametrize("sequence", [3, 4])
def test_a_redelivered_or_overtaken_sequence_is_ignored_even_with_a_newer_clock(
    sequence: int,
) -> None:
    current = integration(state="idle", status_sequence=4)
    late = event(
        current,
        state="error",
        reason_code="invalid_api_key",
        sequence=sequence,
        occurred_at=T0 + timedelta(hours=1),
    )
    assert apply_sync_status(current, late) is None


def test_unordered_events_apply_in_arrival_order_until_an_ordered_one_arrives() -> None:
    current = integration(state="syncing")
    first = apply_sync_status(current, event(current, state="idle", occurred_at=T0))
    assert first is not None
    assert (first.sync.state, first.sync.status_sequence) == ("idle", 0)
    earlier_clock = event(current, state="syncing", occurred_at=T0 - timedelta(minutes=5))
    second = apply_sync_status(first, earlier_clock)
    assert second is not None
    assert second.sync.state == "syncing"
    ordered = apply_sync_status(second, event(current, state="idle", sequence=1))
    assert ordered is not None
    assert apply_sync_status(ordered, event(current, state="syncing")) is None


@pytest.mark.parametrize(
    ("sequence", "last", "expected"),
    [
        (1, 0, True),
        (7, 6, True),
        (9, 6, True),
        (6, 6, False),
        (5, 6, False),
        (0, 0, True),
        (0, 1, False),
    ],
)
def test_follows(*, sequence: int, last: int, expected: bool) -> None:
    assert follows(sequence, last) is expected


def test_known_facts_are_kept_when_an_event_omits_them() -> None:
    current = integration(
        state="idle", last_success_at=T0, data_through=date(2026, 2, 28), status_sequence=2
    )
    updated = apply_sync_status(
        current,
        event(
            current,
            state="syncing",
            sequence=3,
            progress=SyncProgress(done=1, total=3, unit="chunks"),
        ),
    )
    assert updated is not None
    assert updated.sync.last_success_at == T0
    assert updated.sync.data_through == date(2026, 2, 28)
    assert updated.sync.progress == {"done": 1, "total": 3, "unit": "chunks"}
    assert updated.sync.status_sequence == 3


def test_the_team_plan_message_names_the_member_list_and_the_plan_needed() -> None:
    assert "member list" in TEAM_PLAN_MESSAGE
    assert "Business" in TEAM_PLAN_MESSAGE
    assert DEFAULT_ERROR_MESSAGES["insufficient_plan"] == TEAM_PLAN_MESSAGE
