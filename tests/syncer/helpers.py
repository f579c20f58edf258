"""Helpers of the syncer tests: sandbox teams, events to publish, and a collector of outputs."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import murmur2

from koalr_contracts import (
    CycleSpendSnapshot,
    DaySpend,
    DeadLetter,
    IntegrationConnected,
    Plan,
    SeatsSnapshot,
    SyncJobRequested,
    SyncStatusChanged,
    UsageRecord,
    decode_event,
    topics,
)
from koalr_providers.github.definitions import seat_price_cents, seats_cents
from koalr_runtime.kafka import ensure_topics, make_broker, publish_event
from koalr_runtime.sealing import Sealer
from koalr_runtime.settings import ServiceSettings
from koalr_sandbox.testing import SandboxClient, SandboxOrg, SandboxTeam

ORG = "org_tests"


def integration_on_partition(partition: int, partitions: int, taken: set[UUID]) -> UUID:
    """A fresh integration id whose Kafka key lands on ``partition`` (Kafka's murmur2)."""
    while True:
        candidate = uuid4()
        index = (murmur2(str(candidate).encode()) & 0x7FFFFFFF) % partitions
        if index == partition and candidate not in taken:
            taken.add(candidate)
            return candidate


def connected_event(
    sealer: Sealer,
    team: SandboxTeam,
    *,
    integration_id: UUID | None = None,
    plan: Plan = "enterprise",
    backfill_days: int = 30,
) -> IntegrationConnected:
    integration_id = integration_id or uuid4()
    degraded = plan == "team"
    return IntegrationConnected(
        org_id=ORG,
        integration_id=integration_id,
        provider="cursor",
        external_id=team.team_id,
        plan=plan,
        status="degraded" if degraded else "active",
        status_reason="insufficient_plan" if degraded else None,
        sealed_credential=sealer.seal(team.api_key, context=str(integration_id)),
        backfill_days=backfill_days,
    )


def copilot_connected_event(
    sealer: Sealer,
    org: SandboxOrg,
    *,
    plan: Plan = "business",
    metrics_enabled: bool = True,
    backfill_days: int = 30,
) -> IntegrationConnected:
    """A GitHub Copilot org connected as the connector announces it (``degraded`` with
    ``metrics_disabled`` when its reports are refused)."""
    integration_id = uuid4()
    return IntegrationConnected(
        org_id=ORG,
        integration_id=integration_id,
        provider="github_copilot",
        external_id=org.org,
        plan=plan,
        status="active" if metrics_enabled else "degraded",
        status_reason=None if metrics_enabled else "metrics_disabled",
        sealed_credential=sealer.seal(org.token, context=str(integration_id)),
        backfill_days=backfill_days,
    )


async def publish(settings: ServiceSettings, topic: str, *events: Any) -> None:
    broker = make_broker(settings, client_id="syncer-tests")
    async with broker:
        await broker.start()
        for event in events:
            await publish_event(broker, settings.topic(topic), event)


async def publish_raw(settings: ServiceSettings, topic: str, payload: bytes, key: bytes) -> None:
    broker = make_broker(settings, client_id="syncer-tests")
    async with broker:
        await broker.start()
        await broker.publish(payload, settings.topic(topic), key=key)


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]], timeout_s: float, what: str
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


@dataclass
class Collected:
    records: list[UsageRecord] = field(default_factory=list)
    snapshots: list[CycleSpendSnapshot] = field(default_factory=list)
    seats: list[SeatsSnapshot] = field(default_factory=list)
    day_spends: list[DaySpend] = field(default_factory=list)
    statuses: list[SyncStatusChanged] = field(default_factory=list)
    jobs: list[SyncJobRequested] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    misrouted: list[str] = field(default_factory=list)
    """Messages whose Kafka key is not their integration id."""

    def statuses_of(self, integration_id: UUID) -> list[SyncStatusChanged]:
        return [s for s in self.statuses if s.integration_id == integration_id]

    def last_status(self, integration_id: UUID) -> SyncStatusChanged | None:
        mine = self.statuses_of(integration_id)
        return mine[-1] if mine else None

    def is_idle(self, integration_id: UUID) -> bool:
        last = self.last_status(integration_id)
        return last is not None and last.state == "idle"

    def records_of(self, integration_id: UUID) -> list[UsageRecord]:
        return [r for r in self.records if r.integration_id == integration_id]

    def snapshots_of(self, integration_id: UUID) -> list[CycleSpendSnapshot]:
        return [s for s in self.snapshots if s.integration_id == integration_id]

    def backfill_window(self, integration_id: UUID) -> tuple[date, date]:
        """The days the syncer chose to backfill (by its own clock; needs ``with_jobs``)."""
        (job,) = [
            j
            for j in self.jobs
            if j.integration_id == integration_id and j.reason == "backfill" and j.cursor is None
        ]
        return job.window_start, job.window_end


