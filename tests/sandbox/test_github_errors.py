"""GitHub's errors, in order: version, credentials, org, permission, policy, faults, limits."""

from __future__ import annotations

import asyncio
from typing import Any

from koalr_sandbox.clock import ManualClock
from koalr_sandbox.testing import GithubSandboxClient, SandboxOrg

DOCS = "https://docs.github.com/rest"


def error(status: int, message: str) -> dict[str, str]:
    return {"message": message, "documentation_url": DOCS, "status": str(status)}


def routes(org: SandboxOrg) -> list[tuple[str, dict[str, Any]]]:
    reports = f"/orgs/{org.org}/copilot/metrics/reports"
    return [
        (f"/orgs/{org.org}/copilot/billing", {}),
        (f"/orgs/{org.org}/copilot/billing/seats", {}),
        (f"{reports}/users-1-day", {"day": "2026-03-10"}),
        (f"{reports}/organization-28-day/latest", {}),
        (f"/organizations/{org.org}/settings/billing/premium_request/usage", {}),
    ]


async def test_bad_credentials_answer_401(github: GithubSandboxClient) -> None:
    org = await github.create_org()
    for path, params in routes(org):
        anonymous = await github.http.get(path, params=params)
        unknown = await github.call(org, path, params=params, token="ghp_unknown")
        for response in (anonymous, unknown):
            assert response.status_code == 401
            assert response.json() == error(401, "Bad credentials")
    rotated = await github.rotate_token(org)
    old = await github.call(org, f"/orgs/{org.org}/copilot/billing")
    assert old.status_code == 401
    assert (await github.call(rotated, f"/orgs/{org.org}/copilot/billing")).status_code == 200
    revoked = await github.http.post(f"/_sandbox/github/orgs/{org.org}/revoke-token")
    assert revoked.status_code == 204
    assert (await github.call(rotated, f"/orgs/{org.org}/copilot/billing")).status_code == 401
    log = (await github.http.get(f"/_sandbox/github/orgs/{org.org}/requests")).json()
    assert [r["status"] for r in log["requests"]] == [401, 200, 401]


async def test_an_unsupported_api_version_answers_400(github: GithubSandboxClient) -> None:
    org = await github.create_org()
    path = f"/orgs/{org.org}/copilot/billing"
    response = await github.call(org, path, version="2021-01-01")
    assert response.status_code == 400
    assert response.json()["message"].startswith(
        "Unsupported 'X-GitHub-Api-Version' header value: 2021-01-01."
    )
    for version in (None, "2022-11-28", "2026-03-10"):
        assert (await github.call(org, path, version=version)).status_code == 200


async def test_unknown_org_and_another_orgs_token_answer_404(
    github: GithubSandboxClient,
) -> None:
    org = await github.create_org()
    other = await github.create_org(seed=2)
    for path, params in routes(other):
        response = await github.call(org, path, params=params)
        assert response.status_code == 404
        assert response.json() == error(404, "Not Found")
    unknown = await github.call(org, "/orgs/no-such-org/copilot/billing")
    assert unknown.status_code == 404
    for path in (f"/orgs/{org.org}/copilot/metrics", f"/enterprises/{org.org}/copilot/billing"):
        not_served = await github.call(org, path)
        assert not_served.status_code == 404
        assert not_served.json() == error(404, "Not Found")


async def test_a_token_without_the_permission_answers_403(github: GithubSandboxClient) -> None:
    org = await github.create_org()
    seats_only = await github.token_with(org, "copilot_seats")
    statuses = [
        (await github.call(org, path, params=params, token=seats_only)).status_code
        for path, params in routes(org)
    ]
    assert statuses == [200, 200, 403, 403, 403]
    refused = await github.call(
        org, routes(org)[2][0], params={"day": "2026-03-10"}, token=seats_only
    )
    assert refused.json() == error(403, "Resource not accessible by personal access token")


