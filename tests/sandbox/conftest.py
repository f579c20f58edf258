"""Fixtures for the sandbox tests: an in-process app on a frozen clock and a client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from koalr_sandbox.app import create_app
from koalr_sandbox.clock import ManualClock
from koalr_sandbox.testing import SandboxClient

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
