"""Configuration of the connector service, read once from the environment (prefix ``CONNECTOR_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from koalr_runtime.settings import AuthSettings, SealingSettings, ServiceSettings


class ConnectorSettings(ServiceSettings, SealingSettings, AuthSettings):
    model_config = SettingsConfigDict(
        env_prefix="CONNECTOR_", extra="ignore", populate_by_name=True
    )

    host: str = "127.0.0.1"
    port: int = 8001
    db_schema: str = "connector"
