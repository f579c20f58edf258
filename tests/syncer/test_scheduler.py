"""The scheduler: several processes claim due work without publishing a job twice, a process
that dies before recording its claim forgets nothing, and incremental runs recur."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError

from koalr_contracts import AnyEvent, SyncJobRequested, topics
from koalr_runtime.sealing import Sealer
from koalr_sandbox.testing import SandboxClient
from koalr_syncer.jobs import decode_cursor
from koalr_syncer.model import RunStatus
from koalr_syncer.repository import IntegrationRepository, RunRepository, ScheduleRepository
from koalr_syncer.service import Scheduler
from koalr_syncer.settings import SyncerSettings
from tests.syncer.conftest import ClockView, MakeSettings, Pools, StartSyncer
from tests.syncer.helpers import (
    ORG,
    collecting,
    connected_event,
    latest_per_member_day,
    publish,
    wait_for,
)

pytestmark = pytest.mark.integration


class RecordingPublisher:
    def __init__(self, *, fail: bool = False, delay_s: float = 0.0) -> None:
        self.published: list[AnyEvent] = []
        self.fail = fail
        self.delay_s = delay_s

    async def publish(self, topic: str, events: Sequence[AnyEvent]) -> None:
        assert topic == topics.SYNC_JOBS
        await asyncio.sleep(self.delay_s)
        if self.fail:
            raise KafkaConnectionError("broker unreachable")
        self.published.extend(events)


def scheduler(
    settings: SyncerSettings,
    pool: asyncpg.Pool[Any],
    publisher: RecordingPublisher,
    batch: int,
    clock: ClockView,
) -> Scheduler:
    return Scheduler(
        settings=settings,
        schedules=ScheduleRepository(pool),
        publisher=publisher,
        now=clock.now,
        batch=batch,
    )


async def register(
    repo: IntegrationRepository, clock: ClockView, count: int, *, due: bool = True
) -> list[UUID]:
    ids = []
    for _ in range(count):
        integration_id = uuid4()
        ids.append(integration_id)
        event_id = uuid4()
        await repo.connect(
            integration_id=integration_id,
            org_id=ORG,
            provider="cursor",
            external_id="team",
            plan="business",
            status="active",
            status_reason=None,
            sealed_credential="v1.test1." + "A" * 40,
            backfill_days=30,
            backfill_window=clock.window(30),
            backfill_job_id=uuid4(),
            correlation_id=uuid4(),
            event_id=event_id,
            event_at=clock.now(),
            sequence=1,
            interval_s=3600,
            first_run_in_s=-1 if due else 3600,
        )
    return ids


async def test_two_schedulers_publish_each_due_schedule_exactly_once(
    *, clock: ClockView, pools: Pools, make_settings: MakeSettings
) -> None:
    settings = make_settings("http://cursor.invalid")
    repo = IntegrationRepository(pools[0])
    due = await register(repo, clock, 30)
    await register(repo, clock, 5, due=False)
    publishers = [RecordingPublisher(delay_s=0.05), RecordingPublisher(delay_s=0.05)]
    schedulers = [
        scheduler(settings, pool, publisher, batch=4, clock=clock)
        for pool, publisher in zip(pools, publishers, strict=True)
    ]
    for _ in range(20):
        counts = await asyncio.gather(*(s.tick() for s in schedulers))
        if sum(counts) == 0:
            break
    jobs = [j for p in publishers for j in p.published if isinstance(j, SyncJobRequested)]
    assert len(jobs) == sum(len(p.published) for p in publishers)
    assert sorted(j.integration_id for j in jobs) == sorted(due)  # each once, none missing
    assert all(p.published for p in publishers), "both processes took a share"
    for job in jobs:
        assert job.reason == "scheduled"
        assert (job.window_start, job.window_end) == (
            clock.today() - timedelta(days=2),
            clock.today(),
        )
    next_runs = await pools[0].fetch("SELECT next_run_at - now() AS left FROM schedules")
    assert all(r["left"] > timedelta(minutes=59) for r in next_runs)


async def test_a_claim_that_could_not_publish_is_taken_again(
    pools: Pools, make_settings: MakeSettings, clock: ClockView
) -> None:
    settings = make_settings("http://cursor.invalid")
    due = await register(IntegrationRepository(pools[0]), clock, 3)
    broken = scheduler(settings, pools[0], RecordingPublisher(fail=True), batch=10, clock=clock)
    with pytest.raises(KafkaConnectionError):
        await broken.tick()
    healthy_publisher = RecordingPublisher()
    healthy = scheduler(settings, pools[1], healthy_publisher, batch=10, clock=clock)
    assert await healthy.tick() == 3
    published = [j for j in healthy_publisher.published if isinstance(j, SyncJobRequested)]
    assert sorted(j.integration_id for j in published) == sorted(due)


async def test_due_retries_are_published_as_continuations(
    *, clock: ClockView, pools: Pools, make_settings: MakeSettings
) -> None:
    settings = make_settings("http://cursor.invalid")
    (integration_id,) = await register(IntegrationRepository(pools[0]), clock, 1, due=False)
    runs = RunRepository(pools[0])
    run_id = uuid4()
    run = await runs.get_or_create_run(
        run_id=run_id,
        integration_id=integration_id,
        reason="backfill",
        window_start=clock.today() - timedelta(days=29),
        window_end=clock.today(),
        correlation_id=uuid4(),
    )
    read_from = clock.today() - timedelta(days=9)
    await runs.advance_run(
        run.run_id, read_from, [read_from + timedelta(days=i) for i in range(10)]
    )
    await runs.set_run_status(
        run_id, RunStatus.RETRYING, error_code="provider_unavailable", retry_in_s=-1, attempt=2
    )
    publisher = RecordingPublisher()
    assert await scheduler(settings, pools[1], publisher, batch=10, clock=clock).tick() == 1
    (job,) = publisher.published
    assert isinstance(job, SyncJobRequested)
    assert job.cursor is not None
    assert decode_cursor(job.cursor) == run_id
    assert (job.window_start, job.window_end) == (
        clock.today() - timedelta(days=29),
        clock.today() - timedelta(days=10),
    )
    assert job.attempt == 2
    status = await pools[0].fetchval("SELECT status FROM runs WHERE run_id = $1", run_id)
    assert status == "running"


async def test_incremental_runs_recur_and_refetch_the_last_three_days(
    *,
    clock: ClockView,
    sandbox: SandboxClient,
    sandbox_url: str,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_syncer: StartSyncer,
) -> None:
    team = await sandbox.create_team()
    settings = make_settings(sandbox_url, incremental_interval_s=1.0)
    event = connected_event(sealer, team, backfill_days=5)
    async with collecting(settings, with_jobs=True) as out:
        await start_syncer(settings)
        await publish(settings, topics.INTEGRATIONS, event)
        await wait_for(lambda: out.is_idle(event.integration_id), 60, "the backfill to finish")
        backfilled = latest_per_member_day(out.records_of(event.integration_id))
        clock.advance(1)  # the scheduled runs read a second later than the backfill

        def two_incrementals_done() -> bool:
            idle = [s for s in out.statuses_of(event.integration_id) if s.state == "idle"]
            return len(idle) >= 3

        await wait_for(two_incrementals_done, 30, "two scheduled runs")
    scheduled = [j for j in out.jobs if j.reason == "scheduled"]
    assert len(scheduled) >= 2
    assert len({j.job_id for j in scheduled}) == len(scheduled)
    assert all(
        (j.window_start, j.window_end) == (clock.today() - timedelta(days=2), clock.today())
        for j in scheduled
    )
    latest = latest_per_member_day(out.records_of(event.integration_id))
    refreshed = {key for key, r in latest.items() if r.fetched_at > backfilled[key].fetched_at}
    assert {day for day, _ in refreshed} == {clock.today() - timedelta(days=i) for i in range(3)}
