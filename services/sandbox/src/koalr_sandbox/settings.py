"""Process settings, read from ``SANDBOX_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SandboxSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SANDBOX_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8010, ge=0, le=65535)
    log_level: str = "info"
    event_cache_events: int = Field(
        default=2_000_000,
        ge=1,
        description="Usage events kept in memory per team; older generated days are regenerated.",
    )
    max_teams: int = Field(default=500, ge=1, description="Teams one process holds at most.")
