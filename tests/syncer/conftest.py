"""Fixtures of the syncer tests: a Cursor sandbox, settings for a test's namespace and database,
and in-process syncer runtimes stopped at the end of the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from koalr_runtime.db import create_pool
from koalr_runtime.migrations import migrate
from koalr_runtime.sealing import Sealer, generate_key_entry
from koalr_sandbox.clock import Clock, ManualClock, SystemClock
from koalr_sandbox.testing import GithubSandboxClient, SandboxClient, run_sandbox
from koalr_syncer.app import MIGRATIONS, SyncerRuntime
from koalr_syncer.settings import SyncerSettings

#: Small teams keep the suite fast; rate limits are switched on by the tests about them.
SMALL_TEAM: dict[str, Any] = {
    "plan": "enterprise",
    "members": 12,
    "days": 40,
    "seed": 7,
    "rate_limits_enabled": False,
    "visibility_delay_s": 0,
}

MakeSettings = Callable[..., SyncerSettings]
Pools = list["asyncpg.Pool[Any]"]
StartSyncer = Callable[..., Awaitable[SyncerRuntime]]


@pytest.fixture(scope="session")
def sealing_keys() -> str:
    return generate_key_entry("test1")


@pytest.fixture
def sealer(sealing_keys: str) -> Sealer:
    return Sealer.from_config(sealing_keys)


@pytest.fixture
def sandbox_clock() -> ManualClock:
    """The sandbox's clock, frozen at the start of the test: its data and truth hold still."""
    return ManualClock(datetime.now(UTC))


@dataclass(frozen=True)
class ClockView:
    """One clock for a test: it drives the syncer's "now" and the test's expected windows, so a
    test that runs across 00:00 UTC compares the days the syncer really read."""

    source: Clock

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.source.now(), UTC)

    def today(self) -> date:
        return self.now().date()

    def advance(self, seconds: float) -> None:
        """Move the frozen clock on (the sandbox sees the same moment)."""
        if not isinstance(self.source, ManualClock):
            raise TypeError("only a frozen clock is moved by a test")
        self.source.advance(seconds)

    def window(self, days: int) -> tuple[date, date]:
        """The last ``days`` UTC days, today included."""
        end = self.today()
        return end - timedelta(days=days - 1), end


@pytest.fixture
def clock(sandbox_clock: ManualClock) -> ClockView:
    """The sandbox's frozen clock, seen by the syncer and the test alike."""
    return ClockView(sandbox_clock)


@pytest.fixture
def live_clock() -> ClockView:
    """The system clock, for tests against :func:`live_sandbox` and syncer processes."""
    return ClockView(SystemClock())


@pytest.fixture
def sandbox_url(sandbox_clock: ManualClock) -> Iterator[str]:
    with run_sandbox(clock=sandbox_clock) as url:
        yield url


@pytest.fixture
async def sandbox(sandbox_url: str) -> AsyncIterator[SandboxClient]:
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=30) as http:
        yield SandboxClient(http, defaults=SMALL_TEAM)


#: A small Copilot org: 40 days of history, so a 30-day backfill has published and unpublished days.
SMALL_ORG: dict[str, Any] = {"plan": "business", "seats": 15, "days": 40, "seed": 5}


@pytest.fixture
async def github(sandbox_url: str) -> AsyncIterator[GithubSandboxClient]:
    """The sandbox's GitHub half, on the same frozen clock as its Cursor half."""
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=30) as http:
        yield GithubSandboxClient(http, defaults=SMALL_ORG)


@pytest.fixture
def live_sandbox_url() -> Iterator[str]:
    """A sandbox on the system clock: rate-limit windows and Retry-After run in real time."""
    with run_sandbox() as url:
        yield url


@pytest.fixture
async def live_sandbox(live_sandbox_url: str) -> AsyncIterator[SandboxClient]:
    async with httpx.AsyncClient(base_url=live_sandbox_url, timeout=30) as http:
        yield SandboxClient(http, defaults=SMALL_TEAM)


@pytest.fixture
def make_settings(
    kafka_bootstrap_servers: str,
    fresh_database_url: str,
    topic_namespace: str,
    sealing_keys: str,
) -> MakeSettings:
    """Settings of a syncer in this test's namespace and database, tuned for fast tests."""

    def make(base_url: str, **overrides: Any) -> SyncerSettings:
        values: dict[str, Any] = {
            "kafka_bootstrap_servers": kafka_bootstrap_servers,
            "database_url": fresh_database_url,
            "topic_namespace": topic_namespace,
            "topic_partitions": 3,
            "sealing_keys": sealing_keys,
            "cursor_api_base_url": base_url,
            "github_api_base_url": base_url,
            "github_throttle_base_s": 0.5,
            "http_read_timeout_s": 2.0,
            "http_connect_timeout_s": 2.0,
            "retry_base_s": 0.05,
            "retry_max_s": 0.4,
            "run_retry_base_s": 0.5,
            "run_retry_max_s": 2.0,
            "scheduler_poll_s": 0.3,
            "consumer_session_timeout_ms": 6000,
            "consumer_heartbeat_interval_ms": 1000,
            "worker_concurrency": 2,
            "db_pool_size": 4,
        }
        values.update(overrides)
        return SyncerSettings(**values)

    return make


@pytest.fixture
async def start_syncer(clock: ClockView) -> AsyncIterator[StartSyncer]:
    """Start an in-process syncer on the test's clock (``now=`` overrides it); other keyword
    arguments go to :class:`SyncerRuntime`."""
    started: list[SyncerRuntime] = []

    async def start(
        settings: SyncerSettings, *, run_scheduler: bool = True, **options: Any
    ) -> SyncerRuntime:
        options.setdefault("now", clock.now)
        runtime = SyncerRuntime(settings, **options)
        await runtime.start(run_scheduler=run_scheduler)
        started.append(runtime)
        return runtime

    yield start
    for runtime in reversed(started):
        await runtime.stop()


@pytest.fixture
async def pools(fresh_database_url: str) -> AsyncIterator[Pools]:
    """Two pools on the syncer's migrated schema, as two processes would hold."""
    await migrate(fresh_database_url, "syncer", MIGRATIONS)
    created = [
        await create_pool(fresh_database_url, server_settings={"search_path": "syncer"})
        for _ in range(2)
    ]
    yield created
    for pool in created:
        await pool.close()
