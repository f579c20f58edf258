"""Bodies of the connector's HTTP API (architecture.md section 5, normative)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from koalr_connector.integrations import Integration
from koalr_contracts import IntegrationStatus, Plan, Provider, SyncState, has_control_character

PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
"""No control character (NUL included): PostgreSQL refuses NUL in text, and HTTP headers (where
credentials go) refuse control characters."""


def _printable_secret(value: SecretStr) -> SecretStr:
    if has_control_character(value.get_secret_value()):
        raise ValueError("must not contain control characters")
    return value


def _whole_number(value: object) -> object:
    """``86.0`` is the integer 86 in JSON Schema's eyes (and a fuzzer's); other floats and
    strings stay as they are, for the strict integer check to refuse."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Secret = Annotated[
    SecretStr,
    Field(min_length=1, max_length=1024, json_schema_extra={"pattern": PRINTABLE}),
    AfterValidator(_printable_secret),
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CursorConnect(_Request):
    provider: Literal["cursor"]
    api_key: Secret = Field(description="A Cursor team Admin API key; never echoed back.")
    team_id: str = Field(
        min_length=1,
        max_length=200,
        pattern=PRINTABLE,
        description="The Cursor team ID (from cursor.com/settings/team/<team-id>).",
    )


class GithubCopilotConnect(_Request):
    provider: Literal["github_copilot"]
    token: Secret = Field(description="A GitHub token with access to Copilot metrics.")
    github_org: str = Field(min_length=1, max_length=200, pattern=PRINTABLE)


ConnectRequest = Annotated[CursorConnect | GithubCopilotConnect, Field(discriminator="provider")]


class CredentialsUpdate(_Request):
    """Send exactly one of `api_key` (a Cursor integration) or `token` (GitHub Copilot)."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["api_key"], "not": {"required": ["token"]}},
                {"required": ["token"], "not": {"required": ["api_key"]}},
            ]
        }
    )

    api_key: Secret | SkipJsonSchema[None] = Field(
        default=None, description="The new Cursor Admin API key."
    )
    token: Secret | SkipJsonSchema[None] = Field(default=None, description="The new GitHub token.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.api_key is None) == (self.token is None):
            msg = "send exactly one of `api_key` (Cursor) or `token` (GitHub Copilot)"
            raise ValueError(msg)
        return self


class SyncRequest(_Request):
    days: Annotated[int, BeforeValidator(_whole_number)] = Field(
        default=30, ge=1, le=90, strict=True, description="Days to re-fetch, ending today (UTC)."
    )


class SyncErrorOut(BaseModel):
    code: str
    message: str


class SyncProgressOut(BaseModel):
    done: int
    total: int
    unit: str


class SyncOut(BaseModel):
    state: SyncState
    last_success_at: datetime | None
    data_through: date | None
    progress: SyncProgressOut | None
    last_error: SyncErrorOut | None


class IntegrationOut(BaseModel):
    id: UUID
    org_id: str
    provider: Provider
    external_id: str
    plan: Plan
    status: IntegrationStatus
    created_at: datetime
    sync: SyncOut

    @classmethod
    def of(cls, integration: Integration) -> IntegrationOut:
        sync = integration.sync
        progress = sync.progress
        return cls(
            id=integration.id,
            org_id=integration.org_id,
            provider=integration.provider,
            external_id=integration.external_id,
            plan=integration.plan,
            status=integration.status,
            created_at=integration.created_at,
            sync=SyncOut(
                state=sync.state,
                last_success_at=sync.last_success_at,
                data_through=sync.data_through,
                progress=SyncProgressOut.model_validate(progress) if progress else None,
                last_error=(
                    SyncErrorOut(code=sync.last_error.code, message=sync.last_error.message)
                    if sync.last_error
                    else None
                ),
            ),
        )


class IntegrationList(BaseModel):
    integrations: list[IntegrationOut]


class SyncAccepted(BaseModel):
    job_id: UUID


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail
