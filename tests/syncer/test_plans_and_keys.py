"""Plans and keys: a Team plan syncs members only; a rejected key stops the integration until
its credentials are rotated, then the sync resumes where it stopped."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from koalr_contracts import IntegrationCredentialsRotated, topics
from koalr_runtime.sealing import Sealer
from koalr_sandbox.testing import SandboxClient
from tests.syncer.conftest import ClockView, MakeSettings, StartSyncer
from tests.syncer.helpers import (
    ORG,
    assert_exact,
    collecting,
    connected_event,
    publish,
    truth_of,
    url_of,
    wait_for,
)

pytestmark = pytest.mark.integration


async def test_a_team_plan_syncs_the_member_list_only_and_stays_scheduled(
    sandbox: SandboxClient,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_syncer: StartSyncer,
    db: asyncpg.Connection[Any],
) -> None:
    team = await sandbox.create_team(plan="team")
    settings = make_settings(url_of(sandbox), incremental_interval_s=0.5)
    event = connected_event(sealer, team, plan="team")
    async with collecting(settings) as out:
        await start_syncer(settings)
        await publish(settings, topics.INTEGRATIONS, event)

        async def members_fetched_twice() -> bool:
            log = await sandbox.request_log(team)
            return len(log) >= 2

        await wait_for(members_fetched_twice, 30, "the backfill and a scheduled run")
        await wait_for(lambda: len(out.statuses_of(event.integration_id)) >= 2, 10, "statuses")
    log = await sandbox.request_log(team)
    assert {(r["method"], r["path"], r["status"]) for r in log} == {("GET", "/teams/members", 200)}
    statuses = out.statuses_of(event.integration_id)
    assert {(s.state, s.reason_code) for s in statuses} == {("error", "insufficient_plan")}
    assert "only exposes the member list" in (statuses[0].message or "")
    assert out.records == []
    assert out.snapshots == []
    members = await db.fetchval(
        "SELECT count(*) FROM syncer.members WHERE integration_id = $1", event.integration_id
    )
    assert members == 12
    schedule = await db.fetchrow(
        "SELECT paused FROM syncer.schedules WHERE integration_id = $1", event.integration_id
    )
    assert schedule is not None
    assert schedule["paused"] is False


async def test_a_plan_without_the_admin_api_reports_insufficient_plan(
    sandbox: SandboxClient,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_syncer: StartSyncer,
    db: asyncpg.Connection[Any],
) -> None:
    team = await sandbox.create_team(plan="business")
    await sandbox.configure(team, plan="team")  # downgraded after it was connected
    settings = make_settings(url_of(sandbox))
    event = connected_event(sealer, team, plan="business")
    async with collecting(settings) as out:
        await start_syncer(settings)
        await publish(settings, topics.INTEGRATIONS, event)

        def reported() -> bool:
            last = out.last_status(event.integration_id)
            return last is not None and last.state == "error"

        await wait_for(reported, 30, "the error status")
    last = out.last_status(event.integration_id)
    assert last is not None
    assert last.reason_code == "insufficient_plan"
    assert out.records == []
    row = await db.fetchrow(
        "SELECT status, status_reason FROM syncer.integrations WHERE integration_id = $1",
        event.integration_id,
    )
    assert row is not None
    assert (row["status"], row["status_reason"]) == ("degraded", "insufficient_plan")


async def test_a_rejected_key_stops_the_integration_until_the_credentials_are_rotated(
    *,
    clock: ClockView,
    sandbox: SandboxClient,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_syncer: StartSyncer,
    db: asyncpg.Connection[Any],
) -> None:
    team = await sandbox.create_team(latency_ms=60)
    settings = make_settings(url_of(sandbox), chunk_days=3, incremental_interval_s=3600)
    event = connected_event(sealer, team)
    async with collecting(settings) as out:
        runtime = await start_syncer(settings)
        await publish(settings, topics.INTEGRATIONS, event)

        def some_chunks_done() -> bool:
            last = out.last_status(event.integration_id)
            return last is not None and last.progress is not None and last.progress.done >= 3

        await wait_for(some_chunks_done, 30, "the backfill to make progress")
        rotated_team = await sandbox.rotate_key(team)  # the key is rotated in Cursor

        def rejected() -> bool:
            last = out.last_status(event.integration_id)
            return last is not None and last.reason_code == "invalid_api_key"

        await wait_for(rejected, 30, "the invalid_api_key status")
        integration = await db.fetchrow(
            "SELECT status, status_reason FROM syncer.integrations WHERE integration_id = $1",
            event.integration_id,
        )
        assert integration is not None
        assert (integration["status"], integration["status_reason"]) == (
            "failed",
            "invalid_api_key",
        )
        schedule = await db.fetchval(
            "SELECT paused FROM syncer.schedules WHERE integration_id = $1", event.integration_id
        )
        assert schedule is True
        run = await db.fetchrow(
            "SELECT status, next_day, window_start FROM syncer.runs WHERE integration_id = $1",
            event.integration_id,
        )
        assert run is not None
        assert run["status"] == "blocked"
        assert run["next_day"] >= run["window_start"]  # stopped part-way
        await db.execute(
            "UPDATE syncer.schedules SET next_run_at = now() WHERE integration_id = $1",
            event.integration_id,
        )
        assert await runtime.scheduler.tick() == 0  # a failed integration is not scheduled

        rotation = IntegrationCredentialsRotated(
            org_id=ORG,
            integration_id=event.integration_id,
            correlation_id=event.correlation_id,
            provider="cursor",
            plan="enterprise",
            sealed_credential=sealer.seal(rotated_team.api_key, context=str(event.integration_id)),
        )
        await publish(settings, topics.INTEGRATIONS, rotation)
        await wait_for(lambda: out.is_idle(event.integration_id), 60, "the sync to resume")
    first, last = clock.window(30)
    truth = await truth_of(sandbox, rotated_team, first, last)
    assert assert_exact(out.records_of(event.integration_id), truth, first, last) > 50
    integration = await db.fetchrow(
        "SELECT status, status_reason FROM syncer.integrations WHERE integration_id = $1",
        event.integration_id,
    )
    assert integration is not None
    assert (integration["status"], integration["status_reason"]) == ("active", None)
    assert (
        await db.fetchval(
            "SELECT paused FROM syncer.schedules WHERE integration_id = $1", event.integration_id
        )
        is False
    )
    log = await sandbox.request_log(team)
    assert sum(1 for r in log if r["status"] == 401) == 1  # one call noticed, then it stopped
