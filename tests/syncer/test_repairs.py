"""No day is lost: late data is read by the next scheduled sync, and days a failed backfill left
unread are repaired until every day of the backfill window is complete."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from koalr_contracts import UsageRecord, topics
from koalr_runtime.sealing import Sealer
from koalr_sandbox.testing import SandboxClient
from tests.syncer.conftest import ClockView, MakeSettings, StartSyncer
from tests.syncer.helpers import (
    Collected,
    assert_exact,
    collecting,
    connected_event,
    publish,
    truth_of,
    wait_for,
)
from tests.syncer.transports import MovingEventTotal

pytestmark = pytest.mark.integration


def matches(records: list[UsageRecord], truth: Any, first: date, last: date) -> bool:
    try:
        assert_exact(records, truth, first, last)
    except AssertionError:
        return False
    return True


def complete(out: Collected, integration_id: Any, days: int) -> bool:
    last = out.last_status(integration_id)
    return (
        last is not None
        and last.state == "idle"
        and last.progress is not None
        and (last.progress.done, last.progress.total) == (days, days)
    )


async def test_a_late_event_two_days_back_is_read_by_the_next_scheduled_sync(
    *,
    clock: ClockView,
    sandbox: SandboxClient,
    sandbox_url: str,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_syncer: StartSyncer,
) -> None:
    two_days_back = clock.today() - timedelta(days=2)
    noon = datetime.combine(two_days_back, time(12), tzinfo=UTC)
    # Everything after noon two days back lands late: invisible until the delay is lifted.
    team = await sandbox.create_team(visibility_delay_s=int((clock.now() - noon).total_seconds()))
    settings = make_settings(sandbox_url, incremental_interval_s=1.0)
    event = connected_event(sealer, team, backfill_days=5)
    first, last = clock.window(5)
    async with collecting(settings) as out:
        await start_syncer(settings)
        await publish(settings, topics.INTEGRATIONS, event)
        await wait_for(lambda: complete(out, event.integration_id, 5), 60, "the backfill")
        early = await truth_of(sandbox, team, two_days_back, two_days_back)
        await sandbox.configure(team, visibility_delay_s=0)
        clock.advance(1)
        late = await truth_of(sandbox, team, first, last)
        late_day = [r for r in late["days"] if r["date"] == two_days_back.isoformat()]
        assert late_day[0]["requests"] > early["days"][0]["requests"]  # events did land late
        await wait_for(
            lambda: matches(out.records_of(event.integration_id), late, first, last),
            30,
            "the late events to be read",
        )
    assert assert_exact(out.records_of(event.integration_id), late, first, last) > 0
    idle = [s for s in out.statuses_of(event.integration_id) if s.state == "idle"]
    assert {s.data_through for s in idle} == {clock.today() - timedelta(days=3)}


async def test_days_a_failed_backfill_left_unread_are_repaired_until_none_is_left(
    *,
    clock: ClockView,
    sandbox: SandboxClient,
    sandbox_url: str,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_syncer: StartSyncer,
) -> None:
    team = await sandbox.create_team()
    # The first two reads of the newest week see the event total move while they are paged
    # (three attempts each), and a run gives up at its first failure.
    moving = MovingEventTotal(team, times=6)
    settings = make_settings(sandbox_url, run_max_attempts=1, chunk_days=7)
    event = connected_event(sealer, team, backfill_days=30)
    async with collecting(settings, with_jobs=True) as out:
        await start_syncer(settings, transport=moving)
        await publish(settings, topics.INTEGRATIONS, event)
        await wait_for(lambda: complete(out, event.integration_id, 30), 90, "every day")
    assert moving.left == 0
    first, last = clock.window(30)
    truth = await truth_of(sandbox, team, first, last)
    assert assert_exact(out.records_of(event.integration_id), truth, first, last) > 50
    failures = [s for s in out.statuses_of(event.integration_id) if s.state == "error"]
    assert [s.reason_code for s in failures] == ["provider_unavailable"] * 2
    assert all("kept changing" in (s.message or "") for s in failures)
    windows = [(j.window_start, j.window_end) for j in out.jobs if j.cursor is None]
    assert windows[:3] == [
        (first, last),  # the backfill: its newest week fails
        (last - timedelta(days=6), last),  # the first repair of that week fails too
        (last - timedelta(days=2), last),  # the next one reads half as many days
    ]
    assert all(j.reason == "backfill" for j in out.jobs)
