"""The settings every service shares, read from the environment once at start-up.

Shared infrastructure uses the conventional unprefixed names (``KAFKA_BOOTSTRAP_SERVERS``,
``DATABASE_URL``, ``LOG_LEVEL``, ...); each service subclasses :class:`ServiceSettings` with its
own ``env_prefix`` (``CONNECTOR_``, ``SYNCER_``, ``METRICS_``) for its own fields.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:19092"
DEFAULT_DATABASE_URL = "postgresql://koalr:koalr@127.0.0.1:55432/koalr"


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class ServiceSettings(BaseSettings):
    """Kafka, PostgreSQL, logging and topic naming; subclass per service."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        default=DEFAULT_KAFKA_BOOTSTRAP_SERVERS,
        validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS"),
        description="Comma-separated host:port list of Kafka brokers.",
    )
    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        validation_alias=_env("DATABASE_URL"),
        description="PostgreSQL DSN; each service uses its own schema in it.",
    )
    topic_namespace: str = Field(
        default="",
        validation_alias=_env("KOALR_TOPIC_NAMESPACE"),
        description="Optional prefix for every topic name (isolated test runs, shared clusters).",
    )
    topic_partitions: int = Field(
        default=6,
        ge=1,
        validation_alias=_env("KOALR_TOPIC_PARTITIONS"),
        description="Partitions for topics this service creates; caps the useful replica count.",
    )
    log_level: str = Field(default="INFO", validation_alias=_env("LOG_LEVEL"))
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        validation_alias=_env("LOG_FORMAT"),
        description="auto = JSON unless stdout is a terminal.",
    )

    def topic(self, name: str) -> str:
        """The real topic name of a contract topic (``koalr_contracts.topics``)."""
        return f"{self.topic_namespace}.{name}" if self.topic_namespace else name

    def group(self, name: str) -> str:
        """The real consumer group id (namespaced like the topics)."""
        return f"{self.topic_namespace}.{name}" if self.topic_namespace else name


class SealingSettings(BaseSettings):
    """Keys for sealing provider credentials (connector and syncer only)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    sealing_keys: SecretStr = Field(
        validation_alias=_env("KOALR_SEALING_KEYS"),
        description=(
            "Comma-separated `key_id:base64url-32-bytes` entries, newest first: the first seals, "
            "any opens. Generate one with `python -m koalr_runtime.sealing generate`."
        ),
    )


class AuthSettings(BaseSettings):
    """The HS256 secret the platform signs its JWTs with (connector and metrics)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    jwt_secret: SecretStr = Field(validation_alias=_env("KOALR_JWT_SECRET"))
    jwt_leeway_s: int = Field(default=30, ge=0, validation_alias=_env("KOALR_JWT_LEEWAY_S"))
