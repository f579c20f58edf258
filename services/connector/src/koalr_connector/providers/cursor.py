"""Validating a Cursor Admin API key and detecting the team's plan.

Three cheap calls, each on its own rate-limit bucket at Cursor:

1. ``GET /teams/members`` (every plan): 401/403 means the key is rejected.
2. ``POST /teams/daily-usage-data`` for one day and one member: 401/403 means a Team plan, which
   only gives the member list.
3. ``GET /analytics/team/dau?startDate=1d&endDate=today``: 200 means Enterprise (Analytics API),
   401/403 means Business (Admin API only).

A 5xx, a timeout or a connection error is ``provider_unavailable``; a 429 is retried once after
``Retry-After`` (or 1-2 s) when the time budget allows. The whole check has one time budget.
The key travels only in the Basic ``Authorization`` header and never appears in a message.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from koalr_connector.errors import InvalidApiKeyError, ProviderUnavailableError
from koalr_contracts import Plan
from koalr_runtime.logs import get_logger

log = get_logger(__name__)

Sleep = Callable[[float], Awaitable[None]]

REJECTED = (401, 403)


class CursorClient:
    """Talks to the Cursor API (or the sandbox) over a shared ``httpx.AsyncClient``."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        timeout_s: float,
        retry_wait_s: tuple[float, float] = (1.0, 2.0),
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._http = http
        self._timeout_s = timeout_s
        self._retry_wait_s = retry_wait_s
        self._sleep = sleep

    async def detect_plan(self, api_key: str) -> Plan:
        """The plan of the team behind ``api_key``.

        Raises :class:`InvalidApiKeyError` when Cursor rejects the key and
        :class:`ProviderUnavailableError` when Cursor cannot tell in time.
        """
        started = time.monotonic()
        deadline = started + self._timeout_s
        try:
            async with asyncio.timeout(self._timeout_s):
                plan = await self._detect(api_key, deadline)
        except TimeoutError:
            raise ProviderUnavailableError(
                f"Cursor's API did not answer within {self._timeout_s:g} s; nothing was saved. "
                "Try again in a few minutes."
            ) from None
        log.info(
            "cursor.key_validated", plan=plan, duration_ms=round((time.monotonic() - started) * 1e3)
        )
        return plan

    async def _detect(self, api_key: str, deadline: float) -> Plan:
        members = await self._call("GET", "/teams/members", api_key, deadline)
        if members.status_code in REJECTED:
            raise InvalidApiKeyError(
                f"Cursor rejected this API key (HTTP {members.status_code}). Use a team Admin "
                "API key from Cursor's team settings (API keys) that has not been revoked."
            )
        _expect_ok(members, "/teams/members")

        yesterday = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - (
            timedelta(days=1)
        )
        day_ms = int(yesterday.timestamp() * 1000)
        body = {"startDate": day_ms, "endDate": day_ms, "page": 1, "pageSize": 1}
        usage = await self._call("POST", "/teams/daily-usage-data", api_key, deadline, json=body)
        if usage.status_code in REJECTED:
            return "team"
        _expect_ok(usage, "/teams/daily-usage-data")

        params = {"startDate": "1d", "endDate": "today"}
        dau = await self._call("GET", "/analytics/team/dau", api_key, deadline, params=params)
        if dau.status_code in REJECTED:
            return "business"
        _expect_ok(dau, "/analytics/team/dau")
        return "enterprise"

    async def _call(
        self,
        method: str,
        path: str,
        api_key: str,
        deadline: float,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        for attempt in (1, 2):
            try:
                response = await self._http.request(
                    method, path, json=json, params=params, auth=(api_key, "")
                )
            except httpx.TimeoutException:
                raise ProviderUnavailableError(
                    f"Cursor's API timed out on {path}; nothing was saved. "
                    "Try again in a few minutes."
                ) from None
            except httpx.TransportError as exc:
                raise ProviderUnavailableError(
                    f"Cursor's API could not be reached ({type(exc).__name__}); nothing was "
                    "saved. Try again in a few minutes."
                ) from None
            status = response.status_code
            log.debug("cursor.response", method=method, path=path, status=status)
            if status >= 500:
                raise ProviderUnavailableError(
                    f"Cursor's API answered HTTP {status} on {path}; nothing was saved. "
                    "Try again in a few minutes."
                )
            if status != 429:
                return response
            wait_s = self._retry_wait(response)
            if attempt == 2 or time.monotonic() + wait_s >= deadline:
                break
            log.info("cursor.rate_limited", path=path, retry_in_s=round(wait_s, 2))
            await self._sleep(wait_s)
        raise ProviderUnavailableError(
            f"Cursor's API is rate limiting requests for this key ({path}); nothing was saved. "
            "Try again in a minute."
        )

    def _retry_wait(self, response: httpx.Response) -> float:
        header = response.headers.get("retry-after")
        if header is not None:
            try:
                return max(0.0, float(header))
            except ValueError:
                pass
        low, high = self._retry_wait_s
        return random.uniform(low, high)  # noqa: S311 - jitter, not cryptography


def _expect_ok(response: httpx.Response, path: str) -> None:
    if response.status_code != 200:
        raise ProviderUnavailableError(
            f"Cursor's API answered HTTP {response.status_code} on {path}, which was not "
            "expected; nothing was saved. Try again later."
        )
