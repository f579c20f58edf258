"""Backfills and resyncs against the sandbox yield exactly the sandbox's truth."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest
from prometheus_client import REGISTRY

from koalr_contracts import SyncJobRequested, topics
from koalr_runtime.sealing import Sealer
from koalr_sandbox.testing import SandboxClient
from tests.syncer.conftest import ClockView, MakeSettings, StartSyncer
from tests.syncer.helpers import (
    ORG,
    assert_cycle_exact,
    assert_exact,
    collecting,
    connected_event,
    latest_per_member_day,
    publish,
    truth_of,
    wait_for,
)

pytestmark = pytest.mark.integration


async def test_backfill_matches_the_truth_exactly(
    *,
    clock: ClockView,
    sandbox: SandboxClient,
    sandbox_url: str,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_syncer: StartSyncer,
) -> None:
    team = await sandbox.create_team()
    settings = make_settings(sandbox_url)
    event = connected_event(sealer, team)
    async with collecting(settings) as out:
        await start_syncer(settings)
        await publish(settings, topics.INTEGRATIONS, event)
        await wait_for(lambda: out.is_idle(event.integration_id), 60, "the backfill to finish")
    first, last = clock.window(30)
    truth = await truth_of(sandbox, team, first, last)
    compared = assert_exact(out.records_of(event.integration_id), truth, first, last)
    assert compared == len(truth["member_days"]) > 50
    # Inactive member-days are published too (so a resync can replace an active day).
    assert any(not r.is_active for r in out.records_of(event.integration_id))
    (snapshot,) = out.snapshots_of(event.integration_id)
    assert_cycle_exact(snapshot, truth)

    statuses = out.statuses_of(event.integration_id)
    progress = [s.progress.done for s in statuses if s.progress is not None]
    assert [s.state for s in statuses] == ["syncing"] * (len(statuses) - 1) + ["idle"]
    assert progress == sorted(progress)
    assert progress[0] == 0
    assert progress[-1] == 30
    assert statuses[-1].progress is not None
    assert (statuses[-1].progress.done, statuses[-1].progress.total) == (30, 30)
    # The last 3 days are re-read by every scheduled sync: they can still change.
    assert statuses[-1].data_through == clock.today() - timedelta(days=3)
    # Each status carries the next number of the integration's sequence.
    assert [s.sequence for s in statuses] == list(range(1, len(statuses) + 1))
    assert statuses[-1].last_success_at is not None
    derived = [*out.records, *out.snapshots, *out.statuses]
    assert {e.correlation_id for e in derived} == {event.correlation_id}
    assert out.misrouted == []
    assert out.dead_letters == []


async def test_older_response_shapes_are_synced_exactly(
    *,
    clock: ClockView,
    sandbox: SandboxClient,
    sandbox_url: str,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_syncer: StartSyncer,
) -> None:
    team = await sandbox.create_team(legacy_shapes=True, seed=11)
    settings = make_settings(sandbox_url)
    event = connected_event(sealer, team)
    async with collecting(settings) as out:
        await start_syncer(settings)
        await publish(settings, topics.INTEGRATIONS, event)
        await wait_for(lambda: out.is_idle(event.integration_id), 60, "the backfill to finish")
    first, last = clock.window(30)
    truth = await truth_of(sandbox, team, first, last)
    assert assert_exact(out.records_of(event.integration_id), truth, first, last) > 50
    (snapshot,) = out.snapshots_of(event.integration_id)
    assert_cycle_exact(snapshot, truth, on_demand_split=False)


async def test_a_long_backfill_continues_through_bounded_jobs(
    *,
    clock: ClockView,
    sandbox: SandboxClient,
    sandbox_url: str,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_syncer: StartSyncer,
) -> None:
    team = await sandbox.create_team(members=20, seed=3)
    # One page of usage events per job at most, and a chunk as wide as the whole window.
    settings = make_settings(sandbox_url, chunk_days=30, job_page_budget=1)
    event = connected_event(sealer, team)
    async with collecting(settings, with_jobs=True) as out:
        await start_syncer(settings)
        await publish(settings, topics.INTEGRATIONS, event)
        await wait_for(lambda: out.is_idle(event.integration_id), 90, "the backfill to finish")
    first, last = clock.window(30)
    truth = await truth_of(sandbox, team, first, last)
    assert assert_exact(out.records_of(event.integration_id), truth, first, last) > 50
    jobs = [j for j in out.jobs if j.integration_id == event.integration_id]
    continuations = [j for j in jobs if j.cursor is not None]
    assert len(continuations) >= 5
    assert len({j.cursor for j in continuations}) == 1  # all continue the same run
    ends = [j.window_end for j in continuations]
    assert ends == sorted(ends, reverse=True)
    assert len(set(ends)) == len(ends)
    assert all(j.window_start == first for j in jobs)


async def test_one_job_reads_several_chunks_each_published_and_recorded(
    *,
    clock: ClockView,
    sandbox: SandboxClient,
    sandbox_url: str,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_syncer: StartSyncer,
) -> None:
    team = await sandbox.create_team(members=20, seed=5)
    # 30 days in chunks of 7, 7, 7, 7 and 2 days, all read by the backfill job itself.
    settings = make_settings(sandbox_url, chunk_days=7, job_max_chunks=5)
    event = connected_event(sealer, team)
    async with collecting(settings, with_jobs=True) as out:
        await start_syncer(settings)
        await publish(settings, topics.INTEGRATIONS, event)
        await wait_for(lambda: out.is_idle(event.integration_id), 60, "the backfill to finish")
    first, last = clock.window(30)
    truth = await truth_of(sandbox, team, first, last)
    assert assert_exact(out.records_of(event.integration_id), truth, first, last) > 50
    jobs = [j for j in out.jobs if j.integration_id == event.integration_id]
    assert [j.cursor for j in jobs] == [None]  # no continuation job
    statuses = out.statuses_of(event.integration_id)
    progress = [s.progress.done for s in statuses if s.progress is not None]
    assert progress == [0, 7, 14, 21, 28, 30]  # one status per chunk, then idle
    assert [s.state for s in statuses] == ["syncing"] * 5 + ["idle"]


async def test_a_manual_resync_replaces_the_days_and_runs_once(
    *,
    clock: ClockView,
    sandbox: SandboxClient,
    sandbox_url: str,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_syncer: StartSyncer,
) -> None:
    team = await sandbox.create_team()
    settings = make_settings(sandbox_url)
    event = connected_event(sealer, team, backfill_days=10)
    async with collecting(settings) as out:
        await start_syncer(settings)
        await publish(settings, topics.INTEGRATIONS, event)
        await wait_for(lambda: out.is_idle(event.integration_id), 60, "the backfill to finish")
        backfilled = latest_per_member_day(out.records_of(event.integration_id))
        clock.advance(1)  # the resync reads a second later than the backfill
        requested_at = clock.now()
        manual = SyncJobRequested(
            job_id=uuid4(),  # the connector's own id
            org_id=ORG,
            integration_id=event.integration_id,
            correlation_id=event.correlation_id,
            provider="cursor",
            reason="manual",
            window_start=clock.today() - timedelta(days=6),
            window_end=clock.today(),
        )
        # Delivered twice (as after a producer retry): the second delivery changes nothing.
        await publish(settings, topics.SYNC_JOBS, manual, manual)

        def manual_done() -> bool:
            return any(s.job_id == manual.job_id and s.state == "idle" for s in out.statuses)

        await wait_for(manual_done, 60, "the manual resync to finish")
        await wait_for(lambda: len(out.snapshots_of(event.integration_id)) >= 2, 10, "spend")
    first, last = clock.window(10)
    truth = await truth_of(sandbox, team, first, last)
    records = out.records_of(event.integration_id)
    assert assert_exact(records, truth, first, last) > 20
    resynced = latest_per_member_day(records)
    manual_days = {key for key, r in resynced.items() if r.fetched_at >= requested_at}
    assert {day for day, _ in manual_days} == {
        clock.window(7)[0] + timedelta(days=i) for i in range(7)
    }
    assert all(resynced[key].fetched_at > backfilled[key].fetched_at for key in manual_days)
    manual_records = [r for r in records if r.fetched_at >= requested_at]
    assert len(manual_records) == len(manual_days)  # the duplicate delivery published nothing
    assert {r.correlation_id for r in records} == {event.correlation_id}
    assert len(out.snapshots_of(event.integration_id)) == 2


async def test_a_manual_resync_that_overtakes_its_connection_runs_once_registered(
    *,
    clock: ClockView,
    sandbox: SandboxClient,
    sandbox_url: str,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_syncer: StartSyncer,
) -> None:
    team = await sandbox.create_team()
    settings = make_settings(sandbox_url)  # the default patience for an unknown integration
    event = connected_event(sealer, team, backfill_days=3)
    first, last = clock.window(3)
    manual = SyncJobRequested(
        job_id=uuid4(),
        org_id=ORG,
        integration_id=event.integration_id,
        correlation_id=event.correlation_id,
        provider="cursor",
        reason="manual",
        window_start=first,
        window_end=last,
    )

    def awaited() -> float:
        value = REGISTRY.get_sample_value(
            "koalr_syncer_jobs_total", {"outcome": "awaiting_integration"}
        )
        return value or 0.0

    before = awaited()
    async with collecting(settings) as out:
        await start_syncer(settings)
        await publish(settings, topics.SYNC_JOBS, manual)
        # Retried with backoff (0.5 s, 1 s, 2 s, 4 s): the fifth try comes after 7.5 s.
        await wait_for(lambda: awaited() - before >= 5, 30, "the resync to wait for 7 s")
        await publish(settings, topics.INTEGRATIONS, event)

        def manual_done() -> bool:
            return any(s.job_id == manual.job_id and s.state == "idle" for s in out.statuses)

        await wait_for(manual_done, 60, "the manual resync to finish")
    assert out.dead_letters == []
    assert [s for s in out.statuses if s.state == "error"] == []
    truth = await truth_of(sandbox, team, first, last)
    assert assert_exact(out.records_of(event.integration_id), truth, first, last) > 0
