"""HTTP request bodies and the documented shapes of the responses (for ``/openapi.json``).

Responses are rendered by :mod:`koalr_metrics.jsonio` so that money keeps its exact digits;
these models describe them. Money fields are JSON numbers (exact decimals, never rounded).
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from koalr_contracts import Provider


class PolicyIn(BaseModel):
    """The org's privacy policy. Omitted fields take their defaults (PUT replaces the policy)."""

    model_config = ConfigDict(extra="forbid")

    members_can_see_spend: StrictBool = Field(
        default=False, description="Whether members see the spend block of the summary."
    )
    min_group_size: StrictInt = Field(
        default=5,
        ge=1,
        le=100,
        description="Fewest active members a day needs before members see its figures.",
    )


class PolicyOut(BaseModel):
    org_id: str
    members_can_see_spend: bool
    min_group_size: int


class RangeOut(BaseModel):
    start: dt.date
    end: dt.date


class FreshnessOut(BaseModel):
    data_through: dt.date | None
    last_synced_at: dt.datetime | None
    days_with_data: int
    days_in_range: int
    state: str = Field(description="pending, syncing, idle or error")


class DauPoint(BaseModel):
    date: dt.date
    active_users: int | None
    suppressed: bool | None = Field(
        default=None, description="Members only: true when the day had too few active members."
    )


class RequestsPoint(BaseModel):
    date: dt.date
    requests: int | None
    suppressed: bool | None = None


class ModelShare(BaseModel):
    model: str
    requests: int
    share: float = Field(description="requests / total requests, 4 decimals")


class SpendPoint(BaseModel):
    date: dt.date
    cents: float | None = Field(description="Exact decimal cents.")
    suppressed: bool | None = None


class CycleOut(BaseModel):
    start: dt.date
    total_cents: float | None = Field(description="Exact decimal cents.")
    suppressed: bool | None = None


class SpendOut(BaseModel):
    currency: str = "USD"
    total_cents: float = Field(description="Exact decimal cents.")
    daily: list[SpendPoint]
    cycle: CycleOut | None


class ProviderSummaryOut(BaseModel):
    provider: Provider
    integration_id: str
    freshness: FreshnessOut
    dau: list[DauPoint]
    requests: list[RequestsPoint]
    models: list[ModelShare]
    spend: SpendOut | None = Field(
        default=None, description="Admins, and members where the org allows it; else absent."
    )


class SummaryOut(BaseModel):
    org_id: str
    viewer_role: str
    range: RangeOut
    providers: list[ProviderSummaryOut]


class MemberOut(BaseModel):
    provider: Provider
    email: str | None
    name: str | None
    active_days: int
    requests: int
    top_model: str | None
    spend_cents: float = Field(description="Exact decimal cents.")


class MembersOut(BaseModel):
    members: list[MemberOut]


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorDetail
