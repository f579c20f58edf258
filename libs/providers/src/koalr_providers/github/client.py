"""The GitHub Copilot client: token validation and plan detection, seats, reports and spend.

- ``Authorization: Bearer <token>``, ``Accept: application/vnd.github+json`` and
  ``X-GitHub-Api-Version: 2026-03-10`` on every GitHub call; the token is held only by the client
  and never appears in a message or a log line.
- Every call goes through :class:`~koalr_providers.http.ProviderHttp`: paced when a pacer is given
  (the syncer: :class:`~koalr_providers.pacing.HeaderPacer` waits for ``x-ratelimit-reset`` once
  ``x-ratelimit-remaining`` is 0), transient failures retried by the one retry policy, and
  GitHub's throttles (403 or 429 with ``retry-after``, with a spent budget, or saying "rate
  limit") retried after the hint, else after a minute and then exponentially longer.
- Report files are fetched at once from their signed links through a second ``ProviderHttp`` that
  sends no credential (signed storage URLs refuse a second one); a refused or expired link means
  the envelope is requested again, at most :data:`LINK_ATTEMPTS` times.
- GitHub's answers become :mod:`koalr_providers.errors`: 401 ``invalid_api_key``; 403
  ``insufficient_permissions`` (billing, seats, spend) or ``metrics_disabled`` (reports); 404
  :class:`~koalr_providers.errors.OrgNotFoundError`; anything else unexpected ``provider_error``.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final
from urllib.parse import quote

import httpx

from koalr_contracts import Plan
from koalr_providers.errors import (
    InsufficientPermissionsError,
    InvalidApiKeyError,
    MetricsDisabledError,
    OrgNotFoundError,
    ProviderError,
)
from koalr_providers.github.shapes import (
    CopilotSeat,
    UserDayRow,
    parse_billing_plan,
    parse_download_links,
    parse_premium_net_cents,
    parse_report_file,
    parse_seats,
    parse_user_day,
)
from koalr_providers.http import (
    Answer,
    Endpoint,
    ProviderHttp,
    RetryPolicy,
    Throttle,
    parse_or_raise,
    retry_after_s,
    short,
    within_connect_budget,
)
from koalr_providers.pacing import Pacer, spent_budget_wait_s
from koalr_runtime.logs import get_logger

log = get_logger(__name__)

NAME: Final[str] = "GitHub"
API_VERSION: Final[str] = "2026-03-10"
SEATS_PER_PAGE: Final[int] = 100
LINK_ATTEMPTS: Final[int] = 3
"""Envelopes requested for one report before refused download links are an error."""

# GitHub's primary limit is one budget per token across its REST routes: one pacing bucket.
BUCKET: Final[str] = "core"
BILLING: Final = Endpoint("GET", "/orgs/{org}/copilot/billing", BUCKET)
SEATS: Final = Endpoint("GET", "/orgs/{org}/copilot/billing/seats", BUCKET)
USERS_1_DAY: Final = Endpoint("GET", "/orgs/{org}/copilot/metrics/reports/users-1-day", BUCKET)
PREMIUM_USAGE: Final = Endpoint(
    "GET", "/organizations/{org}/settings/billing/premium_request/usage", BUCKET
)
REPORT_FILE: Final = Endpoint("GET", "copilot report file", "downloads")

SYNC_POLICY: Final = RetryPolicy(throttle_base_s=60.0)
"""The syncer's retries: GitHub asks for at least a minute after an unhinted secondary limit."""
CONNECT_POLICY: Final = RetryPolicy(max_retries=2, rate_limit_retries=1, base_s=1.0, max_s=2.0)
"""Retries while a user waits for a connect: few and short, inside the connect's time budget."""

PERMISSIONS_NEEDED: Final[str] = (
    "The token must belong to an owner of the organisation and carry the fine-grained "
    'permissions "GitHub Copilot Business" (read) and "Organization Copilot metrics" (read), or '
    "the classic scopes manage_billing:copilot and read:org."
)
METRICS_POLICY_OFF: Final[str] = (
    'An organisation owner must enable the "Copilot usage metrics" policy in the organisation\'s '
    "Copilot settings (Policies); until then only seats and spend are synced. If the policy is "
    'on, give the token the "Organization Copilot metrics" (read) permission.'
)


