"""Decoding in worker processes and the COPY text it produces: the same rows, exactly, as the
Python values they come from."""

from __future__ import annotations

import json
import os
import signal
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import asyncpg
import psutil
import pytest

from koalr_contracts import MemberRef, ModelUsage, UsageRecord, encode_event, topics
from koalr_metrics.app import MIGRATIONS
from koalr_metrics.decoder import DecoderUnavailable, InlineDecoder, ProcessDecoder
from koalr_metrics.ingest import PreparedUsage, copy_text, usage_copy, usage_rows
from koalr_metrics.repository import MEMBER_DAY_COLUMNS, MODEL_COLUMNS
from koalr_runtime.migrations import migrate
from tests.metrics.support import new_id, snapshot, usage

TOPIC = "tns." + topics.USAGE_RECORDS
T0 = datetime(2026, 1, 1, 12, 30, 15, 123456, tzinfo=UTC)
DAY = date(2025, 12, 20)
"""A usage day before every fetch time of these records (a day is never after its fetch)."""


def _record(
    member: dict[str, str | None], models: dict[str, tuple[int, str]], **fields: Any
) -> UsageRecord:
    requests = sum(r for r, _ in models.values())
    return UsageRecord(
        org_id="org-1",
        integration_id=fields.pop("integration_id", new_id()),
        provider=fields.pop("provider", "cursor"),
        day=fields.pop("day", DAY),
        member=MemberRef(**member),
        is_active=requests > 0,
        requests=requests,
        models=tuple(
            ModelUsage(model=m, requests=r, charged_cents=Decimal(c))
            for m, (r, c) in models.items()
        ),
        charged_cents=sum((Decimal(c) for _, c in models.values()), Decimal(0)),
        fetched_at=fields.pop("fetched_at", T0),
    )


def _awkward_records() -> list[UsageRecord]:
    """Text that COPY must escape, NULLs, exponents and trailing zeros, offsets, microseconds."""
    integration = new_id()
    return [
        _record(
            {"email": "tab\tand\\backslash@x.io", "name": "Zoë\nNew\rLine 🚀"},
            {"model\\with\ttab": (3, "1E+2"), "o3": (2, "0.10000000")},
            integration_id=integration,
        ),
        _record(
            {"login": "octo\\N", "name": None},
            {"gpt-5": (0, "0E-8")},
            integration_id=integration,
            provider="github_copilot",
            fetched_at=datetime(2026, 1, 2, 1, 0, 0, 1, tzinfo=timezone(timedelta(hours=5))),
        ),
        _record({"email": "plain@x.io", "name": "\\N"}, {}, fetched_at=T0 - timedelta(days=3)),
    ]


def test_copy_text_escapes_what_copy_would_misread() -> None:
    assert copy_text(None) == "\\N"
    assert copy_text("\\N") == "\\\\N"
    assert copy_text("a\tb\nc\rd\\e") == "a\\tb\\nc\\rd\\\\e"
    assert copy_text("Zoë 🚀") == "Zoë 🚀"


@pytest.mark.integration
async def test_copy_text_stores_exactly_the_rows_a_binary_copy_stores(
    fresh_database_url: str,
) -> None:
    records = _awkward_records()
    expected = usage_rows(records)
    text = usage_copy(records)
    assert (text.member_day_count, text.model_count) == (3, 3)
    assert text.integrations == expected.integrations

    await migrate(fresh_database_url, "metrics", MIGRATIONS)
    conn = await asyncpg.connect(fresh_database_url, server_settings={"search_path": "metrics"})
    try:
        await conn.execute("CREATE TEMP TABLE binary_days (LIKE member_days)")
        await conn.execute("CREATE TEMP TABLE binary_models (LIKE member_day_models)")
        await conn.copy_records_to_table(
            "binary_days", records=expected.member_days, columns=MEMBER_DAY_COLUMNS
        )
        await conn.copy_records_to_table(
            "binary_models", records=expected.models, columns=MODEL_COLUMNS
        )
        for table, data, columns in (
            ("member_days", text.member_days, MEMBER_DAY_COLUMNS),
            ("member_day_models", text.models, MODEL_COLUMNS),
        ):

            async def source(data: bytes = data) -> Any:
                yield data

            await conn.copy_to_table(table, source=source(), columns=columns, format="text")

        def as_text(rows: list[asyncpg.Record]) -> list[tuple[str, ...]]:
            return sorted(tuple(str(value) for value in row.values()) for row in rows)

        stored_days = await conn.fetch("SELECT * FROM member_days")
        stored_models = await conn.fetch("SELECT * FROM member_day_models")
        # The exact Python values, and the very same digits (scale) as a binary COPY keeps.
        assert sorted(tuple(r.values()) for r in stored_days) == sorted(expected.member_days)
        assert sorted(tuple(r.values()) for r in stored_models) == sorted(expected.models)
        assert as_text(stored_days) == as_text(await conn.fetch("SELECT * FROM binary_days"))
        assert as_text(stored_models) == as_text(await conn.fetch("SELECT * FROM binary_models"))
    finally:
        await conn.close()


def _chunk() -> list[bytes | None]:
    integration = new_id()
    day = DAY
    older = usage("o", integration, day, "a@x.io", {"m": (1, "1")}, fetched_at=T0)
    newer = usage("o", integration, day, "a@x.io", {"m": (2, "2.5")}, fetched_at=T0 + timedelta(1))
    invalid = json.loads(encode_event(older))
    invalid["requests"] = 5
    spend = snapshot("o", integration, DAY.replace(day=1), {"a@x.io": "3"}, fetched_at=T0)
    return [
        encode_event(older),
        b"not json",
        encode_event(newer),
        json.dumps(invalid).encode(),
        encode_event(spend),
        None,
    ]


def _comparable(prepared: PreparedUsage) -> tuple[Any, ...]:
    return (
        prepared.rows,
        prepared.sources,
        prepared.snapshots,
        [(r.index, type(r.error).__name__, str(r.error)) for r in prepared.rejected],
        prepared.superseded,
    )


async def test_worker_processes_prepare_exactly_what_the_consumer_would() -> None:
    values = _chunk()
    inline = await InlineDecoder().submit(TOPIC, values)
    decoder = ProcessDecoder(workers=1)
    try:
        await decoder.start()
        in_worker = await decoder.submit(TOPIC, values)
    finally:
        await decoder.close()
    assert _comparable(in_worker) == _comparable(inline)
    assert inline.sources == [2]
    assert inline.superseded == 1
    assert [(r.index, type(r.error).__name__) for r in inline.rejected] == [
        (1, "EventDecodeError"),
        (3, "EventDecodeError"),
        (5, "EventDecodeError"),
    ]
    assert "Invalid JSON" in str(in_worker.rejected[0].error)
    assert "requests add up to" in str(in_worker.rejected[1].error)
    assert [index for index, _ in in_worker.snapshots] == [4]


async def test_a_dead_worker_fails_its_chunk_and_is_replaced() -> None:
    values = _chunk()
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    decoder = ProcessDecoder(workers=1)
    try:
        await decoder.start()
        (worker,) = [
            p
            for p in psutil.Process().children()
            if p.pid not in before and "spawn_main" in " ".join(p.cmdline())
        ]
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        with pytest.raises(DecoderUnavailable):
            await decoder.submit(TOPIC, values)
        again = await decoder.submit(TOPIC, values)
    finally:
        await decoder.close()
    assert again.sources == [2]
