"""Fixtures for the sandbox tests: an in-process app on a frozen clock and a client for it.

The GitHub half's tests run against the real HTTP server (uvicorn in a thread) on the same clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from koalr_sandbox.app import create_app
from koalr_sandbox.clock import ManualClock
from koalr_sandbox.testing import GithubSandboxClient, SandboxClient, run_sandbox

#: Wednesday 2026-03-18 15:00 UTC; with the default one-hour delay, data is visible to 14:00.
NOW = datetime(2026, 3, 18, 15, 0, tzinfo=UTC)

#: Small teams keep the suite fast; rate limits are switched on by the tests about them.
SMALL_TEAM = {
    "plan": "enterprise",
    "members": 12,
    "days": 40,
    "seed": 7,
    "rate_limits_enabled": False,
}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def app(clock: ManualClock) -> FastAPI:
    return create_app(clock=clock)


@pytest.fixture
async def sandbox(app: FastAPI) -> AsyncIterator[SandboxClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
        yield SandboxClient(http, defaults=SMALL_TEAM)


#: A GitHub org small enough to keep the suite fast; the limit tests switch limits back on.
SMALL_ORG = {"seats": 40, "days": 60, "seed": 1, "rate_limits_enabled": False}


@pytest.fixture
async def github(clock: ManualClock) -> AsyncIterator[GithubSandboxClient]:
    with run_sandbox(clock=clock) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
            yield GithubSandboxClient(http, defaults=SMALL_ORG)
