"""A job that fails at any step, before or after Kafka took a message, is delivered again and
the sync still ends exact and reported: no record, continuation or status is lost."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest
from aiokafka.errors import KafkaConnectionError

from koalr_contracts import (
    AnyEvent,
    CycleSpendSnapshot,
    SyncJobRequested,
    SyncStatusChanged,
    UsageRecord,
    topics,
)
from koalr_runtime.sealing import Sealer
from koalr_sandbox.testing import SandboxClient
from koalr_syncer import handlers
from koalr_syncer.service import Publisher
from tests.syncer.conftest import ClockView, MakeSettings, StartSyncer
from tests.syncer.helpers import (
    assert_cycle_exact,
    assert_exact,
    collecting,
    connected_event,
    publish,
    truth_of,
    url_of,
    wait_for,
)

pytestmark = pytest.mark.integration


def kind(events: Sequence[AnyEvent]) -> str:
    first = events[0]
    if isinstance(first, UsageRecord):
        return "records"
    if isinstance(first, CycleSpendSnapshot):
        return "snapshot"
    if isinstance(first, SyncJobRequested):
        return "job"
    if isinstance(first, SyncStatusChanged):
        return f"status:{first.state}"
    return first.event_type


class FlakyPublisher:
    """Fails chosen publishes once: ``before`` ones never reach Kafka, ``after`` ones do and
    then fail anyway (the acknowledgement was lost), as a crash at that point would."""

    def __init__(
        self, inner: Publisher, before: set[tuple[str, int]], after: set[tuple[str, int]]
    ) -> None:
        self._inner = inner
        self._before = before
        self._after = after
        self.seen: Counter[str] = Counter()
        self.injected: list[tuple[str, int]] = []

    async def publish(self, topic: str, events: Sequence[AnyEvent]) -> None:
        name = kind(events)
        self.seen[name] += 1
        point = (name, self.seen[name])
        if point in self._before:
            self.injected.append(point)
            raise KafkaConnectionError(f"injected failure before {point}")
        await self._inner.publish(topic, events)
        if point in self._after:
            self.injected.append(point)
            raise KafkaConnectionError(f"injected failure after {point}")


async def test_failures_at_every_step_lose_nothing(
    *,
    clock: ClockView,
    sandbox: SandboxClient,
    sealer: Sealer,
    make_settings: MakeSettings,
    start_syncer: StartSyncer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(handlers, "INFRA_BACKOFF_MAX_S", 0.3)  # keep the test quick
    team = await sandbox.create_team(seed=17)
    settings = make_settings(url_of(sandbox), chunk_days=10)
    event = connected_event(sealer, team)
    async with collecting(settings) as out:
        before = {
            ("job", 1),  # the backfill job, from the registry
            ("status:syncing", 1),
            ("records", 2),
            ("job", 3),  # a continuation
            ("snapshot", 1),
            ("status:idle", 1),
        }
        after = {("records", 4), ("job", 4)}
        flaky: list[FlakyPublisher] = []

        def wrap(inner: Publisher) -> Publisher:
            flaky.append(FlakyPublisher(inner, before=before, after=after))
            return flaky[-1]

        await start_syncer(settings, wrap_publisher=wrap)
        await publish(settings, topics.INTEGRATIONS, event)
        await wait_for(lambda: out.is_idle(event.integration_id), 90, "the backfill to finish")
    assert set(flaky[0].injected) == before | after
    first, last = clock.window(30)
    truth = await truth_of(sandbox, team, first, last)
    assert assert_exact(out.records_of(event.integration_id), truth, first, last) > 50
    assert_cycle_exact(out.snapshots_of(event.integration_id)[-1], truth)
    states = [s.state for s in out.statuses_of(event.integration_id)]
    assert states[-1] == "idle"
    assert "error" not in states
