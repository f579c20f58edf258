"""The GitHub Copilot client against the real sandbox over HTTP, on a frozen clock.

Now is Wednesday 2026-03-18 15:00 UTC, so with GitHub's two-day delay 2026-03-15 is the last
published day. Every number is checked against the sandbox's ground truth.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from koalr_providers.github import (
    GitHubClient,
    GitHubDetector,
    HeaderPacer,
    InsufficientPermissionsError,
    InvalidApiKeyError,
    MetricsDisabledError,
    OrgNotFoundError,
    ProviderError,
    ProviderUnavailableError,
    RetryPolicy,
)
from koalr_providers.github.definitions import model_breakdown, requests, seats_cents
from koalr_sandbox.clock import ManualClock
from koalr_sandbox.testing import GithubSandboxClient, SandboxOrg, run_sandbox

NOW = datetime(2026, 3, 18, 15, 0, tzinfo=UTC)
LAST_PUBLISHED = date(2026, 3, 15)
SMALL_ORG: dict[str, Any] = {"seats": 40, "days": 10, "seed": 3, "rate_limits_enabled": False}
#: Waits of milliseconds: the shape of the real policy, fast.
FAST = RetryPolicy(max_retries=2, rate_limit_retries=3, base_s=0.01, max_s=0.05)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def sandbox_base(clock: ManualClock) -> Iterator[str]:
    with run_sandbox(clock=clock) as base_url:
        yield base_url


@pytest.fixture
async def github(sandbox_base: str) -> AsyncIterator[GithubSandboxClient]:
    async with httpx.AsyncClient(base_url=sandbox_base, timeout=30) as http:
        yield GithubSandboxClient(http, defaults=SMALL_ORG)


class Recorder:
    """The requests an HTTP client sent, as (method, path, headers, query)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> None:
        self.requests.append(request)

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def http(sandbox_base: str, recorder: Recorder) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=sandbox_base, timeout=30, event_hooks={"request": [recorder]}
    ) as client:
        yield client


def client_of(http: httpx.AsyncClient, org: SandboxOrg, **kwargs: Any) -> GitHubClient:
    options: dict[str, Any] = {"policy": FAST} | kwargs
    return GitHubClient(http, org.token, org=org.org, **options)


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(n) for n in range((last - first).days + 1)]


async def test_every_call_sends_githubs_headers_and_billing_gives_the_plan(
    github: GithubSandboxClient, http: httpx.AsyncClient, recorder: Recorder
) -> None:
    business = await github.create_org(plan="business")
    enterprise = await github.create_org(plan="enterprise")
    assert await client_of(http, business).billing() == "business"
    assert await client_of(http, enterprise).billing() == "enterprise"
    assert len(recorder.requests) == 2
    for request in recorder.requests:
        assert request.headers["authorization"] in {
            f"Bearer {business.token}",
            f"Bearer {enterprise.token}",
        }
        assert request.headers["accept"] == "application/vnd.github+json"
        assert request.headers["x-github-api-version"] == "2026-03-10"


async def test_seats_follow_the_link_header_across_pages(
    github: GithubSandboxClient, http: httpx.AsyncClient, recorder: Recorder
) -> None:
    org = await github.create_org(seats=230)
    seats = await client_of(http, org).seats()
    expected = await github.seats(org, per_page=100)
    assert [s.login for s in seats] == [s["assignee"]["login"] for s in expected]
    assert len(seats) == 230
    queries = [dict(r.url.params) for r in recorder.requests]
    assert queries == [
        {"per_page": "100"},
        {"per_page": "100", "page": "2"},
        {"per_page": "100", "page": "3"},
    ]
    never_used = sum(1 for s in seats if s.last_activity_at is None)
    truth = await github.truth(org, "2026-03-18", "2026-03-18")
    assert never_used == truth["seats"]["never_used"]
    assert len(seats) == truth["seats"]["total"]


async def test_section_6b_numbers_equal_the_truth_for_every_published_day(
    github: GithubSandboxClient, http: httpx.AsyncClient
) -> None:
    org = await github.create_org(rows_per_file=7)
    client = client_of(http, org)
    plan = await client.billing()
    seats = await client.seats()
    truth = await github.truth(org, "2026-03-09", "2026-03-18")
    published = [d for d in days(date(2026, 3, 9), date(2026, 3, 18)) if d <= LAST_PUBLISHED]
    assert truth["data_through"] == LAST_PUBLISHED.isoformat()
    checked = 0
    for day in published:
        expected = truth["days"][day.isoformat()]
        assert expected["reported"] is True
        rows = await client.users_day(day)
        assert rows is not None
        models: Counter[str] = Counter()
        for row in rows:
            breakdown = model_breakdown(row)
            assert sum(breakdown.values()) == requests(row)
            models.update(breakdown)
        assert len({r.user_id for r in rows}) == len(rows) == expected["dau"]
        assert sum(requests(r) for r in rows) == expected["requests"]
        assert dict(models) == expected["models"]
        assert await client.premium_request_cents(day) == Decimal(expected["premium_cents"])
        assert seats_cents(seats, day, plan) == Decimal(expected["seat_cents"])
        checked += 1
    assert checked == 7


async def test_unpublished_days_are_none_with_empty_links_or_204(
    github: GithubSandboxClient, http: httpx.AsyncClient
) -> None:
    empty_links = await github.create_org()
    no_content = await github.create_org(empty_as_204=True)
    for org in (empty_links, no_content):
        client = client_of(http, org)
        assert await client.users_day(date(2026, 3, 16)) is None
        assert await client.users_day(date(2026, 3, 17)) is None
        assert await client.users_day(LAST_PUBLISHED) is not None
    assert (await github.report(empty_links, "users-1-day", "2026-03-16"))["download_links"] == []
    response = await github.call(
        no_content,
        f"/orgs/{no_content.org}/copilot/metrics/reports/users-1-day",
        params={"day": "2026-03-16"},
    )
    assert response.status_code == 204


