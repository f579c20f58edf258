"""Configuration of the metrics service, read once from the environment (prefix ``METRICS_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from koalr_runtime.settings import AuthSettings, ServiceSettings


class MetricsSettings(ServiceSettings, AuthSettings):
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
