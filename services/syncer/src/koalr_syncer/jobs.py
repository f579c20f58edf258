"""Job identities and the continuation cursor.

Every job the syncer publishes gets a deterministic id derived from what it is for (the connect
event, the schedule slot, the run and the day it continues from), so publishing it twice (a
crash between publishing and recording it) yields the same job, which workers run once.

The cursor of a continuation job names the run it belongs to; the run's progress lives in
PostgreSQL, so the cursor stays small and a stale cursor cannot rewind anything.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Final
from uuid import UUID, uuid5

from koalr_contracts import SyncJobRequested

JOB_NAMESPACE: Final[UUID] = UUID("3c6b0f52-5d0c-4c49-a8a3-7f1a3f2f6d11")
CURSOR_VERSION: Final[int] = 1


class InvalidCursorError(ValueError):
    """A job's cursor is not one this syncer wrote."""


def encode_cursor(run_id: UUID) -> str:
    return json.dumps({"v": CURSOR_VERSION, "run": str(run_id)}, separators=(",", ":"))


def decode_cursor(text: str) -> UUID:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidCursorError(f"the cursor is not JSON: {text[:80]!r}") from exc
    if not isinstance(data, dict) or data.get("v") != CURSOR_VERSION:
        raise InvalidCursorError(f"the cursor has an unknown version: {text[:80]!r}")
    try:
        return UUID(str(data["run"]))
    except (KeyError, ValueError) as exc:
        raise InvalidCursorError(f"the cursor names no run: {text[:80]!r}") from exc


def run_id_of(job: SyncJobRequested) -> UUID:
    """The run a job belongs to: the one its cursor names, else the job's own id.

    A job without a cursor starts a run (our backfills and schedules, and the connector's manual
    resyncs with their own job ids); its redeliveries find that same run again.
    """
    return job.job_id if job.cursor is None else decode_cursor(job.cursor)


def backfill_job_id(connect_event_id: UUID) -> UUID:
    return uuid5(JOB_NAMESPACE, f"backfill:{connect_event_id}")


def scheduled_job_id(integration_id: UUID, slot: datetime) -> UUID:
    return uuid5(JOB_NAMESPACE, f"scheduled:{integration_id}:{slot.isoformat()}")


def continuation_job_id(run_id: UUID, next_day: date) -> UUID:
    return uuid5(JOB_NAMESPACE, f"continue:{run_id}:{next_day.isoformat()}")


def retry_job_id(run_id: UUID, retry_at: datetime) -> UUID:
    """One id per scheduled retry: the same claim published twice, a later retry anew."""
    return uuid5(JOB_NAMESPACE, f"retry:{run_id}:{retry_at.isoformat()}")


def repair_job_id(integration_id: UUID, repair_at: datetime) -> UUID:
    """One id per scheduled repair of incomplete backfill days."""
    return uuid5(JOB_NAMESPACE, f"repair:{integration_id}:{repair_at.isoformat()}")
