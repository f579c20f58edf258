"""Job ids are deterministic and cursors name their run."""

from __future__ import annotations

from datetime import UTC, date, datetime
from uuid import uuid4

import pytest

from koalr_contracts import SyncJobRequested
from koalr_syncer.jobs import (
    InvalidCursorError,
    backfill_job_id,
    continuation_job_id,
    decode_cursor,
    encode_cursor,
    run_id_of,
    scheduled_job_id,
)


def job(cursor: str | None = None) -> SyncJobRequested:
    return SyncJobRequested(
        org_id="org_1",
        integration_id=uuid4(),
        provider="cursor",
        reason="manual",
        window_start=date(2026, 3, 1),
        window_end=date(2026, 3, 10),
        cursor=cursor,
    )


def test_a_job_without_cursor_starts_its_own_run_and_a_cursor_names_the_run() -> None:
    first = job()
    assert run_id_of(first) == first.job_id
    run_id = uuid4()
    assert run_id_of(job(encode_cursor(run_id))) == run_id
    assert decode_cursor(encode_cursor(run_id)) == run_id


@pytest.mark.parametrize(
    "cursor", ["page=3", '{"v": 2, "run": "x"}', '{"v": 1}', '{"v": 1, "run": "no"}']
)
def test_foreign_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursorError):
        run_id_of(job(cursor))


def test_ids_are_deterministic_per_purpose() -> None:
    event_id, run_id, integration_id = uuid4(), uuid4(), uuid4()
    slot = datetime(2026, 3, 18, 15, tzinfo=UTC)
    assert backfill_job_id(event_id) == backfill_job_id(event_id)
    assert scheduled_job_id(integration_id, slot) == scheduled_job_id(integration_id, slot)
    assert continuation_job_id(run_id, date(2026, 3, 3)) != continuation_job_id(
        run_id, date(2026, 3, 2)
    )
    assert backfill_job_id(event_id) != continuation_job_id(event_id, date(2026, 3, 3))
