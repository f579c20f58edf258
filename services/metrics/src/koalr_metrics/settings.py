"""Configuration of the metrics service, read once from the environment (prefix ``METRICS_``)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from koalr_runtime.settings import AuthSettings, EdgeSettings, ServiceSettings


class MetricsSettings(ServiceSettings, AuthSettings, EdgeSettings):
    model_config = SettingsConfigDict(env_prefix="METRICS_", extra="ignore", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8003, ge=0, le=65535)
    db_schema: str = Field(default="metrics", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    db_pool_min_size: int = Field(
        default=2, ge=1, description="PostgreSQL connections kept open by the API and ingest."
    )
    db_pool_max_size: int = Field(
        default=10, ge=1, description="Most PostgreSQL connections one process opens."
    )
    http_max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted (room for a 100,000-row identities upload); "
        "a larger one is refused with 413 `payload_too_large` before it is read in full.",
    )
    db_command_timeout_s: float = Field(
        default=30.0, gt=0, description="A database statement taking longer than this fails."
    )

    ingest_group: str = Field(
        default="metrics-ingest",
        description="Consumer group of the usage ingest (namespaced like the topics).",
    )
    integrations_group: str = Field(
        default="metrics-integrations",
        description="Consumer group of the integrations projection.",
    )
    sync_status_group: str = Field(
        default="metrics-sync-status",
        description="Consumer group of the sync-status projection.",
    )
    ingest_max_records: int = Field(
        default=20_000, ge=1, le=50_000, description="Most records consumed in one batch."
    )
    ingest_chunk_records: int = Field(
        default=1000,
        ge=1,
        description="Records per transaction inside a batch; decoding the next chunk overlaps "
        "with writing this one.",
    )
    ingest_decode_workers: int = Field(
        default=1,
        ge=0,
        le=32,
        description="Worker processes that decode and validate usage records (0: decode in the "
        "service process itself).",
    )
    ingest_batch_timeout_ms: int = Field(
        default=200, ge=1, description="Longest wait for a batch to fill before it is stored."
    )
    summary_cache_entries: int = Field(
        default=4096,
        ge=0,
        description="Rendered summaries kept per process, each served only while its org's data "
        "version is unchanged (0: no cache).",
    )
    retry_initial_backoff_s: float = Field(
        default=0.2, gt=0, description="First pause after the database failed a batch."
    )
    retry_max_backoff_s: float = Field(
        default=5.0, gt=0, description="Longest pause between two attempts at the same batch."
    )
    anomaly_mad_k: Decimal = Field(
        default=Decimal("3.5"),
        gt=0,
        description="A day's spend is an anomaly above the median of the 28 days before it plus "
        "this many median absolute deviations.",
    )
    anomaly_min_delta_cents: Decimal = Field(
        default=Decimal(1000),
        ge=0,
        description="...and only when it exceeds that median by at least this many cents "
        "(no alert for noise on a tiny spend).",
    )
    alerts_interval_s: float = Field(
        default=300.0,
        ge=0,
        description="Seconds between two evaluations of the alerts (spend anomalies, newly idle "
        "seats) published on koalr.alerts.v1; 0 turns the periodic evaluation off.",
    )
    alerts_lookback_days: int = Field(
        default=7,
        ge=1,
        le=90,
        description="Days up to today whose spend the alerts evaluation judges.",
    )

    erasure_interval_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="How often the erasure job looks for pending erasures (a request in this "
        "process wakes it at once; the interval picks up those of a crashed process).",
    )
    retention_interval_s: float = Field(
        default=3600.0,
        gt=0,
        le=86_400 * 7,
        description="How often the retention job deletes member days older than their org's "
        "retention_days.",
    )
    retention_batch_days: int = Field(
        default=7,
        ge=1,
        le=366,
        description="Days of one integration the retention job deletes per transaction.",
    )
