"""The Cursor Admin API client: key validation and plan detection, members, usage and spend.

- Basic authentication with the key as user name; the key is held only by the client and never
  appears in a message or a log line.
- Every call goes through :class:`~koalr_providers.http.ProviderHttp`: paced when a pacer is
  given (the syncer; per team and endpoint, so Cursor's documented limits are kept), transient
  failures retried by the one retry policy, ``Retry-After`` honoured.
- Cursor's answers become :mod:`koalr_providers.errors`: 401 ``invalid_api_key``, 403
  ``insufficient_plan``, anything else unexpected ``provider_error``; retries exhausted
  ``rate_limited`` / ``provider_unavailable``.

Plan detection (:meth:`CursorClient.detect_plan`) makes three cheap calls, each on its own
rate-limit bucket at Cursor:

1. ``GET /teams/members`` (every plan): 401/403 means the key is rejected.
2. ``POST /teams/daily-usage-data`` for one day and one member: 401/403 means a Team plan, which
   only gives the member list.
3. ``GET /analytics/team/dau`` (the Analytics API, Enterprise only, an optional capability):
   200 means Enterprise; 401, 403 or 404 means "not Enterprise", so Business, never a failed
   connect.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

import httpx

from koalr_contracts import Plan
from koalr_providers.cursor.shapes import (
    DailyUsagePage,
    Member,
    SpendPage,
    UsageEventsPage,
    parse_daily_usage,
    parse_members,
    parse_spend,
    parse_usage_events,
)
from koalr_providers.errors import (
    InsufficientPlanError,
    InvalidApiKeyError,
    ProviderError,
    ProviderUnavailableError,
)
from koalr_providers.http import (
    Answer,
    Endpoint,
    ProviderHttp,
    RetryPolicy,
    short,
    within_connect_budget,
)
from koalr_providers.http import parse_or_raise as read_answer
from koalr_providers.pacing import Pacer
from koalr_runtime.logs import get_logger

log = get_logger(__name__)

T = TypeVar("T")

EVENTS_PAGE_SIZE: Final[int] = 1000
DAILY_USAGE_PAGE_SIZE: Final[int] = 1000
SPEND_PAGE_SIZE: Final[int] = 100

MEMBERS: Final = Endpoint("GET", "/teams/members", "default")
DAILY_USAGE: Final = Endpoint("POST", "/teams/daily-usage-data", "default")
SPEND: Final = Endpoint("POST", "/teams/spend", "default")
USAGE_EVENTS: Final = Endpoint("POST", "/teams/filtered-usage-events", "usage_events")
ANALYTICS_DAU: Final = Endpoint("GET", "/analytics/team/dau", "analytics")

REJECTED: Final = frozenset({401, 403})
NOT_ENTERPRISE: Final = frozenset({401, 403, 404})
"""Answers of the Enterprise-only probe that mean the team has no Analytics API."""

CONNECT_POLICY: Final = RetryPolicy(max_retries=2, rate_limit_retries=1, base_s=1.0, max_s=2.0)
"""Retries while a user waits for a connect: few and short, inside the connect's time budget."""


class CursorClient:
    """The calls made for one Cursor team with one API key.

    ``team`` is the pacing scope of the key; without a ``limiter`` calls are not paced.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_key: str,
        *,
        team: str = "",
        limiter: Pacer | None = None,
        policy: RetryPolicy,
    ) -> None:
        self._http = ProviderHttp(
            http,
            name="Cursor",
            label="cursor",
            auth=httpx.BasicAuth(api_key, ""),
            policy=policy,
            pacer=limiter,
            team=team,
        )

    @property
    def calls(self) -> int:
        """Requests sent so far (retries included)."""
        return self._http.calls

    @property
    def rate_limited(self) -> int:
        """429 answers received so far."""
        return self._http.rate_limited

    # --- usage (the syncer) -----------------------------------------------------------------

    async def members(self) -> list[Member]:
        return parse_or_raise(parse_members, await self._json(MEMBERS))

    async def daily_usage(self, start_ms: int, end_ms: int, page: int) -> DailyUsagePage:
        body = {
            "startDate": start_ms,
            "endDate": end_ms,
            "page": page,
            "pageSize": DAILY_USAGE_PAGE_SIZE,
        }
        return parse_or_raise(parse_daily_usage, await self._json(DAILY_USAGE, body))

    async def usage_events(self, start_ms: int, end_ms: int, page: int) -> UsageEventsPage:
        body = {
            "startDate": start_ms,
            "endDate": end_ms,
            "page": page,
            "pageSize": EVENTS_PAGE_SIZE,
        }
        return parse_or_raise(parse_usage_events, await self._json(USAGE_EVENTS, body))

    async def spend(self, page: int) -> SpendPage:
        body = {"page": page, "pageSize": SPEND_PAGE_SIZE}
        return parse_or_raise(parse_spend, await self._json(SPEND, body))

    async def _json(self, endpoint: Endpoint, body: dict[str, Any] | None = None) -> Any:
        answer = await self._http.call(endpoint, json=body)
        if answer.status == 200:
            return answer.body
        if answer.status == 401:
            raise InvalidApiKeyError(
                "Cursor rejected the API key (401); it was probably revoked or rotated. "
                "Update the key of this integration."
            )
        if answer.status == 403:
            raise InsufficientPlanError(
                f"Cursor refused {endpoint.path} (403): the team's plan does not include the "
                "Admin API. Usage, models and spend need a Business or Enterprise plan."
            )
        raise ProviderError(
            f"Cursor answered {answer.status} to {endpoint.method} {endpoint.path}: "
            f"{short(answer.text)}"
        )

    # --- key validation and plan detection (the connector) ----------------------------------

    async def detect_plan(self, *, timeout_s: float) -> Plan:
        """The plan of the team behind the key, within ``timeout_s`` (retries included).

        Raises :class:`InvalidApiKeyError` when Cursor rejects the key and
        :class:`ProviderUnavailableError` when Cursor cannot tell in time.
        """
        started = time.monotonic()
        plan = await within_connect_budget("Cursor", timeout_s, self._detect, (InvalidApiKeyError,))
        log.info(
            "cursor.key_validated", plan=plan, duration_ms=round((time.monotonic() - started) * 1e3)
        )
        return plan

    async def _detect(self, deadline: float) -> Plan:
        members = await self._http.call(MEMBERS, deadline=deadline)
        if members.status in REJECTED:
            raise InvalidApiKeyError(
                f"Cursor rejected this API key (HTTP {members.status}). Use a team Admin "
                "API key from Cursor's team settings (API keys) that has not been revoked."
            )
        _expect_ok(members, MEMBERS)

        yesterday = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - (
            timedelta(days=1)
        )
        day_ms = int(yesterday.timestamp() * 1000)
        body = {"startDate": day_ms, "endDate": day_ms, "page": 1, "pageSize": 1}
        usage = await self._http.call(DAILY_USAGE, json=body, deadline=deadline)
        if usage.status in REJECTED:
            return "team"
        _expect_ok(usage, DAILY_USAGE)

        params = {"startDate": "1d", "endDate": "today"}
        dau = await self._http.call(ANALYTICS_DAU, params=params, deadline=deadline)
        if dau.status in NOT_ENTERPRISE:
            return "business"
        _expect_ok(dau, ANALYTICS_DAU)
        return "enterprise"


class CursorPlanDetector:
    """Validates keys and detects plans at connect time, over one shared HTTP client."""

    def __init__(
        self, http: httpx.AsyncClient, *, timeout_s: float, policy: RetryPolicy = CONNECT_POLICY
    ) -> None:
        self._http = http
        self._timeout_s = timeout_s
        self._policy = policy

    async def detect_plan(self, api_key: str) -> Plan:
        """See :meth:`CursorClient.detect_plan`."""
        client = CursorClient(self._http, api_key, policy=self._policy)
        return await client.detect_plan(timeout_s=self._timeout_s)


def _expect_ok(answer: Answer, endpoint: Endpoint) -> None:
    if answer.status != 200:
        raise ProviderUnavailableError(
            f"Cursor's API answered HTTP {answer.status} on {endpoint.path}, which was not "
            "expected. Try again later."
        )


def parse_or_raise(parse: Callable[[Any], T], body: Any) -> T:
    return read_answer("Cursor", parse, body)
