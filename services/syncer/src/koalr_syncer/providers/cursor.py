"""HTTP client of the Cursor Admin API: paced, retried, and explicit about failures.

- Basic authentication with the key as user name; the key is only held by the caller's
  :class:`CursorClient` for the duration of a job and never logged.
- Every call takes a slot from the :class:`~koalr_syncer.pacing.RateLimiter` first (per team
  and endpoint), so the documented limits are kept and 429s stay the exception.
- 429: ``Retry-After`` is honoured when present, else exponential backoff with jitter; the
  bucket is held off for that long. 5xx, timeouts (a stalled response is cut by the read
  timeout) and connection errors: bounded retries with exponential backoff and jitter.
- Failures the caller must act on become :class:`ProviderError` subclasses carrying the
  reason code shown to users: 401 ``invalid_api_key``, 403 ``insufficient_plan``, retries
  exhausted ``rate_limited`` / ``provider_unavailable``, anything else ``provider_error``.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Final, TypeVar

import httpx
from prometheus_client import Counter

from koalr_contracts import ErrorCode
from koalr_runtime.logs import get_logger
from koalr_syncer.pacing import RateLimiter
from koalr_syncer.providers.cursor_shapes import (
    DailyUsagePage,
    Member,
    ProviderShapeError,
    SpendPage,
    UsageEventsPage,
    parse_daily_usage,
    parse_members,
    parse_spend,
    parse_usage_events,
)

log = get_logger(__name__)

EVENTS_PAGE_SIZE: Final[int] = 1000
DAILY_USAGE_PAGE_SIZE: Final[int] = 1000
SPEND_PAGE_SIZE: Final[int] = 100

PROVIDER_REQUESTS = Counter(
    "koalr_syncer_provider_requests_total",
    "Calls to the provider API by endpoint and outcome (HTTP status or error kind)",
    ["endpoint", "outcome"],
)
PROVIDER_RETRIES = Counter(
    "koalr_syncer_provider_retries_total",
    "Retried provider calls by endpoint and reason",
    ["endpoint", "reason"],
)

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


class ProviderError(Exception):
    """A provider call failed in a way the sync reports with ``code``."""

    code: ClassVar[ErrorCode] = "provider_error"
    retryable: ClassVar[bool] = False


class InvalidApiKeyError(ProviderError):
    code: ClassVar[ErrorCode] = "invalid_api_key"


class InsufficientPlanError(ProviderError):
    code: ClassVar[ErrorCode] = "insufficient_plan"


class RateLimitedError(ProviderError):
    code: ClassVar[ErrorCode] = "rate_limited"
    retryable: ClassVar[bool] = True


class ProviderUnavailableError(ProviderError):
    code: ClassVar[ErrorCode] = "provider_unavailable"
    retryable: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 4
    rate_limit_retries: int = 6
    base_s: float = 1.0
    max_s: float = 16.0

    def backoff_s(self, failures: int, rng: random.Random) -> float:
        """Exponential backoff with jitter: a delay in ``[d/2, d]``, ``d = base * 2**(n-1)``."""
        ceiling = min(self.max_s, self.base_s * 2 ** max(0, failures - 1))
        return rng.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    bucket: str


MEMBERS: Final = Endpoint("GET", "/teams/members", "default")
DAILY_USAGE: Final = Endpoint("POST", "/teams/daily-usage-data", "default")
SPEND: Final = Endpoint("POST", "/teams/spend", "default")
USAGE_EVENTS: Final = Endpoint("POST", "/teams/filtered-usage-events", "usage_events")


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def decode_json(content: bytes) -> Any:
    """A JSON body with every fractional number as an exact ``Decimal``."""
    return json.loads(content, parse_float=Decimal)


class CursorClient:
    """The calls one sync job makes for one team, with one API key."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_key: str,
        *,
        team: str,
        limiter: RateLimiter,
        policy: RetryPolicy,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._http = http
        self._auth = httpx.BasicAuth(api_key, "")
        self._team = team
        self._limiter = limiter
        self._policy = policy
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.calls = 0
        self.rate_limited = 0

    async def members(self) -> list[Member]:
        return parse_or_raise(parse_members, await self._call(MEMBERS))

    async def daily_usage(self, start_ms: int, end_ms: int, page: int) -> DailyUsagePage:
        body = {
            "startDate": start_ms,
            "endDate": end_ms,
            "page": page,
            "pageSize": DAILY_USAGE_PAGE_SIZE,
        }
        return parse_or_raise(parse_daily_usage, await self._call(DAILY_USAGE, body))

    async def usage_events(self, start_ms: int, end_ms: int, page: int) -> UsageEventsPage:
        body = {
            "startDate": start_ms,
            "endDate": end_ms,
            "page": page,
            "pageSize": EVENTS_PAGE_SIZE,
        }
        return parse_or_raise(parse_usage_events, await self._call(USAGE_EVENTS, body))

    async def spend(self, page: int) -> SpendPage:
        body = {"page": page, "pageSize": SPEND_PAGE_SIZE}
        return parse_or_raise(parse_spend, await self._call(SPEND, body))

    async def _call(self, endpoint: Endpoint, body: dict[str, Any] | None = None) -> Any:
        failures = 0
        throttled = 0
        while True:
            slot = await self._limiter.acquire(self._team, endpoint.bucket)
            self.calls += 1
            try:
                response = await self._http.request(
                    endpoint.method, endpoint.path, json=body, auth=self._auth
                )
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                slot.done()
                kind = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection"
                PROVIDER_REQUESTS.labels(endpoint.path, kind).inc()
                failures += 1
                await self._transient(endpoint, failures, kind)
                continue
            slot.done()
            status = response.status_code
            PROVIDER_REQUESTS.labels(endpoint.path, str(status)).inc()
            if status == 200:
                try:
                    return decode_json(response.content)
                except ValueError:
                    failures += 1
                    await self._transient(endpoint, failures, "invalid_json")
                    continue
            if status == 401:
                raise InvalidApiKeyError(
                    "Cursor rejected the API key (401); it was probably revoked or rotated. "
                    "Update the key of this integration."
                )
            if status == 403:
                raise InsufficientPlanError(
                    f"Cursor refused {endpoint.path} (403): the team's plan does not include the "
                    "Admin API. Usage, models and spend need a Business or Enterprise plan."
                )
            if status == 429:
                throttled += 1
                self.rate_limited += 1
                await self._throttled(endpoint, throttled, response)
                continue
            if status >= 500:
                failures += 1
                await self._transient(endpoint, failures, f"http_{status}")
                continue
            raise ProviderError(
                f"Cursor answered {status} to {endpoint.method} {endpoint.path}: "
                f"{_short(response.text)}"
            )

    async def _transient(self, endpoint: Endpoint, failures: int, reason: str) -> None:
        if failures > self._policy.max_retries:
            raise ProviderUnavailableError(
                f"Cursor did not answer {endpoint.path} successfully after "
                f"{failures} attempts (last: {reason}); the sync will be retried later."
            )
        delay = self._policy.backoff_s(failures, self._rng)
        PROVIDER_RETRIES.labels(endpoint.path, reason).inc()
        log.info(
            "cursor.retry", endpoint=endpoint.path, reason=reason, attempt=failures, wait_s=delay
        )
        await self._sleep(delay)

    async def _throttled(
        self, endpoint: Endpoint, throttled: int, response: httpx.Response
    ) -> None:
        if throttled > self._policy.rate_limit_retries:
            raise RateLimitedError(
                f"Cursor kept answering 429 to {endpoint.path} after {throttled} attempts; "
                "the sync will be retried later."
            )
        hinted = retry_after_s(response.headers.get("retry-after"))
        wait = hinted if hinted is not None else self._policy.backoff_s(throttled, self._rng)
        PROVIDER_RETRIES.labels(endpoint.path, "http_429").inc()
        log.info(
            "cursor.rate_limited",
            endpoint=endpoint.path,
            attempt=throttled,
            retry_after_s=hinted,
            wait_s=wait,
        )
        # The limiter makes the next acquire of this bucket wait; nothing else goes out early.
        self._limiter.hold_off(self._team, endpoint.bucket, wait)


def parse_or_raise(parse: Callable[[Any], T], body: Any) -> T:
    try:
        return parse(body)
    except ProviderShapeError as exc:
        raise ProviderError(f"Cursor sent a response this syncer cannot read: {exc}") from exc


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
