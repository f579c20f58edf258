"""Helpers for the metrics tests: settings, a running app, tokens, records, ground truth."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import jsonschema
import jwt
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from koalr_contracts import (
    AnyEvent,
    CycleSpendSnapshot,
    DeadLetter,
    IntegrationConnected,
    IntegrationCredentialsRotated,
    IntegrationDisconnected,
    ModelUsage,
    SyncStatusChanged,
    UsageRecord,
    decode_event,
    topics,
)
from koalr_metrics.app import create_app
from koalr_metrics.settings import MetricsSettings
from koalr_runtime.kafka import ensure_topics, make_broker, publish_events

JWT_SECRET = "metrics-tests-secret-that-is-long-enough-for-hs256"
SEALED = "v1.k1." + "A" * 40


def today() -> date:
    return datetime.now(UTC).date()


def make_settings(
    kafka: str, database_url: str, namespace: str, **overrides: Any
) -> MetricsSettings:
    fields: dict[str, Any] = {
        "kafka_bootstrap_servers": kafka,
        "database_url": database_url,
        "topic_namespace": namespace,
        "topic_partitions": 3,
        "jwt_secret": JWT_SECRET,
        "retry_initial_backoff_s": 0.05,
        "retry_max_backoff_s": 0.5,
        "ingest_batch_timeout_ms": 100,
        "db_pool_min_size": 1,
        "db_pool_max_size": 4,
    }
    fields.update(overrides)
    return MetricsSettings(**fields)


def token(org_id: str, role: str = "admin", *, sub: str = "user-1", **claims: Any) -> str:
    payload = {
        "sub": sub,
        "org_id": org_id,
        "role": role,
        "exp": datetime.now(UTC) + timedelta(minutes=10),
        **claims,
    }
    return jwt.encode(payload, JWT_SECRET, algorithm="HS256")


def auth(org_id: str, role: str = "admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(org_id, role)}"}


@asynccontextmanager
async def running_app(
    settings: MetricsSettings,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its lifespan (migrations, pool, consumers) and an HTTP client for it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://metrics") as client:
            yield app, client


@asynccontextmanager
async def producer(settings: MetricsSettings) -> AsyncIterator[KafkaBroker]:
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        [
            settings.topic(t)
            for t in (
                topics.USAGE_RECORDS,
                topics.INTEGRATIONS,
                topics.SYNC_STATUS,
                topics.DEAD_LETTERS,
            )
        ],
        partitions=settings.topic_partitions,
    )
    broker = make_broker(settings, client_id="metrics-tests")
    async with broker:
        await broker.start()
        yield broker


async def publish(broker: KafkaBroker, topic: str, events: Sequence[AnyEvent]) -> None:
    await publish_events(broker, topic, events)


async def publish_raw(broker: KafkaBroker, topic: str, payload: bytes, key: bytes) -> None:
    await broker.publish(payload, topic, key=key)


async def wait_until(
    check: Callable[[], Awaitable[bool]], *, timeout_s: float = 30.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


async def committed_offsets(kafka: str, group: str, topic: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


async def end_offsets(kafka: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items() if offset > 0}


async def fully_committed(
    kafka: str, group: str, topic: str, *, records: int | None = None
) -> bool:
    """Every record on ``topic`` (``records`` of them, when given) is committed by ``group``."""
    ends = await end_offsets(kafka, topic)
    if not ends or (records is not None and sum(ends.values()) != records):
        return False
    committed = await committed_offsets(kafka, group, topic)
    return all(committed.get(p, 0) >= end for p, end in ends.items())


async def all_committed(settings: MetricsSettings) -> bool:
    """Every record of the three consumed topics is committed by the service's groups."""
    return all(
        [
            await fully_committed(
                settings.kafka_bootstrap_servers, settings.group(group), settings.topic(topic)
            )
            for group, topic in (
                (settings.ingest_group, topics.USAGE_RECORDS),
                (settings.integrations_group, topics.INTEGRATIONS),
                (settings.sync_status_group, topics.SYNC_STATUS),
            )
        ]
    )


