"""Fixtures of the provider-client tests: the Cursor API sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from koalr_sandbox.testing import SandboxClient, run_sandbox

#: Small, quiet sandbox teams: rate limits are switched on only by the tests about them.
TEAM_DEFAULTS: dict[str, Any] = {
    "members": 4,
    "days": 3,
    "seed": 11,
    "rate_limits_enabled": False,
}


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    with run_sandbox() as url:
        yield url


@pytest.fixture
async def sandbox(sandbox_url: str) -> AsyncIterator[SandboxClient]:
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=30) as http:
        yield SandboxClient(http, defaults=TEAM_DEFAULTS)