def github_throttle(response: httpx.Response) -> Throttle | None:
    """GitHub's primary and secondary limits: 403 or 429 with a hint, or saying "rate limit".

    The wait is ``retry-after`` when given, else the time to ``x-ratelimit-reset`` when the budget
    is spent, else ``None`` (the retry policy's ``throttle_base_s``: a minute, then longer).
    A 403 without any of these is GitHub's answer about permissions, not a throttle.
    """
    status = response.status_code
    if status not in {403, 429}:
        return None
    headers = response.headers
    hinted = retry_after_s(headers.get("retry-after"))
    if hinted is not None:
        return Throttle(hinted)
    reset_wait = spent_budget_wait_s(headers, time.time())
    if reset_wait is not None:
        return Throttle(reset_wait)
    if status == 429 or "rate limit" in response.text.lower():
        return Throttle(None)
    return None


class WithoutCredentials(httpx.Auth):
    """Sends a request with no ``Authorization`` header, whatever the HTTP client's defaults."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.pop("Authorization", None)
        yield request


class GitHubHeaders(httpx.Auth):
    """GitHub's headers: the token as a Bearer credential, the media type and the API version."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        request.headers["Accept"] = "application/vnd.github+json"
        request.headers["X-GitHub-Api-Version"] = API_VERSION
        yield request


class RefusedLinkError(Exception):
    """A report file's signed link was refused (expired, or its signature no longer valid)."""