async def read_dead_letters(kafka: str, topic: str, expected: int) -> list[DeadLetter]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    letters: list[DeadLetter] = []
    try:
        deadline = time.monotonic() + 30
        while len(letters) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                for record in records:
                    event = decode_event(topic, record.value)
                    assert isinstance(event, DeadLetter)
                    letters.append(event)
        # Anything beyond the expected ones would show here.
        extra = await consumer.getmany(timeout_ms=500)
        for records in extra.values():
            for record in records:
                event = decode_event(topic, record.value)
                assert isinstance(event, DeadLetter)
                letters.append(event)
    finally:
        await consumer.stop()
    return letters


async def rollups_match_member_rows(dsn: str, schema: str) -> None:
    """Both rollup tables hold exactly the sums of the member rows, no more, no less."""
    conn = await asyncpg.connect(dsn)
    try:
        mismatches = await conn.fetchval(
            f"""
            SELECT count(*) FROM (
                SELECT integration_id, day, count(*)::int AS n,
                       (count(*) FILTER (WHERE is_active))::int AS a,
                       sum(requests)::bigint AS r, sum(charged_cents) AS c
                FROM {schema}.member_days GROUP BY 1, 2
            ) m FULL JOIN {schema}.daily_rollups d USING (integration_id, day)
            WHERE d.member_days IS DISTINCT FROM m.n OR d.active_users IS DISTINCT FROM m.a
               OR d.requests IS DISTINCT FROM m.r OR d.charged_cents IS DISTINCT FROM m.c
            """  # noqa: S608 - test schema name
        )
        model_mismatches = await conn.fetchval(
            f"""
            SELECT count(*) FROM (
                SELECT integration_id, day, model, sum(requests)::bigint AS r,
                       sum(charged_cents) AS c
                FROM {schema}.member_day_models GROUP BY 1, 2, 3
            ) m FULL JOIN {schema}.daily_model_rollups d USING (integration_id, day, model)
            WHERE d.requests IS DISTINCT FROM m.r OR d.charged_cents IS DISTINCT FROM m.c
            """  # noqa: S608 - test schema name
        )
    finally:
        await conn.close()
    assert mismatches == 0
    assert model_mismatches == 0


# --- events -----------------------------------------------------------------------------------


def connected(
    org_id: str, integration_id: UUID, provider: str = "cursor", **fields: Any
) -> IntegrationConnected:
    return IntegrationConnected(
        org_id=org_id,
        integration_id=integration_id,
        provider=provider,  # type: ignore[arg-type]
        external_id=f"team-{str(integration_id)[:8]}",
        plan="enterprise",
        sealed_credential=SEALED,
        **fields,
    )


def disconnected(
    org_id: str, integration_id: UUID, *, purge: bool, provider: str = "cursor", **fields: Any
) -> IntegrationDisconnected:
    return IntegrationDisconnected(
        org_id=org_id,
        integration_id=integration_id,
        provider=provider,  # type: ignore[arg-type]
        purge=purge,
        **fields,
    )


def rotated(org_id: str, integration_id: UUID, **fields: Any) -> IntegrationCredentialsRotated:
    return IntegrationCredentialsRotated(
        org_id=org_id,
        integration_id=integration_id,
        provider="cursor",
        plan="enterprise",
        sealed_credential=SEALED,
        **fields,
    )


def usage(
    org_id: str,
    integration_id: UUID,
    day: date,
    email: str,
    models: dict[str, tuple[int, str]],
    *,
    fetched_at: datetime,
    is_active: bool | None = None,
    name: str | None = None,
    provider: str = "cursor",
) -> UsageRecord:
    """A record whose totals are the sums of ``models`` (name -> (requests, cents))."""
    requests = sum(r for r, _ in models.values())
    cents = sum((Decimal(c) for _, c in models.values()), Decimal(0))
    return UsageRecord(
        org_id=org_id,
        integration_id=integration_id,
        provider=provider,  # type: ignore[arg-type]
        day=day,
        member={"email": email, "name": name or email.split("@", maxsplit=1)[0].title()},  # type: ignore[arg-type]
        is_active=requests > 0 if is_active is None else is_active,
        requests=requests,
        models=tuple(
            ModelUsage(model=m, requests=r, charged_cents=Decimal(c))
            for m, (r, c) in models.items()
        ),
        charged_cents=cents,
        fetched_at=fetched_at,
    )


