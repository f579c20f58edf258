"""MemberErased in the syncer: the member's directory row goes, a tombstone keeps the provider's
next member listing from storing it again, and only that org's member is touched."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from koalr_contracts import MemberErased
from koalr_providers.cursor.shapes import Member
from koalr_runtime.sealing import Sealer
from koalr_sandbox.testing import SandboxTeam
from koalr_syncer.repository import IntegrationRepository, MemberRepository, StatusRepository
from koalr_syncer.service import Erasures, Registry, StatusReporter
from tests.syncer.conftest import ClockView, MakeSettings, Pools
from tests.syncer.helpers import ORG, connected_event
from tests.syncer.test_registry import Recorder

pytestmark = pytest.mark.integration

LISTING = [
    Member("Ann@Example.com", "Ann", "1", "member", is_removed=False),
    Member("ben@example.com", "Ben", "2", "member", is_removed=False),
]


def member_hash(org_id: str, identifier: str) -> str:
    """The contract's hash, computed independently of PostgreSQL."""
    return hashlib.sha256(f"{org_id}\n{identifier}".encode()).hexdigest()


async def test_an_erased_member_leaves_the_directory_and_stays_out(
    pools: Pools, sealer: Sealer, make_settings: MakeSettings, clock: ClockView
) -> None:
    publisher = Recorder()
    registry = Registry(
        settings=make_settings("http://cursor.invalid"),
        integrations=IntegrationRepository(pools[0]),
        publisher=publisher,
        status=StatusReporter(publisher, StatusRepository(pools[0])),
        sealer=sealer,
        now=clock.now,
    )
    members = MemberRepository(pools[0])
    ours = connected_event(sealer, SandboxTeam("team-e1", "crsr_e1"))
    theirs = connected_event(sealer, SandboxTeam("team-e2", "crsr_e2")).model_copy(
        update={"org_id": "org-other"}
    )
    for event in (ours, theirs):
        assert await registry.apply(event) == "connected"
        await members.upsert(event.integration_id, LISTING)
    erased = MemberErased(
        org_id=ORG,
        integration_id=ours.integration_id,
        erasure_id=uuid.uuid4(),
        member_hash=member_hash(ORG, "ann@example.com"),
    )

    assert await Erasures(members).apply(erased) == "erased"

    assert set(await members.directory(ours.integration_id)) == {"ben@example.com"}
    assert set(await members.directory(theirs.integration_id)) == {
        "Ann@Example.com",
        "ben@example.com",
    }
    # The provider lists her again at the next sync: she is not stored again.
    await members.upsert(ours.integration_id, LISTING)
    assert set(await members.directory(ours.integration_id)) == {"ben@example.com"}
    # A redelivery is harmless.
    assert await Erasures(members).apply(erased) == "erased"
    assert set(await members.directory(ours.integration_id)) == {"ben@example.com"}
