"""A chunk PostgreSQL refuses is stored event by event: seats snapshots and day spend beside a
refused record are still stored, and only the refused record is dead-lettered."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord

from koalr_contracts import AnyEvent, DaySpend, encode_event, topics
from koalr_metrics.app import MIGRATIONS
from koalr_metrics.decoder import InlineDecoder
from koalr_metrics.repository import MetricsRepository
from koalr_metrics.service import IngestService
from koalr_runtime.db import create_pool
from koalr_runtime.migrations import migrate
from tests.metrics.copilot import seats_snapshot
from tests.metrics.support import new_id, today, usage

pytestmark = pytest.mark.integration

TOPIC = "tns." + topics.USAGE_RECORDS


def _records(events: Sequence[AnyEvent]) -> list[ConsumerRecord[bytes, bytes]]:
    return [
        ConsumerRecord(
            topic=TOPIC,
            partition=0,
            offset=offset,
            timestamp=0,
            timestamp_type=0,
            key=str(event.integration_id).encode(),
            value=encode_event(event),
            checksum=None,
            serialized_key_size=36,
            serialized_value_size=0,
            headers=(),
        )
        for offset, event in enumerate(events)
    ]


async def test_seats_and_day_spend_beside_a_refused_record_are_stored(
    fresh_database_url: str,
) -> None:
    await migrate(fresh_database_url, "metrics", MIGRATIONS)
    pool = await create_pool(
        fresh_database_url,
        min_size=1,
        max_size=2,
        command_timeout_s=10,
        server_settings={"search_path": "metrics"},
        init=MetricsRepository.prepare_connection,
    )
    try:
        ingest = IngestService(
            MetricsRepository(pool),
            decoder=InlineDecoder(),
            usage_group="g-usage",
            integrations_group="g-integrations",
            sync_status_group="g-sync-status",
        )
        integration = new_id()
        fetched_at = datetime.now(UTC)
        day = today() - timedelta(days=1)
        seat: dict[str, Any] = {
            "assignee": {"login": "ann", "id": 1},
            "created_at": "2025-01-01T00:00:00Z",
            "plan_type": "business",
        }
        events: list[AnyEvent] = [
            # A NUL character: valid for the contract, refused by PostgreSQL's text type.
            usage(
                "o",
                integration,
                day,
                "nul@x.io",
                {"gpt-5": (1, "0")},
                fetched_at=fetched_at,
                name="bad\x00name",
                provider="github_copilot",
            ),
            seats_snapshot("o", integration, "business", [seat], fetched_at=fetched_at),
            DaySpend(
                org_id="o",
                integration_id=integration,
                provider="github_copilot",
                day=day,
                cents=Decimal("12.5"),
                fetched_at=fetched_at,
            ),
        ]
        records = _records(events)
        letters = await ingest.store_usage(ingest.submit_usage(records))
        assert [(d.source_offset, d.error_type) for d in letters] == [(0, "StoreRefused")]
        async with pool.acquire() as conn:
            stored = await conn.fetchrow(
                """
                SELECT (SELECT count(*) FROM member_days) AS member_days,
                       (SELECT monthly_cents FROM seat_snapshots) AS monthly_cents,
                       (SELECT login FROM seats) AS login,
                       (SELECT cents FROM day_spend) AS cents
                """
            )
        assert stored is not None
        assert dict(stored) == {
            "member_days": 0,
            "monthly_cents": 1900,
            "login": "ann",
            "cents": Decimal("12.5"),
        }
    finally:
        await pool.close()
