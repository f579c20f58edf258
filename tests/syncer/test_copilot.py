"""GitHub Copilot integrations against the sandbox: a backfill equals the truth of every published
day (section 6b), seats and premium spend sync even with the metrics policy off, a revoked token
stops the integration until it is rotated, and a day GitHub publishes later becomes complete."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest

from koalr_contracts import IntegrationCredentialsRotated, topics
from koalr_runtime.sealing import Sealer
from koalr_sandbox.testing import GithubSandboxClient, SandboxOrg
from tests.syncer.conftest import ClockView, MakeSettings, StartSyncer
from tests.syncer.helpers import (
    ORG,
    assert_copilot_exact,
    assert_premium_exact,
    assert_seats_exact,
    collecting,
    copilot_connected_event,
    publish,
    wait_for,
)

pytestmark = pytest.mark.integration


async def truth_of(
    github: GithubSandboxClient, org: SandboxOrg, first: date, last: date
) -> dict[str, Any]:
    truth: dict[str, Any] = await github.truth(org, first.isoformat(), last.isoformat())
    return truth


async def request_log(github: GithubSandboxClient, org: SandboxOrg) -> list[dict[str, Any]]:
    response = await github.http.get(f"/_sandbox/github/orgs/{org.org}/requests")
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["requests"]
    return entries


async def test_a_copilot_backfill_equals_the_truth_of_every_published_day(
    *,
    clock: ClockView,
    github: GithubSandboxClient,
    sandbox_url: str,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_syncer: StartSyncer,
) -> None:
    org = await github.create_org()
    settings = make_settings(sandbox_url)
    event = copilot_connected_event(sealer, org)
    async with collecting(settings) as out:
        await start_syncer(settings)
        await publish(settings, topics.INTEGRATIONS, event)
        await wait_for(lambda: out.is_idle(event.integration_id), 60, "the backfill to finish")
    first, last = clock.window(30)
    truth = await truth_of(github, org, first, last)
    published = [day for day, row in truth["days"].items() if row["reported"]]
    # GitHub publishes a day two full days after it ends: the last three days are not out yet.
    assert len(published) == 27
    assert truth["data_through"] == (clock.today() - timedelta(days=3)).isoformat()
    records = out.records_of(event.integration_id)
    assert assert_copilot_exact(records, truth, first, last) > 100
    assert {r.provider for r in records} == {"github_copilot"}
    assert_premium_exact(out.day_spends, truth, first, clock.today() - timedelta(days=1))
    assert {s.day for s in out.day_spends} == {first + timedelta(days=i) for i in range(30)}
    (seats,) = out.seats
    assert seats.plan == "business"
    assert_seats_exact(seats, truth, clock.now(), first, last)
    assert out.snapshots == []

    statuses = out.statuses_of(event.integration_id)
    assert [s.state for s in statuses] == ["syncing"] * (len(statuses) - 1) + ["idle"]
    assert [s.sequence for s in statuses] == list(range(1, len(statuses) + 1))
    assert {s.provider for s in statuses} == {"github_copilot"}
    final = statuses[-1]
    assert final.data_through == date.fromisoformat(truth["data_through"])
    assert final.progress is not None
    assert (final.progress.done, final.progress.total) == (27, 30)
    assert out.dead_letters == []
    assert out.misrouted == []
    # One users-1-day report per day, each link downloaded once, and no limit tripped.
    log = await request_log(github, org)
    report_calls = [r for r in log if r["path"].endswith("/reports/users-1-day")]
    assert len(report_calls) == 30
    assert {r["status"] for r in log} == {200}


async def test_with_the_metrics_policy_off_seats_and_spend_still_sync_until_it_is_enabled(
    *,
    clock: ClockView,
    github: GithubSandboxClient,
    sandbox_url: str,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_syncer: StartSyncer,
    db: asyncpg.Connection[Any],
) -> None:
    org = await github.create_org(metrics_policy=False, seed=8)
    settings = make_settings(sandbox_url)
    event = copilot_connected_event(sealer, org, metrics_enabled=False)

    def finished() -> bool:
        last = out.last_status(event.integration_id)
        return last is not None and last.state == "error"

    async def integration_status() -> tuple[str, str | None]:
        row = await db.fetchrow(
            "SELECT status, status_reason FROM syncer.integrations WHERE integration_id = $1",
            event.integration_id,
        )
        assert row is not None
        return row["status"], row["status_reason"]

    first, last = clock.window(30)
    async with collecting(settings, with_jobs=True) as out:
        await start_syncer(settings)
        await publish(settings, topics.INTEGRATIONS, event)
        await wait_for(finished, 60, "the backfill to end")
        await wait_for(lambda: len(out.seats) == 1, 10, "the seats")
        assert out.records == []
        statuses = list(out.statuses_of(event.integration_id))
        # Every status keeps the integration degraded; the last one says what to enable.
        assert {s.reason_code for s in statuses} == {"metrics_disabled"}
        final = statuses[-1]
        assert final.state == "error"
        assert final.message is not None
        assert '"Copilot usage metrics" policy' in final.message
        assert "seats and premium-request spend still are" in final.message
        assert final.data_through is None
        assert await integration_status() == ("degraded", "metrics_disabled")
        assert await db.fetchval("SELECT count(*) FROM syncer.complete_days") == 0

        # An owner enables the policy: the next scheduled sync reads every day it missed.
        await github.configure(org, metrics_policy=True)
        await db.execute(
            "UPDATE syncer.schedules SET next_run_at = now() WHERE integration_id = $1",
            event.integration_id,
        )
        await wait_for(lambda: out.is_idle(event.integration_id), 60, "the scheduled sync")
    truth = await truth_of(github, org, first, last)
    assert assert_copilot_exact(out.records_of(event.integration_id), truth, first, last) > 100
    (scheduled,) = [j for j in out.jobs if j.reason == "scheduled" and j.cursor is None]
    assert (scheduled.window_start, scheduled.window_end) == (first, last)
    assert await integration_status() == ("active", None)
    resumed = out.last_status(event.integration_id)
    assert resumed is not None
    assert resumed.reason_code is None
    assert resumed.data_through == date.fromisoformat(truth["data_through"])

    assert_premium_exact(out.day_spends, truth, first, clock.today() - timedelta(days=1))
    assert_seats_exact(out.seats[0], truth, clock.now(), first, last)


async def test_a_revoked_token_fails_the_integration_until_a_new_token_resumes_it(
    *,
    clock: ClockView,
    github: GithubSandboxClient,
    sandbox_url: str,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_syncer: StartSyncer,
    db: asyncpg.Connection[Any],
) -> None:
    org = await github.create_org(seed=9)
    event = copilot_connected_event(sealer, org)
    rotated = await github.rotate_token(org)  # the connected token is revoked
    settings = make_settings(sandbox_url)

    def failed() -> bool:
        last = out.last_status(event.integration_id)
        return last is not None and last.reason_code == "invalid_api_key"

    async with collecting(settings) as out:
        await start_syncer(settings)
        await publish(settings, topics.INTEGRATIONS, event)
        await wait_for(failed, 60, "the rejected token to be reported")
        last = out.last_status(event.integration_id)
        assert last is not None
        assert last.state == "error"
        assert "GitHub rejected the token" in (last.message or "")
        row = await db.fetchrow(
            "SELECT status, status_reason FROM syncer.integrations WHERE integration_id = $1",
            event.integration_id,
        )
        assert row is not None
        assert (row["status"], row["status_reason"]) == ("failed", "invalid_api_key")
        assert out.records == []

        rotation = IntegrationCredentialsRotated(
            org_id=ORG,
            integration_id=event.integration_id,
            provider="github_copilot",
            plan="business",
            sealed_credential=sealer.seal(rotated.token, context=str(event.integration_id)),
        )
        await publish(settings, topics.INTEGRATIONS, rotation)
        await wait_for(lambda: out.is_idle(event.integration_id), 60, "the resumed backfill")
    first, last_day = clock.window(30)
    truth = await truth_of(github, org, first, last_day)
    assert assert_copilot_exact(out.records_of(event.integration_id), truth, first, last_day) > 100


async def test_a_day_github_publishes_later_becomes_complete(
    *,
    clock: ClockView,
    github: GithubSandboxClient,
    sandbox_url: str,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_syncer: StartSyncer,
    db: asyncpg.Connection[Any],
) -> None:
    org = await github.create_org(seed=10)
    settings = make_settings(sandbox_url)
    event = copilot_connected_event(sealer, org)
    unpublished = clock.today() - timedelta(days=2)
    async with collecting(settings, with_jobs=True) as out:
        await start_syncer(settings)
        await publish(settings, topics.INTEGRATIONS, event)
        await wait_for(lambda: out.is_idle(event.integration_id), 60, "the backfill to finish")
        assert [r for r in out.records if r.day == unpublished] == []
        idle_before = len(out.statuses_of(event.integration_id))

        clock.advance(86_400)  # a day later GitHub has published it
        # The next scheduled sync is due now, as it would be an interval later.
        await db.execute(
            "UPDATE syncer.schedules SET next_run_at = now() WHERE integration_id = $1",
            event.integration_id,
        )

        def resynced() -> bool:
            statuses = out.statuses_of(event.integration_id)
            return len(statuses) > idle_before and out.is_idle(event.integration_id)

        await wait_for(resynced, 60, "the scheduled sync to finish")
    (scheduled,) = [j for j in out.jobs if j.reason == "scheduled" and j.cursor is None]
    # It re-reads back to the oldest day not yet published, beyond the usual last three days.
    assert (scheduled.window_start, scheduled.window_end) == (unpublished, clock.today())
    truth = await truth_of(github, org, unpublished, unpublished)
    assert truth["days"][unpublished.isoformat()]["reported"] is True
    assert truth["data_through"] == unpublished.isoformat()
    day_records = [r for r in out.records if r.day == unpublished]
    assert assert_copilot_exact(day_records, truth, unpublished, unpublished) > 0
    final = out.last_status(event.integration_id)
    assert final is not None
    assert final.data_through == unpublished
    complete = await db.fetchval(
        "SELECT count(*) FROM syncer.complete_days WHERE integration_id = $1 AND day = $2",
        event.integration_id,
        unpublished,
    )
    assert complete == 1