@contextlib.asynccontextmanager
async def collecting(
    settings: ServiceSettings, *, with_jobs: bool = False
) -> AsyncIterator[Collected]:
    """Read the syncer's output topics from the start into a :class:`Collected`."""
    wanted = [topics.USAGE_RECORDS, topics.SYNC_STATUS, topics.DEAD_LETTERS]
    if with_jobs:
        wanted.append(topics.SYNC_JOBS)
    names = [settings.topic(t) for t in wanted]
    await ensure_topics(
        settings.kafka_bootstrap_servers, names, partitions=settings.topic_partitions
    )
    consumer = AIOKafkaConsumer(
        *names,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    collected = Collected()

    async def pump() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    event = decode_event(record.topic, record.value)
                    if not isinstance(event, DeadLetter) and record.key != event.kafka_key():
                        collected.misrouted.append(f"{event.event_type} key={record.key!r}")
                    if isinstance(event, UsageRecord):
                        collected.records.append(event)
                    elif isinstance(event, CycleSpendSnapshot):
                        collected.snapshots.append(event)
                    elif isinstance(event, SeatsSnapshot):
                        collected.seats.append(event)
                    elif isinstance(event, DaySpend):
                        collected.day_spends.append(event)
                    elif isinstance(event, SyncStatusChanged):
                        collected.statuses.append(event)
                    elif isinstance(event, SyncJobRequested):
                        collected.jobs.append(event)
                    elif isinstance(event, DeadLetter):
                        collected.dead_letters.append(event)

    task = asyncio.create_task(pump())
    try:
        yield collected
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()


def latest_per_member_day(records: Iterable[UsageRecord]) -> dict[tuple[date, str], UsageRecord]:
    """What the metrics store keeps: the newest fetched_at per (day, member)."""
    latest: dict[tuple[date, str], UsageRecord] = {}
    for record in records:
        key = (record.day, record.member.key)
        kept = latest.get(key)
        if kept is None or record.fetched_at >= kept.fetched_at:
            latest[key] = record
    return latest


def assert_exact(
    records: Iterable[UsageRecord], truth: Mapping[str, Any], first: date, last: date
) -> int:
    """Every member-day of ``[first, last]`` matches the sandbox's truth: activity, requests,
    every model's requests and every cent. Returns the number of active member-days compared."""
    latest = {
        key: r for key, r in latest_per_member_day(records).items() if first <= key[0] <= last
    }
    expected: dict[tuple[date, str], Any] = {
        (date.fromisoformat(row["date"]), row["email"]): row
        for row in truth["member_days"]
        if first <= date.fromisoformat(row["date"]) <= last
    }
    active = {key: r for key, r in latest.items() if r.is_active}
    missing = sorted(set(expected) - set(active))
    extra = sorted(set(active) - set(expected))
    assert not missing, f"active member-days missing from the records: {missing[:5]}"
    assert not extra, f"member-days active in the records but not in the truth: {extra[:5]}"
    for key, row in expected.items():
        record = active[key]
        assert record.requests == row["requests"], (key, record.requests, row["requests"])
        assert record.charged_cents == Decimal(row["charged_cents"]), (
            key,
            record.charged_cents,
            row["charged_cents"],
        )
        models = {m.model: (m.requests, m.charged_cents) for m in record.models}
        want = {
            name: (cell["requests"], Decimal(cell["charged_cents"]))
            for name, cell in row["models"].items()
        }
        assert models == want, (key, models, want)
    for key, record in latest.items():
        if not record.is_active:
            assert record.requests == 0, (key, record.requests)
            assert record.models == (), key
    return len(expected)


def assert_cycle_exact(
    snapshot: CycleSpendSnapshot, truth: Mapping[str, Any], *, on_demand_split: bool = True
) -> None:
    """The snapshot has the truth's cycle: start, total and every member's spend. The older
    API shape reports only each member's total (``on_demand_split=False``)."""
    cycle = truth["cycle"]
    assert snapshot.cycle_start == date.fromisoformat(cycle["start"])
    assert snapshot.total_cents == Decimal(cycle["total_cents"])
    got = {m.member.email: (m.spend_cents, m.overall_spend_cents) for m in snapshot.members}
    want = {
        row["email"]: (
            Decimal(row["spend_cents"]) if on_demand_split else None,
            Decimal(row["overall_spend_cents"]),
        )
        for row in cycle["members"]
    }
    assert got == want


async def truth_of(sandbox: SandboxClient, team: SandboxTeam, first: date, last: date) -> Any:
    return await sandbox.truth(team, first.isoformat(), last.isoformat())


def url_of(sandbox: SandboxClient) -> str:
    return str(sandbox.http.base_url).rstrip("/")


def latest_day_spend(spends: Iterable[DaySpend]) -> dict[date, DaySpend]:
    """What the metrics store keeps: the newest fetched_at per day."""
    latest: dict[date, DaySpend] = {}
    for spend in spends:
        kept = latest.get(spend.day)
        if kept is None or spend.fetched_at >= kept.fetched_at:
            latest[spend.day] = spend
    return latest


def assert_copilot_exact(
    records: Iterable[UsageRecord], truth: Mapping[str, Any], first: date, last: date
) -> int:
    """Every day of ``[first, last]`` matches the sandbox's Copilot truth (section 6b): DAU,
    requests and every model's requests of the published days, nothing for the others, and per
    member the active days, requests and models. Returns the member-days compared."""
    latest = [r for (day, _), r in latest_per_member_day(records).items() if first <= day <= last]
    assert all(r.member.login is not None and r.member.email is None for r in latest)
    assert all(r.charged_cents == 0 and r.is_active for r in latest)
    by_day: dict[str, list[UsageRecord]] = {}
    by_member: dict[str, list[UsageRecord]] = {}
    for record in latest:
        by_day.setdefault(record.day.isoformat(), []).append(record)
        by_member.setdefault(str(record.member.login), []).append(record)

    def model_totals(rows: Iterable[UsageRecord]) -> dict[str, int]:
        totals: dict[str, int] = {}
        for row in rows:
            for model in row.models:
                totals[model.model] = totals.get(model.model, 0) + model.requests
        return totals

    for day, expected in truth["days"].items():
        if not first.isoformat() <= day <= last.isoformat():
            continue
        got = by_day.get(day, [])
        if not expected["reported"]:
            assert got == [], f"{day} is not published, yet records were published for it"
            continue
        assert (len(got), sum(r.requests for r in got), model_totals(got)) == (
            expected["dau"],
            expected["requests"],
            expected["models"],
        ), day
    active = {login: m for login, m in truth["members"].items() if m["active_days"] > 0}
    assert set(by_member) == set(active)
    for login, expected in active.items():
        got = by_member[login]
        assert (len(got), sum(r.requests for r in got), model_totals(got)) == (
            expected["active_days"],
            expected["requests"],
            expected["models"],
        ), login
    return len(latest)


def assert_premium_exact(
    spends: Iterable[DaySpend], truth: Mapping[str, Any], first: date, last: date
) -> None:
    """One premium-request DaySpend per day of ``[first, last]`` (0 included), equal to the
    truth's ``premium_cents``."""
    latest = latest_day_spend(spends)
    expected = {
        date.fromisoformat(day): Decimal(row["premium_cents"])
        for day, row in truth["days"].items()
        if first <= date.fromisoformat(day) <= last
    }
    assert {day: latest[day].cents for day in expected if day in latest} == expected
    assert all(s.source == "premium_requests" for s in latest.values())


def assert_seats_exact(
    snapshot: SeatsSnapshot, truth: Mapping[str, Any], now: datetime, first: date, last: date
) -> None:
    """The seats equal the truth's seats block, and the seat cost they give each day of
    ``[first, last]`` equals the truth's ``seat_cents``."""
    seats = snapshot.seats
    month_ago = now - timedelta(days=30)
    got = {
        "total": len(seats),
        "never_used": sum(1 for s in seats if s.last_activity_at is None),
        "active_30d": sum(
            1 for s in seats if s.last_activity_at is not None and s.last_activity_at >= month_ago
        ),
        "monthly_cents": str(sum(seat_price_cents(s.plan_type, snapshot.plan) for s in seats)),
    }
    assert got == truth["seats"]
    for day, row in truth["days"].items():
        if first <= date.fromisoformat(day) <= last:
            cost = seats_cents(seats, date.fromisoformat(day), snapshot.plan)
            assert cost == Decimal(row["seat_cents"]), day
