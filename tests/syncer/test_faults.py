"""With 5xx, stalls and 429s injected the result is still exact; paced to the limits, no 429."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from koalr_contracts import topics
from koalr_runtime.sealing import Sealer
from koalr_sandbox.testing import SandboxClient
from tests.syncer.conftest import ClockView, MakeSettings, StartSyncer
from tests.syncer.helpers import (
    assert_cycle_exact,
    assert_exact,
    collecting,
    connected_event,
    publish,
    truth_of,
    wait_for,
)

pytestmark = pytest.mark.integration


def provider_calls(outcome: str) -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name == "koalr_provider_requests":
            total += sum(
                s.value
                for s in metric.samples
                if s.name.endswith("_total") and s.labels.get("outcome") == outcome
            )
    return total


async def test_5xx_and_stalls_are_retried_and_the_result_is_exact(
    *,
    clock: ClockView,
    sandbox: SandboxClient,
    sandbox_url: str,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_syncer: StartSyncer,
) -> None:
    team = await sandbox.create_team(seed=5, fault_rate_5xx=0.25, fault_rate_stall=0.1, stall_s=1.5)
    settings = make_settings(sandbox_url, http_read_timeout_s=0.5, http_max_retries=12)
    timeouts_before = provider_calls("timeout")
    event = connected_event(sealer, team)
    async with collecting(settings) as out:
        await start_syncer(settings)
        await publish(settings, topics.INTEGRATIONS, event)
        await wait_for(lambda: out.is_idle(event.integration_id), 90, "the backfill to finish")
    first, last = clock.window(30)
    truth = await truth_of(sandbox, team, first, last)
    assert assert_exact(out.records_of(event.integration_id), truth, first, last) > 50
    (snapshot,) = out.snapshots_of(event.integration_id)
    assert_cycle_exact(snapshot, truth)
    log = await sandbox.request_log(team)
    assert sum(1 for r in log if r["status"] == 500) >= 2
    assert provider_calls("timeout") - timeouts_before >= 1  # stalled answers were cut


async def test_429s_are_honoured_and_the_result_is_exact(
    *,
    live_clock: ClockView,
    live_sandbox: SandboxClient,
    live_sandbox_url: str,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_syncer: StartSyncer,
) -> None:
    team = await live_sandbox.create_team(
        seed=9,
        rate_limits_enabled=True,
        rate_limits={"default": 2, "usage_events": 3},
        rate_window_s=2.0,
        retry_after_ratio=0.5,
    )
    # The syncer believes in far higher limits, so the sandbox answers 429 often.
    settings = make_settings(
        live_sandbox_url,
        rate_limit_default=1000,
        rate_limit_usage_events=1000,
        http_rate_limit_retries=40,
        retry_base_s=0.2,
        retry_max_s=1.0,
    )
    event = connected_event(sealer, team)
    async with collecting(settings, with_jobs=True) as out:
        await start_syncer(settings, now=live_clock.now)
        await publish(settings, topics.INTEGRATIONS, event)
        await wait_for(lambda: out.is_idle(event.integration_id), 100, "the backfill to finish")
    log = await live_sandbox.request_log(team)
    throttled = [r for r in log if r["status"] == 429]
    assert len(throttled) >= 3
    assert any(r["retry_after"] for r in throttled)
    # Today keeps moving on a live clock; every complete day of the syncer's window must be exact.
    first, today = out.backfill_window(event.integration_id)
    last = today - timedelta(days=1)
    truth = await truth_of(live_sandbox, team, first, last)
    assert assert_exact(out.records_of(event.integration_id), truth, first, last) > 50


async def test_paced_to_the_limits_a_backfill_receives_no_429(
    *,
    live_clock: ClockView,
    live_sandbox: SandboxClient,
    live_sandbox_url: str,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_syncer: StartSyncer,
) -> None:
    limits = {"default": 3, "usage_events": 4}
    team = await live_sandbox.create_team(
        seed=21, rate_limits_enabled=True, rate_limits=limits, rate_window_s=2.0
    )
    settings = make_settings(
        live_sandbox_url,
        rate_limit_default=limits["default"],
        rate_limit_usage_events=limits["usage_events"],
        rate_window_s=2.0,
    )
    event = connected_event(sealer, team)
    async with collecting(settings, with_jobs=True) as out:
        await start_syncer(settings, now=live_clock.now)
        await publish(settings, topics.INTEGRATIONS, event)
        await wait_for(lambda: out.is_idle(event.integration_id), 100, "the backfill to finish")
    log = await live_sandbox.request_log(team)
    assert [r for r in log if r["status"] == 429] == []
    by_path: dict[str, list[datetime]] = defaultdict(list)
    for r in log:
        by_path[r["path"]].append(datetime.fromisoformat(r["at"]))
    limit_of = {"/teams/filtered-usage-events": limits["usage_events"]}
    assert len(by_path["/teams/daily-usage-data"]) > limits["default"]  # pacing was needed
    for path, times in by_path.items():
        limit = limit_of.get(path, limits["default"])
        for t in times:
            in_window = sum(1 for u in times if t <= u < t + timedelta(seconds=2))
            assert in_window <= limit, (path, t)
    first, today = out.backfill_window(event.integration_id)
    last = today - timedelta(days=1)
    truth = await truth_of(live_sandbox, team, first, last)
    assert assert_exact(out.records_of(event.integration_id), truth, first, last) > 50
