"""Configuration of the connector service, read once from the environment (prefix ``CONNECTOR_``).

Shared infrastructure (``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``, ``KOALR_JWT_SECRET``,
``KOALR_SEALING_KEYS``, ...) comes from :mod:`koalr_runtime.settings`; the provider's base URL uses
the unprefixed ``CURSOR_API_BASE_URL`` like those shared fields, because the syncer reads it too.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from koalr_runtime.settings import (
    AuthSettings,
    EdgeSettings,
    ProviderSettings,
    SealingSettings,
    ServiceSettings,
)


class ConnectorSettings(
    ServiceSettings, ProviderSettings, SealingSettings, AuthSettings, EdgeSettings
):
    model_config = SettingsConfigDict(
        env_prefix="CONNECTOR_", extra="ignore", populate_by_name=True
    )

    host: str = "127.0.0.1"
    port: int = 8001
    db_schema: str = Field(
        default="connector", pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="Own schema."
    )

    provider_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=120,
        description="Budget for validating a key against the provider (all calls, retries included).",
    )
    connect_claim_ttl_s: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="A connect's claim on its team or GitHub organisation lapses after this "
        "long if its process died mid-connect (keep it above provider_timeout_s).",
    )
    backfill_days: int = Field(
        default=30, ge=1, le=90, description="Days the syncer backfills on connect."
    )

    outbox_relay_interval_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How often the outbox relay looks for unpublished events (it is also woken "
        "up at once by a write from this process).",
    )
    outbox_batch_size: int = Field(
        default=100, ge=1, le=10_000, description="Most outbox events published in one round."
    )
    outbox_retry_initial_s: float = Field(
        default=0.5, gt=0, description="First back-off after a failed publish."
    )
    outbox_retry_max_s: float = Field(
        default=30.0, gt=0, description="Longest back-off while Kafka is unreachable."
    )
    outbox_retention_h: float = Field(
        default=168.0, gt=0, description="Published outbox rows are deleted after this long."
    )
    reseal_batch_size: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Credentials re-sealed per transaction by `koalr-connector reseal`.",
    )
    kafka_start_retry_max_s: float = Field(
        default=15.0, gt=0, description="Longest pause between attempts to reach Kafka at start."
    )

    @model_validator(mode="after")
    def _requests_outlast_the_provider_budget(self) -> Self:
        """A connect or rotate spends up to ``provider_timeout_s`` at the provider: a request
        timeout shorter than that would answer 503 to a call the provider was about to settle."""
        if self.http_request_timeout_s <= self.provider_timeout_s:
            msg = (
                "CONNECTOR_HTTP_REQUEST_TIMEOUT_S must be longer than CONNECTOR_PROVIDER_TIMEOUT_S "
                f"({self.provider_timeout_s:g} s), the budget of a key check"
            )
            raise ValueError(msg)
        return self