class GitHubClient:
    """The calls made for one GitHub organisation with one token.

    ``org`` is the pacing scope: GitHub counts its budget per token, and an integration holds one
    token for one organisation. Without a ``limiter`` calls are not paced. ``downloads`` fetches report files (default: ``http``); it is never
    given the token.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        token: str,
        *,
        org: str,
        limiter: Pacer | None = None,
        policy: RetryPolicy,
        downloads: httpx.AsyncClient | None = None,
    ) -> None:
        self._org = org
        self._http = ProviderHttp(
            http,
            name=NAME,
            label="github",
            auth=GitHubHeaders(token),
            policy=policy,
            pacer=limiter,
            team=org,
            throttle=github_throttle,
        )
        self._files = ProviderHttp(
            downloads or http,
            name=f"{NAME}'s report storage",
            label="github",
            auth=WithoutCredentials(),
            policy=policy,
        )

    @property
    def org(self) -> str:
        return self._org

    @property
    def calls(self) -> int:
        """Requests sent to GitHub's API so far (retries included; downloads not)."""
        return self._http.calls

    @property
    def rate_limited(self) -> int:
        """Throttles received so far."""
        return self._http.rate_limited

    # --- seats, reports and spend (the syncer) ----------------------------------------------

    async def billing(self) -> Plan:
        """The org's plan, from the billing ``plan_type``."""
        return parse_or_raise(NAME, parse_billing_plan, await self._json(BILLING))

    async def seats(self) -> list[CopilotSeat]:
        """Every seat, following the ``link`` header from page to page."""
        seats: list[CopilotSeat] = []
        params: Mapping[str, str] | None = {"per_page": str(SEATS_PER_PAGE)}
        url: str | None = self._url(SEATS)
        while url is not None:
            answer = await self._call(SEATS, url=url, params=params)
            seats.extend(parse_or_raise(NAME, parse_seats, answer.body).seats)
            url, params = answer.next_url, None  # the next link carries every parameter
        return seats

    async def users_day(self, day: date) -> list[UserDayRow] | None:
        """The ``users-1-day`` rows of ``day``; ``None`` while GitHub has not published it."""
        refused: RefusedLinkError | None = None
        for _ in range(LINK_ATTEMPTS):
            answer = await self._call(USERS_1_DAY, params={"day": day.isoformat()})
            if answer.status == 204:
                return None
            links = parse_or_raise(NAME, parse_download_links, answer.body)
            if not links:
                return None
            try:
                contents = [await self._download(link) for link in links]
            except RefusedLinkError as exc:
                refused = exc
                log.info("github.report_link_refused", org=self._org, day=day.isoformat())
                continue
            rows: list[UserDayRow] = []
            for content in contents:
                for raw_row in parse_or_raise(NAME, parse_report_file, content):
                    row = parse_or_raise(NAME, lambda r: parse_user_day(r, day), raw_row)
                    if row is not None:
                        rows.append(row)
            return rows
        raise ProviderError(
            f"GitHub's report links for {day.isoformat()} were refused {LINK_ATTEMPTS} times "
            f"in a row ({refused}). The sync will try again later."
        )

    async def premium_request_cents(self, day: date) -> Decimal:
        """Premium requests of ``day``: Σ ``netAmount`` times 100 of its usage items, exactly."""
        params = {"year": str(day.year), "month": str(day.month), "day": str(day.day)}
        body = await self._json(PREMIUM_USAGE, params=params)
        return parse_or_raise(NAME, parse_premium_net_cents, body)

    async def _download(self, link: str) -> bytes:
        answer = await self._files.call(REPORT_FILE, url=link, raw=True)
        if answer.status != 200 or not isinstance(answer.body, bytes):
            raise RefusedLinkError(f"HTTP {answer.status}")
        return answer.body

    def _url(self, endpoint: Endpoint) -> str:
        return endpoint.path.format(org=quote(self._org, safe=""))

    async def _call(
        self,
        endpoint: Endpoint,
        *,
        url: str | None = None,
        params: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> Answer:
        """GitHub's 2xx answer to ``endpoint``; any other answer raised as its error."""
        answer = await self._http.call(
            endpoint, url=url or self._url(endpoint), params=params, deadline=deadline
        )
        if 200 <= answer.status < 300:
            return answer
        raise self._error(endpoint, answer)

    async def _json(self, endpoint: Endpoint, params: Mapping[str, str] | None = None) -> Any:
        return (await self._call(endpoint, params=params)).body

    def _error(self, endpoint: Endpoint, answer: Answer) -> ProviderError:
        status = answer.status
        if status == 401:
            return InvalidApiKeyError(
                "GitHub rejected the token (401 Bad credentials): it was revoked, expired or "
                "never valid. Create a new token and update this integration's credentials."
            )
        if status == 403 and endpoint is USERS_1_DAY:
            return MetricsDisabledError(
                f"GitHub refused the Copilot usage-metrics reports of {self._org} (403). "
                + METRICS_POLICY_OFF
            )
        if status == 403:
            return InsufficientPermissionsError(
                f"GitHub refused {self._url(endpoint)} (403): the token may not read the "
                f"organisation's Copilot billing. {PERMISSIONS_NEEDED}"
            )
        if status == 404:
            return OrgNotFoundError(
                f"GitHub does not know the organisation {self._org!r}, or the token cannot see "
                "it (404). Check the organisation's login (as in github.com/<login>) and that "
                "the token belongs to one of its owners."
            )
        return ProviderError(
            f"GitHub answered {status} to {endpoint.method} {self._url(endpoint)}: "
            f"{short(answer.text)}"
        )

    # --- token validation and plan detection (the connector) --------------------------------

    async def detect(self, *, timeout_s: float) -> tuple[Plan, bool]:
        """The org's plan and whether its usage-metrics reports answer, within ``timeout_s``.

        Raises :class:`InvalidApiKeyError` (401), :class:`InsufficientPermissionsError` (403),
        :class:`OrgNotFoundError` (404) when GitHub refuses the billing, and
        :class:`~koalr_providers.errors.ProviderUnavailableError` when GitHub cannot tell in
        time.
        """
        started = time.monotonic()
        plan, metrics_enabled = await within_connect_budget(
            NAME,
            timeout_s,
            self._detect,
            (InvalidApiKeyError, InsufficientPermissionsError, OrgNotFoundError),
        )
        log.info(
            "github.token_validated",
            plan=plan,
            metrics_enabled=metrics_enabled,
            duration_ms=round((time.monotonic() - started) * 1e3),
        )
        return plan, metrics_enabled

    async def _detect(self, deadline: float) -> tuple[Plan, bool]:
        billing = await self._call(BILLING, deadline=deadline)
        plan = parse_or_raise(NAME, parse_billing_plan, billing.body)
        yesterday = datetime.now(UTC).date() - timedelta(days=1)
        try:
            await self._call(USERS_1_DAY, params={"day": yesterday.isoformat()}, deadline=deadline)
        except MetricsDisabledError:
            return plan, False
        return plan, True


class GitHubDetector:
    """Validates tokens and detects plans at connect time, over one shared HTTP client."""

    def __init__(
        self, http: httpx.AsyncClient, *, timeout_s: float, policy: RetryPolicy = CONNECT_POLICY
    ) -> None:
        self._http = http
        self._timeout_s = timeout_s
        self._policy = policy

    async def detect(self, token: str, org: str) -> tuple[Plan, bool]:
        """See :meth:`GitHubClient.detect`."""
        client = GitHubClient(self._http, token, org=org, policy=self._policy)
        return await client.detect(timeout_s=self._timeout_s)
