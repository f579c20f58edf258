"""Bad messages end in the dead-letter topic with their reason; the partition keeps moving."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from koalr_contracts import IntegrationCredentialsRotated, SyncJobRequested, topics
from koalr_runtime.sealing import Sealer, generate_key_entry
from koalr_sandbox.testing import SandboxClient
from koalr_syncer import handlers
from koalr_syncer.service.common import UNKNOWN_INTEGRATION_MESSAGE
from tests.syncer.conftest import ClockView, MakeSettings, StartSyncer
from tests.syncer.helpers import (
    ORG,
    assert_exact,
    collecting,
    connected_event,
    integration_on_partition,
    publish,
    publish_raw,
    truth_of,
    url_of,
    wait_for,
)
from tests.syncer.transports import NulInMemberName

pytestmark = pytest.mark.integration


async def test_undecodable_and_unknown_jobs_are_dead_lettered_and_others_proceed(
    *,
    clock: ClockView,
    sandbox: SandboxClient,
    sandbox_url: str,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_syncer: StartSyncer,
) -> None:
    team = await sandbox.create_team()
    settings = make_settings(sandbox_url, unknown_integration_wait_s=0.2, worker_concurrency=1)
    event = connected_event(sealer, team, backfill_days=3)
    stranger = uuid4()
    unknown_job = SyncJobRequested(
        org_id=ORG,
        integration_id=stranger,
        provider="cursor",
        reason="manual",
        window_start=clock.today() - timedelta(days=2),
        window_end=clock.today(),
    )
    foreign_cursor = unknown_job.model_copy(
        update={"integration_id": event.integration_id, "cursor": "page=7", "job_id": uuid4()}
    )
    other_org = unknown_job.model_copy(
        update={"integration_id": event.integration_id, "org_id": "org_other", "job_id": uuid4()}
    )
    async with collecting(settings) as out:
        await start_syncer(settings)
        # Bad jobs first on the integration's partition; its backfill must still run.
        key = str(event.integration_id).encode()
        await publish_raw(settings, topics.SYNC_JOBS, b"\xff not json", key)
        await publish_raw(settings, topics.SYNC_JOBS, b'{"event_type": "SyncJobRequested"}', key)
        await publish(settings, topics.SYNC_JOBS, unknown_job, foreign_cursor)
        await publish(settings, topics.INTEGRATIONS, event)
        await wait_for(lambda: out.is_idle(event.integration_id), 60, "the backfill to finish")
        await publish(settings, topics.SYNC_JOBS, other_org)
        await wait_for(lambda: len(out.dead_letters) >= 5, 10, "five dead letters")
        await wait_for(lambda: out.last_status(stranger) is not None, 10, "its status")
    letters = out.dead_letters
    assert len(letters) == 5
    assert all(d.source_topic == settings.topic(topics.SYNC_JOBS) for d in letters)
    assert all(d.consumer_group == settings.group("syncer-workers") for d in letters)
    (not_json,) = [d for d in letters if d.payload_encoding == "base64"]
    assert not_json.error_type == "EventDecodeError"
    (invalid,) = [d for d in letters if d.error_type == "EventDecodeError" and d is not not_json]
    assert "org_id" in invalid.reason  # the missing fields are named
    (unknown,) = [d for d in letters if d.integration_id == stranger]
    assert unknown.error_type == "BadMessageError"
    assert "not registered" in unknown.reason
    # The job for an integration never registered could not run: its status says why.
    status = out.last_status(stranger)
    assert status is not None
    assert (status.state, status.reason_code, status.job_id) == (
        "error",
        "internal_error",
        unknown_job.job_id,
    )
    assert status.message == UNKNOWN_INTEGRATION_MESSAGE
    (cursor,) = [d for d in letters if d.integration_id == event.integration_id and d.org_id == ORG]
    assert cursor.error_type == "BadMessageError"
    assert "cursor" in cursor.reason
    (foreign_org,) = [d for d in letters if d.org_id == "org_other"]
    assert "another organisation" in foreign_org.reason
    assert [r for r in out.records if r.org_id != ORG] == []
    # The bad jobs sat before the backfill job on the integration's partition, and the
    # backfill finished: no bad message stalled the partition.
    assert not_json.source_partition == invalid.source_partition == cursor.source_partition


async def test_integration_events_that_cannot_be_applied_are_dead_lettered(
    sandbox: SandboxClient,
    sandbox_url: str,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_syncer: StartSyncer,
) -> None:
    team = await sandbox.create_team()
    settings = make_settings(sandbox_url)
    foreign = Sealer.from_config(generate_key_entry("elsewhere"))
    unreadable = connected_event(foreign, team)  # sealed with a key the syncer does not hold
    orphan = IntegrationCredentialsRotated(
        org_id=ORG,
        integration_id=uuid4(),
        provider="cursor",
        plan="business",
        sealed_credential=sealer.seal("crsr_x", context="whatever"),
    )
    async with collecting(settings) as out:
        await start_syncer(settings)
        await publish(settings, topics.INTEGRATIONS, unreadable, orphan)
        await wait_for(lambda: len(out.dead_letters) >= 2, 30, "two dead letters")
        await wait_for(lambda: out.last_status(unreadable.integration_id) is not None, 10, "status")
    by_integration = {d.integration_id: d for d in out.dead_letters}
    assert "cannot be opened" in by_integration[unreadable.integration_id].reason
    assert "not registered" in by_integration[orphan.integration_id].reason
    assert all(d.consumer_group == settings.group("syncer-registry") for d in out.dead_letters)
    status = out.last_status(unreadable.integration_id)
    assert status is not None
    assert (status.state, status.reason_code) == ("error", "internal_error")
    letters = repr(out.dead_letters)
    assert team.api_key not in letters  # no clear-text credential echoed
    assert "crsr_x" not in letters
    assert out.records == []


async def test_a_job_that_keeps_failing_is_dead_lettered_and_reported(
    sandbox: SandboxClient,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_syncer: StartSyncer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    team = await sandbox.create_team()
    settings = make_settings(url_of(sandbox))
    event = connected_event(sealer, team, backfill_days=3)
    monkeypatch.setattr(handlers, "MAX_FAILURES_BEFORE_DEAD_LETTER", 2)
    async with collecting(settings) as out:
        runtime = await start_syncer(settings)
        attempts: list[UUID] = []

        async def broken(*args: object) -> str:
            job = args[2]
            assert isinstance(job, SyncJobRequested)
            attempts.append(job.job_id)
            raise RuntimeError("a bug in the worker")

        monkeypatch.setattr(runtime.jobs, "_work", broken)
        await publish(settings, topics.INTEGRATIONS, event)

        def reported() -> bool:
            last = out.last_status(event.integration_id)
            return last is not None and last.reason_code == "internal_error"

        await wait_for(reported, 30, "the internal_error status")
        await wait_for(lambda: len(out.dead_letters) == 1, 10, "the dead letter")
    (letter,) = out.dead_letters
    assert letter.error_type == "RuntimeError"
    assert letter.reason == "a bug in the worker"
    assert len(attempts) == 2
    assert len(set(attempts)) == 1  # the same job, delivered again after the first failure
    assert out.records == []


async def test_a_value_postgresql_refuses_is_dead_lettered_and_the_partition_moves_on(
    *,
    clock: ClockView,
    sandbox: SandboxClient,
    sandbox_url: str,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_syncer: StartSyncer,
) -> None:
    poisoned_team = await sandbox.create_team(seed=3)
    healthy_team = await sandbox.create_team(seed=4)
    settings = make_settings(sandbox_url, worker_concurrency=1)
    taken: set[UUID] = set()
    poisoned = connected_event(
        sealer,
        poisoned_team,
        integration_id=integration_on_partition(0, settings.topic_partitions, taken),
        backfill_days=3,
    )
    healthy = connected_event(
        sealer,
        healthy_team,
        integration_id=integration_on_partition(0, settings.topic_partitions, taken),
        backfill_days=3,
    )
    async with collecting(settings) as out:
        await start_syncer(settings, transport=NulInMemberName(poisoned_team))
        # The poisoned backfill job sits first on the partition both backfills share.
        await publish(settings, topics.INTEGRATIONS, poisoned, healthy)
        await wait_for(lambda: out.is_idle(healthy.integration_id), 60, "the healthy backfill")
        await wait_for(lambda: len(out.dead_letters) >= 1, 10, "the dead letter")
    # Its repairs (scheduled while days of its backfill window are missing) fail the same way.
    for letter in out.dead_letters:
        assert letter.integration_id == poisoned.integration_id
        assert letter.error_type == "CharacterNotInRepertoireError"
        assert letter.source_topic == settings.topic(topics.SYNC_JOBS)
    status = out.last_status(poisoned.integration_id)
    assert status is not None
    assert (status.state, status.reason_code) == ("error", "internal_error")
    first, last = clock.window(3)
    truth = await truth_of(sandbox, healthy_team, first, last)
    assert assert_exact(out.records_of(healthy.integration_id), truth, first, last) > 0
    assert out.records_of(poisoned.integration_id) == []
