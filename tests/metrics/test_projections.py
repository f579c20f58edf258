"""The projections of koalr.integrations.v1 and koalr.sync-status.v1 apply events by their
per-integration sequence, never by the producers' clocks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest

from koalr_metrics.analytics import DayRange
from koalr_metrics.app import MIGRATIONS
from koalr_metrics.ingest import IntegrationEvent
from koalr_metrics.repository import MetricsRepository
from koalr_runtime.db import create_pool
from koalr_runtime.migrations import migrate
from tests.metrics.support import connected, disconnected, new_id, rotated, sync_status

pytestmark = pytest.mark.integration

ORG = "org-order"
SCHEMA = "metrics"
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
RANGE = DayRange(date(2026, 2, 1), date(2026, 2, 28))


@pytest.fixture
async def repository(fresh_database_url: str) -> AsyncIterator[MetricsRepository]:
    await migrate(fresh_database_url, SCHEMA, MIGRATIONS)
    pool = await create_pool(
        fresh_database_url,
        server_settings={"search_path": SCHEMA},
        init=MetricsRepository.prepare_connection,
    )
    try:
        yield MetricsRepository(pool)
    finally:
        await pool.close()


async def shown(repository: MetricsRepository) -> dict[str, tuple[str | None, date | None]]:
    """The org's integrations the API shows, with their sync state and data_through."""
    _, providers = await repository.provider_data(ORG, None, RANGE, is_admin=True)
    return {str(p.integration_id): (p.state, p.data_through) for p in providers}


async def test_integration_events_apply_by_sequence_not_by_clock(
    repository: MetricsRepository,
) -> None:
    integration = new_id()
    connect = connected(ORG, integration, sequence=1, occurred_at=T0)
    # The disconnect comes from a connector replica whose clock is an hour behind.
    disconnect = disconnected(
        ORG, integration, purge=False, sequence=3, occurred_at=T0 - timedelta(hours=1)
    )
    redelivered = connected(ORG, integration, sequence=1, occurred_at=T0 + timedelta(hours=1))
    overtaken = connected(ORG, integration, sequence=2, occurred_at=T0 + timedelta(hours=2))

    assert await repository.apply_integration_events([connect]) == [True]
    assert await shown(repository) == {str(integration): (None, None)}
    assert await repository.apply_integration_events([disconnect, redelivered, overtaken]) == [
        True,
        False,
        False,
    ]
    assert await shown(repository) == {}


async def test_a_rotation_takes_its_place_in_the_order(repository: MetricsRepository) -> None:
    integration = new_id()
    events: list[IntegrationEvent] = [
        connected(ORG, integration, sequence=1),
        rotated(ORG, integration, sequence=2),
        rotated(ORG, integration, sequence=2),
        disconnected(ORG, integration, purge=False, sequence=3),
    ]
    assert await repository.apply_integration_events(events) == [True, True, False, True]
    # The same integration connected again, announced after the disconnect, then replayed.
    again = connected(ORG, integration, sequence=4, occurred_at=T0 - timedelta(days=1))
    assert await repository.apply_integration_events([again, again]) == [True, False]
    assert await shown(repository) == {str(integration): (None, None)}


async def test_unordered_events_apply_in_arrival_order_until_a_numbered_one(
    repository: MetricsRepository,
) -> None:
    integration = new_id()
    legacy: list[IntegrationEvent] = [
        connected(ORG, integration, occurred_at=T0),
        disconnected(ORG, integration, purge=False),
        connected(ORG, integration, occurred_at=T0 - timedelta(days=1)),
    ]
    assert await repository.apply_integration_events(legacy) == [True, True, True]
    assert await shown(repository) == {str(integration): (None, None)}
    numbered = disconnected(ORG, integration, purge=False, sequence=1)
    late_legacy = connected(ORG, integration, occurred_at=T0 + timedelta(days=1))
    assert await repository.apply_integration_events([numbered, late_legacy]) == [True, False]
    assert await shown(repository) == {}


async def test_sync_status_applies_by_sequence_not_by_clock(
    repository: MetricsRepository,
) -> None:
    integration = new_id()
    await repository.apply_integration_events([connected(ORG, integration, sequence=1)])
    idle = sync_status(
        ORG, integration, "idle", sequence=5, data_through=date(2026, 2, 27), occurred_at=T0
    )
    assert await repository.apply_sync_statuses([idle]) == [True]

    # A redelivery and an overtaken event, both stamped later than the applied one: skipped.
    late = [
        sync_status(
            ORG,
            integration,
            "error",
            reason_code="provider_unavailable",
            sequence=sequence,
            occurred_at=T0 + timedelta(minutes=10),
        )
        for sequence in (5, 4)
    ]
    assert await repository.apply_sync_statuses(late) == [False, False]
    assert await shown(repository) == {str(integration): ("idle", date(2026, 2, 27))}

    # The next one from a syncer whose clock is an hour behind: applied.
    syncing = sync_status(
        ORG, integration, "syncing", sequence=6, occurred_at=T0 - timedelta(hours=1)
    )
    assert await repository.apply_sync_statuses([syncing]) == [True]
    assert await shown(repository) == {str(integration): ("syncing", date(2026, 2, 27))}
