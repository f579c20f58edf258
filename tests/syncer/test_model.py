"""Pure rules of the syncer's state: event order, repair windows, scheduled windows, the newest
final day."""

from __future__ import annotations

from datetime import UTC, date, datetime
from uuid import uuid4

from koalr_contracts import Provider
from koalr_syncer.model import DueRepair, DueSchedule, EventOrder, Run, RunStatus, order_of
from koalr_syncer.service.readers import final_day_read

LAST = uuid4()


def test_events_apply_by_sequence_and_legacy_events_in_arrival_order() -> None:
    assert order_of(uuid4(), 5, LAST, 4) is EventOrder.NEXT
    assert order_of(uuid4(), 4, LAST, 4) is EventOrder.STALE  # equal: never applied twice
    assert order_of(uuid4(), 3, LAST, 4) is EventOrder.STALE
    assert order_of(LAST, 4, LAST, 4) is EventOrder.REDELIVERED
    assert order_of(uuid4(), 0, LAST, 0) is EventOrder.NEXT  # both unordered
    assert order_of(uuid4(), 0, LAST, 2) is EventOrder.STALE  # unordered after ordered


def repair(newest: date, repaired: date | None, attempt: int) -> DueRepair:
    return DueRepair(
        integration_id=uuid4(),
        org_id="org",
        provider="cursor",
        correlation_id=uuid4(),
        backfill_start=date(2026, 3, 1),
        newest_missing=newest,
        repair_at=datetime(2026, 3, 30, tzinfo=UTC),
        repair_day=repaired,
        repair_attempt=attempt,
    )


def test_repairs_of_the_same_day_read_half_as_many_days_and_progress_starts_over() -> None:
    day = date(2026, 3, 20)
    assert repair(day, None, 0).next_repair(7) == (date(2026, 3, 14), day, 0)
    assert repair(day, day, 0).next_repair(7) == (date(2026, 3, 18), day, 1)
    assert repair(day, day, 1).next_repair(7) == (day, day, 2)
    assert repair(day, day, 5).next_repair(7) == (day, day, 6)
    assert repair(day, date(2026, 3, 25), 4).next_repair(7) == (date(2026, 3, 14), day, 0)
    # Never before the backfill window.
    early = date(2026, 3, 3)
    assert repair(early, None, 0).next_repair(7) == (date(2026, 3, 1), early, 0)


def run(start: date, end: date) -> Run:
    return Run(
        run_id=uuid4(),
        integration_id=uuid4(),
        reason="scheduled",
        window_start=start,
        window_end=end,
        next_day=end,
        status=RunStatus.RUNNING,
        attempt=0,
        members_synced=True,
        correlation_id=uuid4(),
    )


def test_data_through_is_the_newest_day_no_longer_re_read() -> None:
    today = date(2026, 3, 30)
    assert final_day_read(run(date(2026, 3, 1), today), today, 3) == date(2026, 3, 27)
    assert final_day_read(run(date(2026, 3, 28), today), today, 3) == date(2026, 3, 27)
    assert final_day_read(run(date(2026, 3, 29), today), today, 3) is None
    assert final_day_read(run(date(2026, 3, 1), date(2026, 3, 10)), today, 3) == date(2026, 3, 10)


def schedule(provider: Provider, oldest_incomplete: date | None) -> DueSchedule:
    return DueSchedule(
        integration_id=uuid4(),
        org_id="org",
        provider=provider,
        correlation_id=uuid4(),
        next_run_at=datetime(2026, 3, 30, tzinfo=UTC),
        interval_s=3600.0,
        oldest_incomplete=oldest_incomplete,
    )


def test_scheduled_copilot_syncs_reach_back_to_the_oldest_unpublished_day() -> None:
    today = date(2026, 3, 30)
    # GitHub published 03-27 today; the last three days alone would never read it again.
    assert schedule("github_copilot", date(2026, 3, 27)).window(today, 3) == (
        date(2026, 3, 27),
        today,
    )
    assert schedule("github_copilot", date(2026, 3, 29)).window(today, 3) == (
        date(2026, 3, 28),
        today,
    )
    assert schedule("github_copilot", None).window(today, 3) == (date(2026, 3, 28), today)
    # Cursor's incomplete days are repaired, not re-read by every scheduled sync.
    assert schedule("cursor", date(2026, 3, 10)).window(today, 3) == (date(2026, 3, 28), today)