async def test_metrics_policy_off_refuses_reports_but_not_seats(
    github: GithubSandboxClient,
) -> None:
    org = await github.create_org(metrics_policy=False)
    statuses = [(await github.call(org, p, params=q)).status_code for p, q in routes(org)]
    assert statuses == [200, 200, 403, 403, 200]
    refused = await github.call(org, routes(org)[2][0], params={"day": "2026-03-10"})
    assert refused.json() == error(
        403, "Copilot Usage Metrics API access is disabled for this organization."
    )
    await github.configure(org, metrics_policy=True)
    assert (await github.report(org, "users-1-day", "2026-03-10"))["download_links"]


async def test_injected_server_errors(github: GithubSandboxClient) -> None:
    org = await github.create_org(fault_rate_5xx=1.0)
    response = await github.call(org, f"/orgs/{org.org}/copilot/billing")
    assert response.status_code == 500
    assert response.json() == error(500, "Server Error")
    await github.configure(org, fault_rate_5xx=0.0, latency_ms=50)
    assert (await github.call(org, f"/orgs/{org.org}/copilot/billing")).status_code == 200


async def test_primary_limit_and_rate_limit_headers(
    github: GithubSandboxClient, clock: ManualClock
) -> None:
    org = await github.create_org(rate_limits_enabled=True, primary_limit_per_hour=3)
    path = f"/orgs/{org.org}/copilot/billing"
    started = int(clock.now())
    remaining = []
    for _ in range(3):
        response = await github.call(org, path)
        assert response.status_code == 200
        assert response.headers["x-ratelimit-limit"] == "3"
        assert response.headers["x-ratelimit-reset"] == str(started + 3600)
        assert response.headers["x-ratelimit-resource"] == "core"
        remaining.append(response.headers["x-ratelimit-remaining"])
    assert remaining == ["2", "1", "0"]
    limited = await github.call(org, path)
    assert limited.status_code == 403
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert limited.headers["x-ratelimit-used"] == "3"
    assert limited.json()["message"].startswith("API rate limit exceeded")
    await github.configure(org, primary_status=429)
    assert (await github.call(org, path)).status_code == 429
    clock.advance(3599)
    assert (await github.call(org, path)).status_code == 429
    clock.advance(1)
    again = await github.call(org, path)
    assert again.status_code == 200
    assert again.headers["x-ratelimit-remaining"] == "2"
    assert again.headers["x-ratelimit-reset"] == str(started + 7200)


async def test_a_faulty_client_meets_secondary_limits_with_retry_after(
    github: GithubSandboxClient, clock: ManualClock
) -> None:
    org = await github.create_org(
        rate_limits_enabled=True, secondary_limit_per_minute=5, secondary_429_ratio=1.0
    )
    path = f"/orgs/{org.org}/copilot/billing/seats"
    for _ in range(5):
        assert (await github.call(org, path)).status_code == 200
    clock.advance(20)
    limited = await github.call(org, path)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "40"
    assert limited.json()["message"].startswith("You have exceeded a secondary rate limit")
    assert limited.headers["x-ratelimit-remaining"] != "0", "not the primary limit"
    other_route = await github.call(org, f"/orgs/{org.org}/copilot/billing")
    assert other_route.status_code == 200, "the secondary limit is per route"
    await github.configure(org, secondary_429_ratio=0.0)
    assert (await github.call(org, path)).status_code == 403
    clock.advance(40)
    assert (await github.call(org, path)).status_code == 200
    log = (await github.http.get(f"/_sandbox/github/orgs/{org.org}/requests")).json()
    assert [r["retry_after"] for r in log["requests"] if r["status"] != 200] == [40, 40]


async def test_too_many_concurrent_requests_meet_a_secondary_limit(
    github: GithubSandboxClient,
) -> None:
    org = await github.create_org(rate_limits_enabled=True, max_concurrent=1, latency_ms=0)
    await github.configure(org, fault_rate_stall=1.0, stall_s=0.3)
    path = f"/orgs/{org.org}/copilot/billing"
    first, second = await asyncio.gather(github.call(org, path), github.call(org, path))
    assert sorted([first.status_code, second.status_code]) in ([200, 403], [200, 429])
    limited = first if first.status_code != 200 else second
    assert limited.headers["retry-after"] == "60"
