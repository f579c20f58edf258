"""The registry applies integration events in the order of their sequence, never of the clocks
that stamped them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from koalr_contracts import (
    AnyEvent,
    IntegrationCredentialsRotated,
    IntegrationDisconnected,
    SyncJobRequested,
    topics,
)
from koalr_providers.cursor.shapes import Member
from koalr_runtime.sealing import Sealer
from koalr_sandbox.testing import SandboxTeam
from koalr_syncer.repository import IntegrationRepository, MemberRepository, StatusRepository
from koalr_syncer.service import Registry, StatusReporter
from tests.syncer.conftest import ClockView, MakeSettings, Pools
from tests.syncer.helpers import ORG, connected_event

pytestmark = pytest.mark.integration


class Recorder:
    """Keeps what the registry publishes."""

    def __init__(self) -> None:
        self.published: list[AnyEvent] = []
        self.topics: list[str] = []

    async def publish(self, topic: str, events: Sequence[AnyEvent]) -> None:
        self.topics.append(topic)
        self.published.extend(events)


def registry_on(
    *,
    integrations: IntegrationRepository,
    publisher: Recorder,
    pools: Pools,
    sealer: Sealer,
    make_settings: MakeSettings,
    clock: ClockView,
) -> Registry:
    return Registry(
        settings=make_settings("http://cursor.invalid"),
        integrations=integrations,
        publisher=publisher,
        status=StatusReporter(publisher, StatusRepository(pools[0])),
        sealer=sealer,
        now=clock.now,
    )


async def test_rotations_and_disconnects_apply_by_sequence_not_by_occurred_at(
    pools: Pools, sealer: Sealer, make_settings: MakeSettings, clock: ClockView
) -> None:
    integrations = IntegrationRepository(pools[0])
    publisher = Recorder()
    registry = registry_on(
        integrations=integrations,
        publisher=publisher,
        pools=pools,
        sealer=sealer,
        make_settings=make_settings,
        clock=clock,
    )
    team = SandboxTeam(team_id="team-1", api_key="crsr_first")
    connected = connected_event(sealer, team).model_copy(update={"sequence": 1})
    integration_id = connected.integration_id
    t0 = connected.occurred_at

    def rotation(key: str, sequence: int, skew: timedelta) -> IntegrationCredentialsRotated:
        return IntegrationCredentialsRotated(
            org_id=ORG,
            integration_id=integration_id,
            provider="cursor",
            plan="business",
            sealed_credential=sealer.seal(key, context=str(integration_id)),
            sequence=sequence,
            occurred_at=t0 + skew,
        )

    async def connected_now() -> bool:
        integration = await integrations.get(integration_id)
        assert integration is not None
        return integration.connected

    async def stored_key() -> str:
        integration = await integrations.get(integration_id)
        assert integration is not None
        assert integration.sealed_credential is not None
        return sealer.open(integration.sealed_credential, context=str(integration_id))

    assert await registry.apply(connected) == "connected"
    # Stamped by a clock an hour behind, but produced after the connect: applied.
    later = rotation("crsr_second", 3, -timedelta(hours=1))
    assert await registry.apply(later) == "rotated"
    assert await stored_key() == "crsr_second"
    # Stamped by a clock an hour ahead, but produced before the rotation above: not applied.
    earlier = rotation("crsr_stale", 2, timedelta(hours=1))
    assert await registry.apply(earlier) == "stale"
    assert await stored_key() == "crsr_second"
    assert await registry.apply(later) == "duplicate"  # a redelivery changes nothing
    same_sequence = rotation("crsr_other", 3, timedelta(0))
    assert await registry.apply(same_sequence) == "stale"
    assert await stored_key() == "crsr_second"

    def disconnect(sequence: int) -> IntegrationDisconnected:
        return IntegrationDisconnected(
            org_id=ORG,
            integration_id=integration_id,
            provider="cursor",
            sequence=sequence,
            occurred_at=t0 - timedelta(days=1),
        )

    assert await registry.apply(disconnect(2)) == "stale"
    assert await connected_now() is True
    assert await registry.apply(disconnect(4)) == "disconnected"
    assert await connected_now() is False
    # The connect published its backfill job; nothing else was published.
    (job,) = publisher.published
    assert publisher.topics == [topics.SYNC_JOBS]
    assert isinstance(job, SyncJobRequested)
    assert (job.window_start, job.window_end) == clock.window(30)


async def test_unordered_events_of_schema_version_1_apply_in_arrival_order(
    pools: Pools, sealer: Sealer, make_settings: MakeSettings, clock: ClockView
) -> None:
    integrations = IntegrationRepository(pools[0])
    publisher = Recorder()
    registry = registry_on(
        integrations=integrations,
        publisher=publisher,
        pools=pools,
        sealer=sealer,
        make_settings=make_settings,
        clock=clock,
    )
    team = SandboxTeam(team_id="team-1", api_key="crsr_first")
    connected = connected_event(sealer, team)
    assert connected.sequence == 0
    assert await registry.apply(connected) == "connected"
    rotated = IntegrationCredentialsRotated(
        org_id=ORG,
        integration_id=connected.integration_id,
        provider="cursor",
        plan="team",
        sealed_credential=sealer.seal("crsr_x", context=str(connected.integration_id)),
        occurred_at=connected.occurred_at - timedelta(minutes=5),
    )
    assert await registry.apply(rotated) == "rotated"
    integration = await integrations.get(connected.integration_id)
    assert integration is not None
    assert (integration.plan, integration.status) == ("team", "degraded")


async def test_a_purge_deletes_every_row_and_later_events_of_it_are_stale(
    pools: Pools, sealer: Sealer, make_settings: MakeSettings, clock: ClockView
) -> None:
    integrations = IntegrationRepository(pools[0])
    publisher = Recorder()
    registry = registry_on(
        integrations=integrations,
        publisher=publisher,
        pools=pools,
        sealer=sealer,
        make_settings=make_settings,
        clock=clock,
    )
    team = SandboxTeam(team_id="team-purged", api_key="crsr_purged")
    connected = connected_event(sealer, team).model_copy(update={"sequence": 1})
    integration_id = connected.integration_id
    assert await registry.apply(connected) == "connected"
    await MemberRepository(pools[0]).upsert(
        integration_id,
        [Member("ann@example.com", "Ann", "1", "member", is_removed=False)],
    )
    purge = IntegrationDisconnected(
        org_id=ORG, integration_id=integration_id, provider="cursor", sequence=2, purge=True
    )

    assert await registry.apply(purge) == "purged"

    async with pools[0].acquire() as conn:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND column_name = 'integration_id'"
        )
        left = {
            t["table_name"]: await conn.fetchval(
                f'SELECT count(*) FROM "{t["table_name"]}" WHERE integration_id = $1',  # noqa: S608
                integration_id,
            )
            for t in tables
        }
    assert {table: n for table, n in left.items() if n} == {"purged_integrations": 1}
    # A redelivered purge, the connect delivered again and a late rotation change nothing.
    assert await registry.apply(purge) == "stale"
    assert await registry.apply(connected) == "stale"
    rotation = IntegrationCredentialsRotated(
        org_id=ORG,
        integration_id=integration_id,
        provider="cursor",
        plan="business",
        sealed_credential=sealer.seal("crsr_late", context=str(integration_id)),
        sequence=3,
    )
    assert await registry.apply(rotation) == "stale"
    assert await integrations.get(integration_id) is None
    # Only the first connect's backfill job was published.
    assert len(publisher.published) == 1
