"""The retention job: member days older than their org's ``retention_days`` (default 400) are
deleted with their model rows, rollups and day spend, a few days of one integration per
transaction so no lock is held long and a day always goes whole."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter

from koalr_metrics.privacy_repository import PrivacyRepository
from koalr_runtime.logs import get_logger

log = get_logger(__name__)

RETENTION_ROWS = Counter(
    "koalr_metrics_retention_rows_total",
    "Rows deleted by the retention job, by table group",
    ["kind"],
)


@dataclass(slots=True)
class RetentionRun:
    """What one run of the job deleted."""

    integrations: int = 0
    days: int = 0
    member_days: int = 0
    rows_removed: int = 0
    batches: int = 0
    busy: int = 0
    """Integrations skipped because the ingest was writing them (done on the next run)."""


async def apply_retention(
    repository: PrivacyRepository, *, default_days: int, batch_days: int
) -> RetentionRun:
    """Delete every expired day of every integration, ``batch_days`` days per transaction."""
    run = RetentionRun()
    for integration_id, org_id, cutoff in await repository.retention_cutoffs(default_days):
        touched = False
        while True:
            batch = await repository.drop_expired_days(integration_id, org_id, cutoff, batch_days)
            if batch is None:
                run.busy += 1
                log.info("retention.busy", org_id=org_id, integration_id=str(integration_id))
                break
            if not batch.days:
                break
            touched = True
            run.batches += 1
            run.days += batch.days
            run.member_days += batch.member_days
            run.rows_removed += batch.rows_removed
            log.info(
                "retention.batch",
                org_id=org_id,
                integration_id=str(integration_id),
                before=cutoff.isoformat(),
                days=batch.days,
                member_days=batch.member_days,
                rows_removed=batch.rows_removed,
            )
            if batch.days < batch_days:
                break
        run.integrations += touched
    RETENTION_ROWS.labels("member_days").inc(run.member_days)
    RETENTION_ROWS.labels("all").inc(run.rows_removed)
    log.info(
        "retention.done",
        integrations=run.integrations,
        days=run.days,
        member_days=run.member_days,
        rows_removed=run.rows_removed,
        batches=run.batches,
        busy=run.busy,
    )
    return run
