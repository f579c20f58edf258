"""Where the operator command line finds the system: the same variables the services read."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from koalr_runtime.settings import ServiceSettings


class CliSettings(ServiceSettings):
    """Kafka, PostgreSQL and topic namespace as for the services, plus the services' addresses."""

    model_config = SettingsConfigDict(env_prefix="KOALR_", extra="ignore", populate_by_name=True)

    log_level: str = Field(
        default="WARNING",
        validation_alias=AliasChoices("LOG_LEVEL", "log_level"),
        description="Level of the log lines the command writes to standard error.",
    )
    connector_url: str = Field(
        default="http://127.0.0.1:8001", description="Base URL of the connector's HTTP API."
    )
    metrics_url: str = Field(
        default="http://127.0.0.1:8003", description="Base URL of the metrics service."
    )
    syncer_urls: str = Field(
        default="http://127.0.0.1:8002,http://127.0.0.1:8102",
        description="Comma-separated base URLs of the syncer processes (health and readiness).",
    )
    jwt_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("KOALR_JWT_SECRET", "koalr_jwt_secret"),
        description="The platform's HS256 secret; the CLI signs a short-lived admin token with it.",
    )
    timeout_s: float = Field(default=10.0, gt=0, description="Timeout of each network call.")

    def service_urls(self) -> dict[str, str]:
        """Every service to check, by name (syncer processes numbered from 1)."""
        urls = {"connector": self.connector_url}
        syncers = [u.strip() for u in self.syncer_urls.split(",") if u.strip()]
        for i, url in enumerate(syncers, start=1):
            urls[f"syncer-{i}" if len(syncers) > 1 else "syncer"] = url
        urls["metrics"] = self.metrics_url
        return urls
