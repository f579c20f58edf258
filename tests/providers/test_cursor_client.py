"""The Cursor client: pacing, retries, 429 handling and the errors users see.

Retries wait for real (``stamina``), so the policies here use waits of milliseconds; the waits
``stamina`` took are recorded by the ``retry_waits`` fixture.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from koalr_providers.cursor import (
    InsufficientPlanError,
    InvalidApiKeyError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    RetryPolicy,
)
from koalr_providers.http import retry_after_s
from tests.syncer.fakes import FakeTime, client_for

KEY = "crsr_" + "5" * 64
#: Waits of 10, 20, 40 ms (+ up to 10 ms of jitter): the shape of the real policy, fast.
FAST = RetryPolicy(max_retries=3, rate_limit_retries=3, base_s=0.01, max_s=1.0)
MEMBERS_BODY = {"teamMembers": [{"name": "Ann", "email": "Ann@Example.com", "role": "owner"}]}


def scripted(
    *responses: httpx.Response | Exception,
) -> tuple[Callable[[httpx.Request], httpx.Response], list[httpx.Request]]:
    queue = list(responses)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    return handler, seen


def ok(body: object) -> httpx.Response:
    return httpx.Response(200, json=body)


async def test_basic_auth_with_the_key_as_user_name_and_exact_decimals() -> None:
    served = (
        b'{"teamMemberSpend": [{"email": "a@x.io", "spendCents": 0.1, '
        b'"overallSpendCents": 21.36232}], "totalPages": 1}'
    )
    handler, seen = scripted(httpx.Response(200, content=served))
    client, http = client_for(handler, FakeTime(), api_key=KEY)
    async with http:
        page = await client.spend(1)
    expected_auth = "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
    assert seen[0].headers["authorization"] == expected_auth
    assert json.loads(seen[0].content) == {"page": 1, "pageSize": 100}
    assert page.rows[0].spend_cents == Decimal("0.1")
    assert page.rows[0].overall_spend_cents == Decimal("21.36232")


def assert_exponential(waits: list[float], policy: RetryPolicy = FAST) -> None:
    """The n-th wait is ``base * 2**(n-1)`` plus a jitter of at most ``base``."""
    for n, wait in enumerate(waits, start=1):
        floor = policy.base_s * 2 ** (n - 1)
        assert floor <= wait <= floor + policy.base_s, (n, wait)


async def test_429_honours_retry_after_then_succeeds(retry_waits: list[float]) -> None:
    fake = FakeTime()
    handler, seen = scripted(
        httpx.Response(429, headers={"Retry-After": "0.25"}, json={"error": "Too Many Requests"}),
        ok(MEMBERS_BODY),
    )
    client, http = client_for(handler, fake, policy=FAST)
    async with http:
        members = await client.members()
    assert [m.email for m in members] == ["ann@example.com"]
    assert len(seen) == 2
    assert retry_waits == [0.25]  # the retry waited for the hint...
    assert fake.sleeps == [0.25]  # ...and the limiter held the team's bucket off as long
    assert client.rate_limited == 1


async def test_429_without_retry_after_backs_off_exponentially_with_jitter(
    retry_waits: list[float],
) -> None:
    fake = FakeTime()
    limited = httpx.Response(429, json={"error": "Too Many Requests"})
    handler, seen = scripted(limited, limited, limited, ok(MEMBERS_BODY))
    client, http = client_for(handler, fake, policy=FAST)
    async with http:
        await client.members()
    assert len(seen) == 4
    assert len(retry_waits) == 3
    assert_exponential(retry_waits)
    assert fake.sleeps == []  # no hint: nothing for the limiter to hold off


async def test_persistent_429_is_reported_as_rate_limited() -> None:
    handler, seen = scripted(httpx.Response(429, headers={"Retry-After": "0.01"}))
    client, http = client_for(handler, FakeTime(), policy=FAST)
    async with http:
        with pytest.raises(RateLimitedError) as raised:
            await client.members()
    assert raised.value.code == "rate_limited"
    assert len(seen) == 4  # the first call and three retries


async def test_5xx_and_timeouts_are_retried_with_backoff(retry_waits: list[float]) -> None:
    fake = FakeTime()
    handler, seen = scripted(
        httpx.Response(500, json={"error": "Internal Server Error"}),
        httpx.ReadTimeout("stalled"),
        httpx.ConnectError("refused"),
        ok(MEMBERS_BODY),
    )
    client, http = client_for(handler, fake, policy=FAST)
    async with http:
        members = await client.members()
    assert len(members) == 1
    assert len(seen) == 4
    assert len(retry_waits) == 3
    assert_exponential(retry_waits)


async def test_retries_are_bounded() -> None:
    handler, seen = scripted(httpx.Response(503))
    client, http = client_for(
        handler, FakeTime(), policy=RetryPolicy(max_retries=2, base_s=0.01, max_s=0.01)
    )
    async with http:
        with pytest.raises(ProviderUnavailableError) as raised:
            await client.members()
    assert raised.value.code == "provider_unavailable"
    assert len(seen) == 3


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (401, InvalidApiKeyError, "invalid_api_key"),
        (403, InsufficientPlanError, "insufficient_plan"),
        (400, ProviderError, "provider_error"),
        (404, ProviderError, "provider_error"),
    ],
)
async def test_client_errors_are_not_retried(
    status: int, error: type[ProviderError], code: str
) -> None:
    handler, seen = scripted(httpx.Response(status, json={"error": "x", "message": "y"}))
    client, http = client_for(handler, FakeTime(), policy=FAST)
    async with http:
        with pytest.raises(error) as raised:
            await client.members()
    assert raised.value.code == code
    assert len(seen) == 1


async def test_the_key_never_reaches_the_logs(
    captured_logs: list[MutableMapping[str, Any]],
) -> None:
    handler, _ = scripted(httpx.Response(500), ok(MEMBERS_BODY))
    client, http = client_for(handler, FakeTime(), api_key=KEY, policy=FAST)
    async with http:
        await client.members()
    assert captured_logs, "the retry is logged"
    assert KEY not in repr(captured_logs)


async def test_an_unreadable_body_is_a_provider_error() -> None:
    handler, _ = scripted(ok({"teamMembers": "nope"}))
    client, http = client_for(handler, FakeTime())
    async with http:
        with pytest.raises(ProviderError, match="cannot read"):
            await client.members()


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert retry_after_s("3") == 3.0
    assert retry_after_s(" 0 ") == 0.0
    assert retry_after_s(None) is None
    assert retry_after_s("soon") is None
    now = datetime(2026, 3, 18, 15, 0, 0, tzinfo=UTC)
    assert retry_after_s("Wed, 18 Mar 2026 15:00:05 GMT", now=now) == 5.0


def test_retry_after_never_asks_for_a_negative_wait() -> None:
    now = datetime(2026, 3, 18, 15, 0, 0, tzinfo=UTC)
    assert retry_after_s("Wed, 18 Mar 2026 14:59:00 GMT", now=now) == 0.0
    assert retry_after_s("-4") == 0.0
    assert retry_after_s("") is None
    assert retry_after_s("   ") is None


async def test_an_http_date_retry_after_is_waited_for(retry_waits: list[float]) -> None:
    moment = datetime.now(UTC) + timedelta(seconds=2)
    handler, seen = scripted(
        httpx.Response(429, headers={"Retry-After": format_datetime(moment, usegmt=True)}),
        ok(MEMBERS_BODY),
    )
    fake = FakeTime()
    client, http = client_for(handler, fake, policy=FAST)
    async with http:
        await client.members()
    assert len(seen) == 2
    # An HTTP date has whole seconds: the wait is what is left until it, between 1 and 2 s.
    assert len(retry_waits) == 1
    assert 0.5 < retry_waits[0] <= 2.0
    assert fake.sleeps == pytest.approx(retry_waits)


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (httpx.ReadTimeout("stalled"), "timeout"),
        (httpx.ConnectTimeout("no answer"), "timeout"),
        (httpx.ConnectError("refused"), "connection"),
        (httpx.RemoteProtocolError("peer closed"), "connection"),
        (httpx.Response(500), "http_500"),
        (httpx.Response(502), "http_502"),
        (httpx.Response(503), "http_503"),
        (httpx.Response(200, content=b'{"teamMembers": [{"email": '), "invalid_json"),
        (httpx.Response(429), "http_429"),
    ],
)
async def test_transient_failures_are_retried(
    failure: httpx.Response | Exception,
    reason: str,
    captured_logs: list[MutableMapping[str, Any]],
) -> None:
    handler, seen = scripted(failure, ok(MEMBERS_BODY))
    client, http = client_for(handler, FakeTime(), policy=FAST)
    async with http:
        members = await client.members()
    assert [m.email for m in members] == ["ann@example.com"]
    assert len(seen) == 2
    retries = [e for e in captured_logs if e["event"] == "provider.retry"]
    assert [(e["reason"], e["endpoint"]) for e in retries] == [(reason, "/teams/members")]


@pytest.mark.parametrize(
    ("failure", "error", "text"),
    [
        (httpx.ReadTimeout("stalled"), ProviderUnavailableError, "timed out on /teams/members"),
        (httpx.ConnectError("refused"), ProviderUnavailableError, "could not be reached"),
        (httpx.Response(502), ProviderUnavailableError, "HTTP 502 on /teams/members"),
        (httpx.Response(200, content=b"<html>"), ProviderUnavailableError, "invalid JSON"),
        (httpx.Response(429), RateLimitedError, "rate limiting"),
    ],
)
async def test_exhausted_retries_say_what_failed_and_how_often(
    failure: httpx.Response | Exception, error: type[ProviderError], text: str
) -> None:
    handler, seen = scripted(failure)
    client, http = client_for(handler, FakeTime(), policy=FAST)
    async with http:
        with pytest.raises(error, match=text) as raised:
            await client.members()
    assert raised.value.retryable
    assert len(seen) == 4
    assert "(4 attempts)" in raised.value.message
