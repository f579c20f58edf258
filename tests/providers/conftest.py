"""Fixtures of the provider-client tests: the Cursor API sandbox and the waits of retries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import stamina
from stamina.instrumentation import RetryDetails, get_on_retry_hooks, set_on_retry_hooks

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


@pytest.fixture
def retry_waits() -> Iterator[list[float]]:
    """The seconds ``stamina`` waited before each retry, in order."""
    assert stamina.is_active()
    waits: list[float] = []
    previous = get_on_retry_hooks()

    def record(details: RetryDetails) -> None:
        waits.append(details.wait_for)

    set_on_retry_hooks([record])
    yield waits
    set_on_retry_hooks(previous)
