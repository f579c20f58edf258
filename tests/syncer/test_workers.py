"""Several worker processes share the jobs; a worker killed mid-backfill loses nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import pytest

from koalr_contracts import topics
from koalr_devstack.kafka import wait_for_group
from koalr_runtime.sealing import Sealer
from koalr_sandbox.testing import GithubSandboxClient, SandboxClient
from koalr_syncer.settings import SyncerSettings
from tests.syncer.conftest import MakeSettings
from tests.syncer.helpers import (
    Collected,
    assert_copilot_exact,
    assert_cycle_exact,
    assert_exact,
    assert_premium_exact,
    collecting,
    connected_event,
    copilot_connected_event,
    integration_on_partition,
    publish,
    truth_of,
    wait_for,
)
from tests.syncer.processes import WorkerProcess, start_worker

pytestmark = pytest.mark.integration

StartWorker = Callable[[SyncerSettings], Awaitable[WorkerProcess]]


@pytest.fixture
async def start_workers(tmp_path: Path) -> AsyncIterator[StartWorker]:
    started: list[WorkerProcess] = []

    async def start(settings: SyncerSettings) -> WorkerProcess:
        worker = await start_worker(settings, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


async def test_two_worker_processes_share_the_jobs_of_several_integrations(
    *,
    sandbox: SandboxClient,
    sandbox_url: str,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_workers: StartWorker,
) -> None:
    partitions = 6
    settings = make_settings(
        sandbox_url, topic_partitions=partitions, worker_concurrency=1, chunk_days=10
    )
    workers = [await start_workers(settings), await start_workers(settings)]
    await wait_for_group(settings.kafka_bootstrap_servers, settings.group("syncer-workers"), 2, 30)
    taken: set[UUID] = set()
    teams = [await sandbox.create_team(members=8, seed=100 + i) for i in range(partitions)]
    events = [
        connected_event(sealer, team, integration_id=integration_on_partition(i, partitions, taken))
        for i, team in enumerate(teams)
    ]
    async with collecting(settings, with_jobs=True) as out:
        await publish(settings, topics.INTEGRATIONS, *events)
        await wait_for(
            lambda: all(out.is_idle(e.integration_id) for e in events), 90, "every backfill"
        )
    for team, event in zip(teams, events, strict=True):
        # The worker processes run on the system clock: expect the days they chose.
        first, last = out.backfill_window(event.integration_id)
        truth = await truth_of(sandbox, team, first, last)
        assert assert_exact(out.records_of(event.integration_id), truth, first, last) > 20
        assert_cycle_exact(out.snapshots_of(event.integration_id)[-1], truth)
    handled = [await w.jobs_handled() for w in workers]
    assert all(n >= 3 for n in handled), handled  # each process ran several integrations' jobs
    assert sum(handled) >= partitions * 3


async def test_a_worker_killed_mid_backfill_loses_nothing(
    *,
    sandbox: SandboxClient,
    sandbox_url: str,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_workers: StartWorker,
) -> None:
    settings = make_settings(sandbox_url, worker_concurrency=1, chunk_days=2)
    workers = [await start_workers(settings), await start_workers(settings)]
    await wait_for_group(settings.kafka_bootstrap_servers, settings.group("syncer-workers"), 2, 30)
    team = await sandbox.create_team(latency_ms=40)
    event = connected_event(sealer, team)
    async with collecting(settings, with_jobs=True) as out:
        await publish(settings, topics.INTEGRATIONS, event)
        await kill_the_owner_part_way(out, event.integration_id, workers)
    first, last_day = out.backfill_window(event.integration_id)  # by the workers' clock
    truth = await truth_of(sandbox, team, first, last_day)
    assert assert_exact(out.records_of(event.integration_id), truth, first, last_day) > 50
    assert_cycle_exact(out.snapshots_of(event.integration_id)[-1], truth)


async def test_a_worker_killed_mid_copilot_backfill_loses_nothing(
    *,
    github: GithubSandboxClient,
    sandbox_url: str,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_workers: StartWorker,
) -> None:
    settings = make_settings(sandbox_url, worker_concurrency=1, chunk_days=2)
    workers = [await start_workers(settings), await start_workers(settings)]
    await wait_for_group(settings.kafka_bootstrap_servers, settings.group("syncer-workers"), 2, 30)
    org = await github.create_org(latency_ms=40, seed=12)
    event = copilot_connected_event(sealer, org)
    async with collecting(settings, with_jobs=True) as out:
        await publish(settings, topics.INTEGRATIONS, event)
        await kill_the_owner_part_way(out, event.integration_id, workers)
    first, last_day = out.backfill_window(event.integration_id)  # by the workers' clock
    truth = await github.truth(org, first.isoformat(), last_day.isoformat())
    assert assert_copilot_exact(out.records_of(event.integration_id), truth, first, last_day) > 100
    assert_premium_exact(out.day_spends, truth, first, last_day - timedelta(days=1))
    assert len(out.seats) >= 1


async def kill_the_owner_part_way(
    out: Collected, integration_id: UUID, workers: list[WorkerProcess]
) -> None:
    """SIGKILL the worker running the backfill once 6 days are complete; the survivor finishes."""

    def part_way() -> bool:
        last = out.last_status(integration_id)
        return last is not None and last.progress is not None and last.progress.done >= 6

    await wait_for(part_way, 60, "the backfill to be part-way")
    handled = [await w.jobs_handled() for w in workers]
    owner, survivor = workers if handled[0] > 0 else reversed(workers)
    owner.kill()
    last = out.last_status(integration_id)
    assert last is not None
    assert last.progress is not None
    assert last.state == "syncing", "killed before the backfill finished"
    assert last.progress.done < last.progress.total
    await wait_for(lambda: out.is_idle(integration_id), 90, "the survivor to finish")
    assert await survivor.jobs_handled() > 0
