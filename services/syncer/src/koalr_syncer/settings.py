"""Configuration of the syncer service, read once from the environment (prefix ``SYNCER_``)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from koalr_runtime.settings import SealingSettings, ServiceSettings


class SyncerSettings(ServiceSettings, SealingSettings):
    model_config = SettingsConfigDict(env_prefix="SYNCER_", extra="ignore", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = 8002
    db_schema: str = "syncer"
