"""Key validation and plan detection against the Cursor API sandbox."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from koalr_devstack.processes import free_port
from koalr_providers.cursor import CursorPlanDetector
from koalr_providers.errors import InvalidApiKeyError, ProviderUnavailableError
from koalr_sandbox.testing import SandboxClient


@pytest.fixture
async def cursor_http(sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=5) as http:
        yield http


def _paths(log: list[dict[str, object]]) -> list[tuple[object, object, object]]:
    return [(e["method"], e["path"], e["status"]) for e in log]


@pytest.mark.parametrize(
    ("plan", "calls"),
    [
        (
            "enterprise",
            [
                ("GET", "/teams/members", 200),
                ("POST", "/teams/daily-usage-data", 200),
                ("GET", "/analytics/team/dau", 200),
            ],
        ),
        (
            "business",
            [
                ("GET", "/teams/members", 200),
                ("POST", "/teams/daily-usage-data", 200),
                ("GET", "/analytics/team/dau", 403),
            ],
        ),
        (
            "team",
            [("GET", "/teams/members", 200), ("POST", "/teams/daily-usage-data", 403)],
        ),
    ],
)
async def test_the_plan_is_detected_with_one_call_per_endpoint(
    sandbox: SandboxClient,
    cursor_http: httpx.AsyncClient,
    plan: str,
    calls: list[tuple[str, str, int]],
) -> None:
    team = await sandbox.create_team(plan=plan)
    client = CursorPlanDetector(cursor_http, timeout_s=5)
    assert await client.detect_plan(team.api_key) == plan
    assert _paths(await sandbox.request_log(team)) == calls


async def test_a_rejected_key_is_invalid(
    sandbox: SandboxClient, cursor_http: httpx.AsyncClient
) -> None:
    team = await sandbox.create_team(plan="business")
    rotated = await sandbox.rotate_key(team)
    client = CursorPlanDetector(cursor_http, timeout_s=5)
    with pytest.raises(InvalidApiKeyError, match="HTTP 401") as caught:
        await client.detect_plan(team.api_key)
    assert team.api_key not in caught.value.message
    assert _paths(await sandbox.request_log(team)) == [("GET", "/teams/members", 401)]
    assert await client.detect_plan(rotated.api_key) == "business"


async def test_provider_5xx_is_unavailable(
    sandbox: SandboxClient, cursor_http: httpx.AsyncClient
) -> None:
    team = await sandbox.create_team(plan="enterprise", fault_rate_5xx=1.0)
    with pytest.raises(ProviderUnavailableError, match="HTTP 500 on /teams/members"):
        await CursorPlanDetector(cursor_http, timeout_s=5).detect_plan(team.api_key)


async def test_a_stalled_provider_is_unavailable_within_the_budget(
    sandbox: SandboxClient, cursor_http: httpx.AsyncClient
) -> None:
    team = await sandbox.create_team(plan="enterprise", fault_rate_stall=1.0, stall_s=4)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailableError, match=r"did not answer within 1 s"):
        await CursorPlanDetector(cursor_http, timeout_s=1).detect_plan(team.api_key)
    assert 0.9 < time.monotonic() - started < 2.5


async def test_an_unreachable_provider_is_unavailable() -> None:
    port = free_port()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
        with pytest.raises(ProviderUnavailableError, match="could not be reached"):
            await CursorPlanDetector(http, timeout_s=5).detect_plan("crsr_" + "a" * 64)


async def test_a_429_is_retried_once_after_retry_after(
    sandbox: SandboxClient, cursor_http: httpx.AsyncClient, retry_waits: list[float]
) -> None:
    team = await sandbox.create_team(
        plan="business",
        rate_limits_enabled=True,
        rate_limits={"default": 1},
        rate_window_s=1.0,
        retry_after_ratio=1.0,
    )
    await sandbox.cursor(team, "GET", "/teams/members")  # spends the one-per-second budget
    client = CursorPlanDetector(cursor_http, timeout_s=5)
    assert await client.detect_plan(team.api_key) == "business"
    log = await sandbox.request_log(team)
    assert _paths(log)[:3] == [
        ("GET", "/teams/members", 200),
        ("GET", "/teams/members", 429),
        ("GET", "/teams/members", 200),
    ]
    assert log[1]["retry_after"] == 1
    assert retry_waits == [1.0]


async def test_a_429_beyond_the_budget_is_unavailable_without_waiting(
    sandbox: SandboxClient, cursor_http: httpx.AsyncClient
) -> None:
    team = await sandbox.create_team(
        plan="business",
        rate_limits_enabled=True,
        rate_limits={"default": 1},
        retry_after_ratio=1.0,
    )
    await sandbox.cursor(team, "GET", "/teams/members")
    started = time.monotonic()
    with pytest.raises(ProviderUnavailableError, match="rate limiting"):
        await CursorPlanDetector(cursor_http, timeout_s=5).detect_plan(team.api_key)
    assert time.monotonic() - started < 1.0
    assert _paths(await sandbox.request_log(team)) == [
        ("GET", "/teams/members", 200),
        ("GET", "/teams/members", 429),
    ]


async def test_a_429_without_retry_after_waits_one_to_two_seconds(
    sandbox: SandboxClient, cursor_http: httpx.AsyncClient, retry_waits: list[float]
) -> None:
    team = await sandbox.create_team(
        plan="team",
        rate_limits_enabled=True,
        rate_limits={"default": 1},
        rate_window_s=1.0,
        retry_after_ratio=0.0,
    )
    await sandbox.cursor(team, "GET", "/teams/members")
    client = CursorPlanDetector(cursor_http, timeout_s=5)
    assert await client.detect_plan(team.api_key) == "team"
    assert len(retry_waits) == 1
    assert 1.0 <= retry_waits[0] <= 2.0


@pytest.mark.parametrize("probe_status", [401, 403, 404])
async def test_an_absent_enterprise_probe_means_business_never_a_failed_connect(
    sandbox: SandboxClient, sandbox_url: str, cursor_http: httpx.AsyncClient, probe_status: int
) -> None:
    team = await sandbox.create_team(plan="enterprise")
    with respx.mock(base_url=sandbox_url, assert_all_called=True) as cursor:
        probe = cursor.get("/analytics/team/dau").respond(probe_status)
        cursor.route().pass_through()
        plan = await CursorPlanDetector(cursor_http, timeout_s=5).detect_plan(team.api_key)
    assert plan == "business"
    assert probe.call_count == 1
    assert _paths(await sandbox.request_log(team)) == [
        ("GET", "/teams/members", 200),
        ("POST", "/teams/daily-usage-data", 200),
    ]


async def test_an_unexpected_probe_answer_is_unavailable_not_a_guess(
    sandbox: SandboxClient, sandbox_url: str, cursor_http: httpx.AsyncClient
) -> None:
    team = await sandbox.create_team(plan="enterprise")
    with respx.mock(base_url=sandbox_url) as cursor:
        cursor.get("/analytics/team/dau").respond(400)
        cursor.route().pass_through()
        with pytest.raises(ProviderUnavailableError, match="HTTP 400 on /analytics/team/dau"):
            await CursorPlanDetector(cursor_http, timeout_s=5).detect_plan(team.api_key)
