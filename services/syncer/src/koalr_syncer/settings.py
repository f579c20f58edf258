"""Configuration of the syncer service, read once from the environment (prefix ``SYNCER_``).

The Cursor base URL is read from ``CURSOR_API_BASE_URL`` (no prefix), the sealing keys from
``KOALR_SEALING_KEYS`` and the shared infrastructure from the unprefixed names of
:class:`koalr_runtime.settings.ServiceSettings`.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final, Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from koalr_runtime.settings import ProviderSettings, SealingSettings, ServiceSettings

DEFAULT_INCREMENTAL_DAYS: Final[int] = 3


def newest_final_day(today: date, incremental_days: int = DEFAULT_INCREMENTAL_DAYS) -> date:
    """The newest day scheduled syncs no longer re-read: the furthest ``data_through`` goes."""
    return today - timedelta(days=incremental_days)


class SyncerSettings(ServiceSettings, ProviderSettings, SealingSettings):
    model_config = SettingsConfigDict(env_prefix="SYNCER_", extra="ignore", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8002, ge=0, le=65535)
    db_schema: str = "syncer"

    # --- the provider ---------------------------------------------------------------------
    http_connect_timeout_s: float = Field(
        default=10.0, gt=0, description="Time allowed to open a connection to the provider."
    )
    http_read_timeout_s: float = Field(
        default=60.0, gt=0, description="Cuts a stalled response; the request is then retried."
    )
    http_max_retries: int = Field(
        default=4, ge=0, description="Retries of one call on 5xx, timeouts and connection errors."
    )
    http_rate_limit_retries: int = Field(
        default=6, ge=0, description="Retries of one call answered 429 before giving up."
    )
    retry_base_s: float = Field(
        default=1.0, ge=0, description="First backoff delay; doubles per retry, with jitter."
    )
    retry_max_s: float = Field(default=16.0, ge=0, description="Cap of one backoff delay.")

    # --- pacing (Cursor's documented limits, per team and endpoint) ----------------------------
    rate_limit_default: int = Field(
        default=20, ge=1, description="Per minute: members, daily-usage, spend, other admin."
    )
    rate_limit_usage_events: int = Field(
        default=60, ge=1, description="Per minute: /teams/filtered-usage-events."
    )
    rate_limit_analytics: int = Field(default=100, ge=1, description="Per minute: analytics.")
    rate_window_s: float = Field(
        default=60.0, gt=0, description="Length of the rolling window the limits apply to."
    )
    github_throttle_base_s: float = Field(
        default=60.0,
        ge=0,
        description=(
            "Wait after a GitHub secondary limit that gives no retry-after; doubles per retry "
            "(GitHub asks for at least a minute)."
        ),
    )

    # --- scheduling --------------------------------------------------------------------------
    backfill_days: int | None = Field(
        default=None,
        ge=1,
        le=90,
        description="Overrides the backfill length of IntegrationConnected (default: the event's).",
    )
    chunk_days: int = Field(default=7, ge=1, le=30, description="Days fetched by one job at most.")
    job_page_budget: int = Field(
        default=100,
        ge=1,
        description="Usage-event pages one job fetches before it continues in a new job.",
    )
    job_max_chunks: int = Field(
        default=1,
        ge=1,
        le=30,
        description=(
            "Chunks one job reads before it continues in a new job, while its page and time "
            "budgets last. More saves a Kafka round trip and the job's bookkeeping per chunk "
            "(many small teams); each chunk is still published and recorded on its own."
        ),
    )
    job_time_budget_s: float = Field(
        default=120.0,
        gt=0,
        description="Wall time after which a job stops at the next complete day and continues.",
    )
    incremental_interval_s: float = Field(
        default=3600.0, gt=0, description="Time between two scheduled incremental syncs."
    )
    incremental_days: int = Field(
        default=DEFAULT_INCREMENTAL_DAYS,
        ge=3,
        le=30,
        description=(
            "Last UTC days (today included) every scheduled sync re-reads; Cursor's data lands up "
            "to two days late. data_through stays at least this many days behind today."
        ),
    )
    scheduler_poll_s: float = Field(default=5.0, gt=0, description="How often due work is claimed.")
    run_max_attempts: int = Field(
        default=5, ge=1, description="Attempts of a sync run that keeps failing transiently."
    )
    run_retry_base_s: float = Field(
        default=60.0, ge=0, description="Delay before a failed run is retried; doubles per attempt."
    )
    run_retry_max_s: float = Field(
        default=3600.0, ge=0, description="Longest delay before a failed run is retried."
    )

    # --- workers -----------------------------------------------------------------------------
    worker_concurrency: int = Field(
        default=3,
        ge=1,
        le=64,
        description="Consumers (partitions processed at once) per process in the worker group.",
    )
    consumer_session_timeout_ms: int = Field(
        default=10_000,
        ge=6_000,
        description="A worker silent this long is dropped from the group; its jobs move on.",
    )
    consumer_heartbeat_interval_ms: int = Field(
        default=3_000, ge=100, description="How often a worker tells the group it is alive."
    )
    consumer_fetch_max_wait_ms: int = Field(
        default=100,
        ge=0,
        description="Longest the broker holds a fetch; bounds the pick-up delay of a new job.",
    )
    consumer_max_poll_interval_ms: int = Field(
        default=900_000,
        ge=60_000,
        description="Longest a job may run before the group considers the worker stuck.",
    )
    db_pool_size: int = Field(
        default=8, ge=2, description="Most PostgreSQL connections one process opens."
    )
    unknown_integration_wait_s: float = Field(
        default=120.0,
        ge=0,
        description=(
            "How long a job for an integration not registered yet (a resync that overtook its "
            "connection) is retried before it is reported and dead-lettered."
        ),
    )

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if self.consumer_heartbeat_interval_ms * 3 > self.consumer_session_timeout_ms:
            msg = "consumer_heartbeat_interval_ms must be at most a third of the session timeout"
            raise ValueError(msg)
        if self.job_time_budget_s * 1000 * 3 > self.consumer_max_poll_interval_ms:
            msg = (
                "consumer_max_poll_interval_ms must be at least three times job_time_budget_s, "
                "so a job that finishes its last day and publishes never looks stuck"
            )
            raise ValueError(msg)
        return self

    def run_retry_delay_s(self, attempt: int) -> float:
        """Delay before retry ``attempt`` (1, 2, ...) of a run or a repair: doubling, capped."""
        delay_s: float = self.run_retry_base_s * 2.0 ** (attempt - 1)
        return min(self.run_retry_max_s, delay_s)

    @property
    def rate_limits(self) -> dict[str, int]:
        """Requests per window for each pacing bucket."""
        return {
            "default": self.rate_limit_default,
            "usage_events": self.rate_limit_usage_events,
            "analytics": self.rate_limit_analytics,
        }
