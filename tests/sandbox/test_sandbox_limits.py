"""Rate limits: per team and endpoint, rolling windows, 429 body and an occasional Retry-After."""

from __future__ import annotations

from koalr_sandbox.clock import ManualClock
from koalr_sandbox.limits import RateLimiter
from koalr_sandbox.testing import SandboxClient, SandboxTeam

TOO_MANY = {"error": "Too Many Requests", "message": "Rate limit exceeded. Please try again later."}


async def statuses(sandbox: SandboxClient, team: SandboxTeam, path: str, count: int) -> list[int]:
    method = "GET" if path == "/teams/members" or path.startswith("/analytics") else "POST"
    body: dict[str, object] | None = None if method == "GET" else {}
    return [(await sandbox.cursor(team, method, path, body=body)).status_code for _ in range(count)]


async def test_documented_defaults(sandbox: SandboxClient) -> None:
    team = await sandbox.create_team(rate_limits_enabled=True)
    assert await statuses(sandbox, team, "/teams/members", 21) == [200] * 20 + [429]
    assert await statuses(sandbox, team, "/teams/spend", 21) == [200] * 20 + [429]
    assert await statuses(sandbox, team, "/teams/filtered-usage-events", 61) == [200] * 60 + [429]
    assert await statuses(sandbox, team, "/analytics/team/dau", 101) == [200] * 100 + [429]
    # Each endpoint has its own bucket: models still has its full budget.
    assert await statuses(sandbox, team, "/analytics/team/models", 1) == [200]


async def test_429_body_and_retry_after_on_some_responses(
    sandbox: SandboxClient, clock: ManualClock
) -> None:
    team = await sandbox.create_team(
        rate_limits_enabled=True, rate_limits={"default": 3}, retry_after_ratio=0.5
    )
    assert await statuses(sandbox, team, "/teams/members", 3) == [200] * 3
    clock.advance(12.5)
    rejected = [await sandbox.cursor(team, "GET", "/teams/members") for _ in range(40)]
    assert {r.status_code for r in rejected} == {429}
    assert all(r.json() == TOO_MANY for r in rejected)
    hints = [r.headers.get("Retry-After") for r in rejected]
    with_hint = [h for h in hints if h is not None]
    assert 0 < len(with_hint) < len(hints)
    assert set(with_hint) == {"48"}  # whole seconds until the oldest request leaves the window


async def test_retry_after_ratio_extremes(sandbox: SandboxClient) -> None:
    always = await sandbox.create_team(
        rate_limits_enabled=True, rate_limits={"default": 1}, retry_after_ratio=1.0
    )
    never = await sandbox.create_team(
        rate_limits_enabled=True, rate_limits={"default": 1}, retry_after_ratio=0.0
    )
    for team, expect_hint in ((always, True), (never, False)):
        await sandbox.cursor(team, "GET", "/teams/members")
        for _ in range(5):
            response = await sandbox.cursor(team, "GET", "/teams/members")
            assert response.status_code == 429
            assert ("Retry-After" in response.headers) is expect_hint


async def test_rolling_window_and_rejections_do_not_consume(
    sandbox: SandboxClient, clock: ManualClock
) -> None:
    team = await sandbox.create_team(rate_limits_enabled=True, rate_limits={"default": 2})
    assert await statuses(sandbox, team, "/teams/members", 1) == [200]
    clock.advance(30)
    assert await statuses(sandbox, team, "/teams/members", 4) == [200, 429, 429, 429]
    clock.advance(29.9)  # the first request is still inside the window
    assert await statuses(sandbox, team, "/teams/members", 1) == [429]
    clock.advance(0.1)  # 60 s after the first request: one slot frees
    assert await statuses(sandbox, team, "/teams/members", 2) == [200, 429]
    clock.advance(30)  # the second request leaves; rejected ones never counted
    assert await statuses(sandbox, team, "/teams/members", 2) == [200, 429]


async def test_limits_are_per_team(sandbox: SandboxClient) -> None:
    first = await sandbox.create_team(rate_limits_enabled=True, rate_limits={"default": 1})
    second = await sandbox.create_team(rate_limits_enabled=True, rate_limits={"default": 1})
    assert await statuses(sandbox, first, "/teams/members", 2) == [200, 429]
    assert await statuses(sandbox, second, "/teams/members", 2) == [200, 429]


async def test_limits_change_at_run_time(sandbox: SandboxClient, clock: ManualClock) -> None:
    team = await sandbox.create_team(rate_limits_enabled=True, rate_limits={"default": 2})
    assert await statuses(sandbox, team, "/teams/members", 3) == [200, 200, 429]
    config = await sandbox.configure(team, rate_limits={"default": 4})
    assert config["rate_limits"] == {"default": 4, "usage_events": 60, "analytics": 100}
    assert await statuses(sandbox, team, "/teams/members", 3) == [200, 200, 429]
    await sandbox.configure(team, rate_limits_enabled=False)
    assert await statuses(sandbox, team, "/teams/members", 10) == [200] * 10
    await sandbox.configure(team, rate_limits_enabled=True, rate_window_s=5)
    clock.advance(5)
    assert await statuses(sandbox, team, "/teams/members", 5) == [200] * 4 + [429]


async def test_auth_and_plan_errors_do_not_consume(sandbox: SandboxClient) -> None:
    team = await sandbox.create_team(
        plan="business", rate_limits_enabled=True, rate_limits={"default": 2, "analytics": 2}
    )
    for _ in range(5):
        assert (
            await sandbox.cursor(team, "GET", "/teams/members", api_key="nope")
        ).status_code == 401
        assert (await sandbox.cursor(team, "GET", "/analytics/team/dau")).status_code == 403
    assert await statuses(sandbox, team, "/teams/members", 3) == [200, 200, 429]
    await sandbox.configure(team, plan="enterprise")
    assert await statuses(sandbox, team, "/analytics/team/dau", 3) == [200, 200, 429]


async def test_requests_log_counts_calls_and_429s(
    sandbox: SandboxClient, clock: ManualClock
) -> None:
    team = await sandbox.create_team(
        rate_limits_enabled=True, rate_limits={"default": 2}, retry_after_ratio=1.0
    )
    await statuses(sandbox, team, "/teams/members", 3)
    clock.advance(1.5)
    await statuses(sandbox, team, "/teams/spend", 1)
    log = await sandbox.request_log(team)
    assert [(r["method"], r["path"], r["status"], r["retry_after"]) for r in log] == [
        ("GET", "/teams/members", 200, None),
        ("GET", "/teams/members", 200, None),
        ("GET", "/teams/members", 429, 60),
        ("POST", "/teams/spend", 200, None),
    ]
    assert [r["at"] for r in log] == ["2026-03-18T15:00:00.000Z"] * 3 + ["2026-03-18T15:00:01.500Z"]
    assert await sandbox.request_log(team, since=3) == log[3:]


def test_rate_limiter_retry_hint_after_lowering_the_limit() -> None:
    limiter: RateLimiter[str] = RateLimiter()
    for t in (0.0, 10.0, 20.0, 30.0):
        assert limiter.acquire("members", 4, 60.0, t) is None
    assert limiter.acquire("members", 4, 60.0, 40.0) == 20.0
    # Lowered to 2: three of the four must leave first; the last of them was taken at 20 s.
    assert limiter.acquire("members", 2, 60.0, 40.0) == 40.0
    assert limiter.used("members", 60.0, 40.0) == 4
    assert limiter.acquire("members", 2, 60.0, 70.0) == 10.0  # 20 s and 30 s still held
    assert limiter.acquire("members", 2, 60.0, 80.0) is None
