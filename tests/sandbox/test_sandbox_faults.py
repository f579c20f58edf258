"""Injected 5xx, stalls and latency."""

from __future__ import annotations

import asyncio
import contextlib
import time

from koalr_sandbox.testing import SandboxClient


async def test_full_5xx_rate_fails_everything_without_using_the_budget(
    sandbox: SandboxClient,
) -> None:
    team = await sandbox.create_team(
        fault_rate_5xx=1.0, rate_limits_enabled=True, rate_limits={"default": 2}
    )
    codes = [(await sandbox.cursor(team, "GET", "/teams/members")).status_code for _ in range(8)]
    assert codes == [500] * 8
    await sandbox.configure(team, fault_rate_5xx=0.0)
    codes = [(await sandbox.cursor(team, "GET", "/teams/members")).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


async def test_fault_decisions_are_reproducible_from_the_seed(sandbox: SandboxClient) -> None:
    runs = []
    for _ in range(2):
        team = await sandbox.create_team(seed=99, fault_rate_5xx=0.5)
        runs.append(
            [(await sandbox.cursor(team, "GET", "/teams/members")).status_code for _ in range(30)]
        )
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 500}
    other = await sandbox.create_team(seed=100, fault_rate_5xx=0.5)
    codes = [(await sandbox.cursor(other, "GET", "/teams/members")).status_code for _ in range(30)]
    assert codes != runs[0]


async def test_stall_delays_then_answers_normally(sandbox: SandboxClient) -> None:
    team = await sandbox.create_team(fault_rate_stall=1.0, stall_s=0.3)
    started = time.perf_counter()
    response = await sandbox.cursor(team, "GET", "/teams/members")
    assert time.perf_counter() - started >= 0.3
    assert response.status_code == 200
    assert len(response.json()["teamMembers"]) == 12


async def test_a_stalled_call_does_not_block_others(sandbox: SandboxClient) -> None:
    stalled = await sandbox.create_team(fault_rate_stall=1.0, stall_s=5.0)
    healthy = await sandbox.create_team()
    hanging = asyncio.create_task(sandbox.cursor(stalled, "GET", "/teams/members"))
    started = time.perf_counter()
    response = await sandbox.cursor(healthy, "GET", "/teams/members")
    assert response.status_code == 200
    assert time.perf_counter() - started < 2.0
    assert not hanging.done()
    hanging.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await hanging


async def test_latency_is_added_to_every_response(sandbox: SandboxClient) -> None:
    team = await sandbox.create_team(latency_ms=150, fault_rate_5xx=0.5)
    rotated = await sandbox.rotate_key(team)
    statuses = set()
    for key in [rotated.api_key] * 6 + [team.api_key]:  # answers of all kinds, incl. a 401
        started = time.perf_counter()
        response = await sandbox.cursor(team, "GET", "/teams/members", api_key=key)
        assert time.perf_counter() - started >= 0.15
        statuses.add(response.status_code)
    assert statuses == {200, 401, 500}