def snapshot(
    org_id: str,
    integration_id: UUID,
    cycle_start: date,
    spends: dict[str, str],
    *,
    fetched_at: datetime,
) -> CycleSpendSnapshot:
    members = tuple(
        {"member": {"email": email}, "overall_spend_cents": Decimal(c)}
        for email, c in spends.items()
    )
    return CycleSpendSnapshot(
        org_id=org_id,
        integration_id=integration_id,
        provider="cursor",
        cycle_start=cycle_start,
        members=members,  # type: ignore[arg-type]
        total_cents=sum((Decimal(c) for c in spends.values()), Decimal(0)),
        fetched_at=fetched_at,
    )


def sync_status(org_id: str, integration_id: UUID, state: str, **fields: Any) -> SyncStatusChanged:
    return SyncStatusChanged(
        org_id=org_id,
        integration_id=integration_id,
        provider="cursor",
        state=state,  # type: ignore[arg-type]
        **fields,
    )


# --- the OpenAPI document ---------------------------------------------------------------------


def documented_body_checker(
    spec: dict[str, Any],
) -> Callable[[str, str, httpx.Response], dict[str, Any]]:
    """A check that a response body of ``/v1/orgs/{org_id}/ai-analytics/<route>`` validates
    against the served document, with no property left undocumented (the component schemas
    are closed with ``additionalProperties: false``); it returns the body."""
    components = {
        "schemas": {
            name: {**schema, "additionalProperties": False} if "properties" in schema else schema
            for name, schema in spec["components"]["schemas"].items()
        }
    }

    def check(route: str, method: str, response: httpx.Response) -> dict[str, Any]:
        documented = spec["paths"][f"/v1/orgs/{{org_id}}/ai-analytics/{route}"][method]
        content = documented["responses"][str(response.status_code)]["content"]
        schema = {**content["application/json"]["schema"], "components": components}
        body: dict[str, Any] = response.json()
        validator = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
        errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(body)]
        assert errors == [], (route, method, response.status_code, errors)
        return body

    return check


# --- ground truth -----------------------------------------------------------------------------


@dataclass
class Truth:
    """What the store must hold, computed straight from the published records: the newest
    record per (integration, day, member) wins, a later one on a tie."""

    records: list[UsageRecord] = field(default_factory=list)

    def add(self, records: Iterable[UsageRecord]) -> None:
        self.records.extend(records)

    def final(self, integration_id: UUID) -> list[UsageRecord]:
        latest: dict[tuple[date, str], UsageRecord] = {}
        for r in self.records:
            if r.integration_id != integration_id:
                continue
            key = (r.day, r.member.key)
            if key not in latest or r.fetched_at >= latest[key].fetched_at:
                latest[key] = r
        return list(latest.values())

    def daily(self, integration_id: UUID, days: Sequence[date]) -> dict[date, dict[str, Any]]:
        out: dict[date, dict[str, Any]] = {
            d: {"active": 0, "requests": 0, "cents": Decimal(0), "rows": 0} for d in days
        }
        for r in self.final(integration_id):
            if r.day not in out:
                continue
            out[r.day]["rows"] += 1
            out[r.day]["active"] += int(r.is_active)
            out[r.day]["requests"] += r.requests
            out[r.day]["cents"] += r.charged_cents
        return out

    def models(self, integration_id: UUID, days: Iterable[date]) -> list[tuple[str, int]]:
        wanted = set(days)
        totals: dict[str, int] = defaultdict(int)
        for r in self.final(integration_id):
            if r.day in wanted:
                for m in r.models:
                    totals[m.model] += m.requests
        return sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))


def range_days(days: int) -> list[date]:
    end = today()
    return [end - timedelta(days=days - 1 - i) for i in range(days)]


def new_id() -> UUID:
    return uuid4()