async def test_downloads_carry_no_credential_even_when_the_http_client_has_one(
    github: GithubSandboxClient, sandbox_base: str
) -> None:
    org = await github.create_org(rows_per_file=10)
    seen: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request)

    # A client whose default headers hold a credential: the download must still send none.
    async with httpx.AsyncClient(
        base_url=sandbox_base,
        headers={"Authorization": "Bearer must-not-reach-storage"},
        event_hooks={"request": [record]},
    ) as leaky:
        rows = await client_of(leaky, org).users_day(date(2026, 3, 12))
    assert rows is not None
    expected = await github.report_rows(org, "users-1-day", "2026-03-12")
    assert sorted(r.login for r in rows) == sorted(r["user_login"] for r in expected)
    downloads = [r for r in seen if r.url.path.startswith("/copilot-reports/")]
    assert len(downloads) == -(-len(expected) // 10) >= 2
    assert all("authorization" not in r.headers for r in downloads)
    api_calls = [r for r in seen if r not in downloads]
    assert [r.headers["authorization"] for r in api_calls] == [f"Bearer {org.token}"]


async def test_an_expired_link_makes_the_client_request_the_envelope_again(
    github: GithubSandboxClient, sandbox_base: str, clock: ManualClock
) -> None:
    org = await github.create_org(link_ttl_s=60)
    seen: list[str] = []

    async def expire_first_links(request: httpx.Request) -> None:
        seen.append(request.url.path)
        if request.url.path.startswith("/copilot-reports/") and len(seen) == 2:
            clock.advance(61)  # the first envelope's links expire before they are fetched

    async with httpx.AsyncClient(
        base_url=sandbox_base, event_hooks={"request": [expire_first_links]}
    ) as http:
        rows = await client_of(http, org).users_day(date(2026, 3, 11))
    assert rows is not None
    envelope_path = f"/orgs/{org.org}/copilot/metrics/reports/users-1-day"
    assert [p.startswith("/copilot-reports/") for p in seen] == [False, True, False, True]
    assert seen[0] == seen[2] == envelope_path
    expected = await github.report_rows(org, "users-1-day", "2026-03-11")
    assert sorted(r.login for r in rows) == sorted(r["user_login"] for r in expected)


async def test_links_refused_every_time_are_an_error_after_three_envelopes(
    github: GithubSandboxClient, sandbox_base: str, clock: ManualClock
) -> None:
    org = await github.create_org(link_ttl_s=60)
    envelopes: list[str] = []

    async def expire_every_link(request: httpx.Request) -> None:
        if request.url.path.startswith("/copilot-reports/"):
            clock.advance(61)
        else:
            envelopes.append(request.url.path)

    async with httpx.AsyncClient(
        base_url=sandbox_base, event_hooks={"request": [expire_every_link]}
    ) as http:
        with pytest.raises(ProviderError, match="refused 3 times in a row") as refused:
            await client_of(http, org).users_day(date(2026, 3, 11))
    assert refused.value.code == "provider_error"
    assert len(envelopes) == 3


async def test_401_403_404_become_the_users_errors(
    github: GithubSandboxClient, http: httpx.AsyncClient
) -> None:
    org = await github.create_org()
    current = await github.rotate_token(org)
    with pytest.raises(InvalidApiKeyError, match="401 Bad credentials"):
        await client_of(http, org).billing()  # the token before the rotation
    metrics_only = await github.token_with(current, "copilot_metrics")
    with pytest.raises(InsufficientPermissionsError) as refused:
        await GitHubClient(http, metrics_only, org=org.org, policy=FAST).seats()
    assert refused.value.code == "insufficient_permissions"
    for needed in ("owner", '"GitHub Copilot Business"', "manage_billing:copilot", "read:org"):
        assert needed in refused.value.message
    with pytest.raises(OrgNotFoundError, match="'no-such-org'"):
        await GitHubClient(http, current.token, org="no-such-org", policy=FAST).billing()


async def test_detect_maps_billing_answers_and_probes_the_reports(
    github: GithubSandboxClient, http: httpx.AsyncClient
) -> None:
    detector = GitHubDetector(http, timeout_s=5, policy=FAST)
    business = await github.create_org(plan="business")
    enterprise = await github.create_org(plan="enterprise", metrics_policy=False)
    assert await detector.detect(business.token, business.org) == ("business", True)
    assert await detector.detect(enterprise.token, enterprise.org) == ("enterprise", False)
    with pytest.raises(InvalidApiKeyError):
        await detector.detect("ghp_" + "0" * 36, business.org)
    seats_less = await github.token_with(business, "copilot_metrics", "billing_usage")
    with pytest.raises(InsufficientPermissionsError):
        await detector.detect(seats_less, business.org)
    with pytest.raises(OrgNotFoundError):
        await detector.detect(business.token, enterprise.org)  # another org's token
    failing = await github.create_org(fault_rate_5xx=1.0)
    with pytest.raises(ProviderUnavailableError, match="HTTP 500"):
        await detector.detect(failing.token, failing.org)


async def test_policy_off_refuses_reports_but_seats_and_spend_still_answer(
    github: GithubSandboxClient, http: httpx.AsyncClient
) -> None:
    org = await github.create_org(metrics_policy=False)
    client = client_of(http, org)
    with pytest.raises(MetricsDisabledError) as refused:
        await client.users_day(LAST_PUBLISHED)
    assert refused.value.code == "metrics_disabled"
    assert '"Copilot usage metrics" policy' in refused.value.message
    assert len(await client.seats()) == 40
    truth = await github.truth(org, "2026-03-14", "2026-03-14")
    expected = Decimal(truth["days"]["2026-03-14"]["premium_cents"])
    assert await client.premium_request_cents(date(2026, 3, 14)) == expected


async def test_the_pacer_waits_for_the_reset_once_the_budget_is_spent(
    github: GithubSandboxClient, http: httpx.AsyncClient, clock: ManualClock
) -> None:
    org = await github.create_org(rate_limits_enabled=True, primary_limit_per_hour=3)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    pacer = HeaderPacer(clock=clock.now, wall=clock.now, sleep=sleep)
    client = client_of(http, org, limiter=pacer)
    for _ in range(5):
        assert await client.billing() == "business"
    # The third answer said remaining 0, reset in an hour: the fourth call waited for it.
    assert slept == [3600 + 1.0]
    assert client.rate_limited == 0
    log = (await github.http.get(f"/_sandbox/github/orgs/{org.org}/requests")).json()
    assert [entry["status"] for entry in log["requests"]] == [200] * 5
