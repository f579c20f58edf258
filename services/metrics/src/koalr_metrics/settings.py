"""Configuration of the metrics service, read once from the environment (prefix ``METRICS_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from koalr_runtime.settings import AuthSettings, ServiceSettings


class MetricsSettings(ServiceSettings, AuthSettings):
    model_config = SettingsConfigDict(env_prefix="METRICS_", extra="ignore", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = 8003
    db_schema: str = "metrics"
