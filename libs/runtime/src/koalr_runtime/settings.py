"""The settings every service shares, read from the environment once at start-up.

Shared infrastructure uses the conventional unprefixed names (``KAFKA_BOOTSTRAP_SERVERS``,
``DATABASE_URL``, ``LOG_LEVEL``, ...); each service subclasses :class:`ServiceSettings` with its
own ``env_prefix`` (``CONNECTOR_``, ``SYNCER_``, ``METRICS_``) for its own fields.
"""

from __future__ import annotations

from typing import Literal, Self, TypeVar

from pydantic import AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SettingsT = TypeVar("SettingsT", bound=BaseSettings)

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
        min_length=1,
        description=(
            "Comma-separated `key_id:base64url-32-bytes` entries, newest first: the first seals, "
            "any opens. Generate one with `python -m koalr_runtime.sealing generate`."
        ),
    )


class ProviderSettings(BaseSettings):
    """Where the provider APIs live (connector and syncer call the same ones)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    cursor_api_base_url: str = Field(
        default="https://api.cursor.com",
        validation_alias=_env("CURSOR_API_BASE_URL"),
        description="Base URL of the Cursor API (the sandbox's URL in tests and the demo).",
    )
    github_api_base_url: str = Field(
        default="https://api.github.com",
        validation_alias=_env("GITHUB_API_BASE_URL"),
        description="Base URL of GitHub's REST API (the sandbox's URL in tests and the demo).",
    )


class AuthSettings(BaseSettings):
    """How callers' JWTs are verified (connector and metrics): an HS256 secret, the platform's
    JWKS, or both (each key verifies only its own algorithm; see ``koalr_runtime.auth``)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    jwt_secret: SecretStr | None = Field(
        default=None,
        validation_alias=_env("KOALR_JWT_SECRET"),
        min_length=32,
        description="HS256 secret shared with local callers (CLI, demo); at least 32 bytes "
        "(RFC 7518). Optional when `KOALR_JWKS_URL` is set; one of the two is required.",
    )
    jwks_url: str | None = Field(
        default=None,
        validation_alias=_env("KOALR_JWKS_URL"),
        description="URL of the platform's JSON Web Key Set: RS256 and EdDSA tokens are verified "
        "with the key their `kid` names; an unknown `kid` fetches the set again (key rotation "
        "needs no restart).",
    )
    jwt_issuer: str | None = Field(
        default=None,
        validation_alias=_env("KOALR_JWT_ISSUER"),
        description="When set, tokens verified with a JWKS key must carry this `iss`.",
    )
    jwt_audience: str | None = Field(
        default=None,
        validation_alias=_env("KOALR_JWT_AUDIENCE"),
        description="When set, tokens verified with a JWKS key must carry this `aud`.",
    )
    jwks_refresh_min_interval_s: float = Field(
        default=30.0,
        ge=0,
        validation_alias=_env("KOALR_JWKS_REFRESH_MIN_INTERVAL_S"),
        description="Fewest seconds between two fetches of the JWKS (tokens with unknown `kid` "
        "values cannot make the service hammer the platform).",
    )
    jwks_cache_s: float = Field(
        default=300.0,
        gt=0,
        validation_alias=_env("KOALR_JWKS_CACHE_S"),
        description="Seconds the fetched keys are trusted before the set is fetched again (a key "
        "the platform removed stops verifying after at most this long).",
    )
    jwks_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        validation_alias=_env("KOALR_JWKS_TIMEOUT_S"),
        description="Timeout of one JWKS fetch.",
    )
    jwt_leeway_s: int = Field(
        default=30,
        ge=0,
        validation_alias=_env("KOALR_JWT_LEEWAY_S"),
        description="Seconds of clock skew tolerated when checking a token's expiry.",
    )

    @model_validator(mode="after")
    def _some_key(self) -> Self:
        if self.jwt_secret is None and not self.jwks_url:
            raise ValueError("set KOALR_JWT_SECRET, KOALR_JWKS_URL or both")
        return self


class EdgeSettings(BaseSettings):
    """Limits of a service's HTTP edge (connector and metrics); read with the service's prefix
    (``CONNECTOR_HTTP_MAX_BODY_BYTES``, ``METRICS_HTTP_MAX_BODY_BYTES``, ...)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    http_max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest request body accepted; a larger one is refused with 413 "
        "`payload_too_large` before it is read in full.",
    )
    http_rate_limit_per_s: float = Field(
        default=50.0,
        gt=0,
        description="Requests per second one bearer token may make to the `/v1` API (refilled "
        "continuously); beyond it, 429 `rate_limited` with `Retry-After`.",
    )
    http_rate_limit_burst: int = Field(
        default=100,
        ge=1,
        description="Requests one bearer token may make at once before the rate applies.",
    )
    http_request_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="A request not answered within this time gets 503 `request_timeout`.",
    )
    http_keep_alive_timeout_s: int = Field(
        default=5,
        gt=0,
        description="An idle keep-alive connection is closed after this many seconds.",
    )


def env_names(cls: type[BaseSettings], field_name: str) -> list[str]:
    """The environment variables a settings field is read from."""
    field = cls.model_fields[field_name]
    alias = field.validation_alias
    if alias is None:
        return [f"{cls.model_config.get('env_prefix') or ''}{field_name}".upper()]
    choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
    return [str(c) for c in choices if isinstance(c, str) and c.isupper()] or [str(choices[0])]


def load_settings(cls: type[SettingsT]) -> SettingsT:
    """Read settings; on a mistake exit with one line per problem, naming the variable.

    Pydantic's own message would echo the (truncated) values of every variable it read, secrets
    included, into a terminal or a log; this one never shows a value.
    """
    try:
        return cls()
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            field = str(error["loc"][0]) if error["loc"] else ""
            names = env_names(cls, field) if field in cls.model_fields else [field]
            problems.append(
                f"  {' or '.join(names)}: {error['msg']}" if field else f"  {error['msg']}"
            )
        message = f"invalid configuration for {cls.__name__}:\n" + "\n".join(problems)
        raise SystemExit(message) from None
