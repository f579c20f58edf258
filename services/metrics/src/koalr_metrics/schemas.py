"""HTTP request bodies and the typed shapes of every response.

The responses are ``TypedDict`` models: the analytics build them (checked by mypy --strict, at no
cost per request), :mod:`koalr_metrics.jsonio` renders them, and pydantic generates the
``/openapi.json`` schemas from the very same classes, so the document says what is returned:

- Money (``Cents``) and shares (``Share``) are ``Decimal`` in Python and JSON *numbers* on the
  wire, written from the decimal's own digits (never through a float).
- A key that is sometimes left out (``suppressed`` for admins, ``spend`` where the viewer may not
  see it) is ``NotRequired``: absent, never ``null``.
- Values that may be ``null`` are required and nullable.

Why ``TypedDict`` rather than ``BaseModel`` for the responses: docs/decisions/0201.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Annotated, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, WithJsonSchema
from typing_extensions import TypedDict

from koalr_contracts import ErrorCode, Provider, SyncState

Cents = Annotated[
    Decimal,
    WithJsonSchema(
        {
            "type": "number",
            "minimum": 0,
            "description": "US cents, possibly fractional: an exact decimal (parse it as one).",
        }
    ),
]
Share = Annotated[
    Decimal,
    WithJsonSchema(
        {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "requests / total requests, rounded half-even to 4 decimals.",
        }
    ),
]
Count = Annotated[int, Field(ge=0)]
Role = Literal["admin", "member"]
Suppressed = Annotated[
    bool,
    Field(description="Members only: true when too few members were active (the value is null)."),
]


# --- requests ----------------------------------------------------------------------------------


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
    retention_days: StrictInt = Field(
        default=400,
        ge=31,
        le=3650,
        description="Member days older than this many days (and their rollups) are deleted.",
    )


# --- responses ---------------------------------------------------------------------------------


class PolicyOut(TypedDict):
    """The org's privacy policy (the defaults until an admin sets one)."""

    org_id: str
    members_can_see_spend: bool
    min_group_size: Annotated[int, Field(ge=1, le=100)]
    retention_days: Annotated[int, Field(ge=31, le=3650)]


class RangeOut(TypedDict):
    """The inclusive range of UTC days the figures cover."""

    start: dt.date
    end: dt.date


class ReasonOut(TypedDict):
    """Why the integration's last sync failed, as the syncer reported it."""

    code: Annotated[ErrorCode, Field(description="The sync's reason code.")]
    message: Annotated[
        str | None,
        Field(description="The syncer's sentence for the code (no member data); null if none."),
    ]


class FreshnessOut(TypedDict):
    """How complete and recent the provider's data is."""

    data_through: Annotated[dt.date | None, Field(description="Last complete UTC day.")]
    last_synced_at: Annotated[dt.datetime | None, Field(description="Last successful sync.")]
    days_with_data: Annotated[
        int, Field(ge=0, description="Days of the range with data that the viewer may see.")
    ]
    days_in_range: Annotated[int, Field(ge=1)]
    state: SyncState
    reason: Annotated[
        ReasonOut | None,
        Field(description="Why the sync is in error; null in any other state or without one."),
    ]


class DauPoint(TypedDict):
    date: dt.date
    active_users: Count | None
    suppressed: NotRequired[Suppressed]


class RequestsPoint(TypedDict):
    date: dt.date
    requests: Count | None
    suppressed: NotRequired[Suppressed]


class ModelShare(TypedDict):
    model: str
    requests: Count
    share: Share


class SpendPoint(TypedDict):
    date: dt.date
    cents: Cents | None
    suppressed: NotRequired[Suppressed]


class CycleOut(TypedDict):
    """Spend of the provider's current billing cycle."""

    start: dt.date
    total_cents: Cents | None
    suppressed: NotRequired[
        Annotated[
            bool,
            Field(
                description=(
                    "Members only: true when fewer than min_group_size members spent in the "
                    "cycle (total_cents is null)."
                )
            ),
        ]
    ]


class SeatsOut(TypedDict):
    """GitHub Copilot seats, as of the newest seats snapshot (admins only)."""

    total: Annotated[Count, Field(description="Seats listed.")]
    never_used: Annotated[Count, Field(description="Seats with no last activity.")]
    active_30d: Annotated[
        Count, Field(description="Seats used within the 30 days before the snapshot was read.")
    ]
    monthly_cents: Annotated[Count, Field(description="Sum of the seats' monthly list prices.")]


class SpendOut(TypedDict):
    currency: Literal["USD"]
    total_cents: Cents
    daily: list[SpendPoint]
    cycle: Annotated[
        CycleOut | None,
        Field(
            description=(
                "Cursor: the newest spend snapshot's cycle (null before the first). GitHub "
                "Copilot: the calendar month of the range's end, through that day."
            )
        ),
    ]
    seats: NotRequired[SeatsOut]


class ProviderSummaryOut(TypedDict):
    """One provider's figures; spend for admins, and for members where the org allows it."""

    provider: Provider
    integration_id: str
    freshness: FreshnessOut
    dau: list[DauPoint]
    requests: list[RequestsPoint]
    models: list[ModelShare]
    spend: NotRequired[SpendOut]


class SummaryOut(TypedDict):
    """All the viewer may see of the org's AI assistants' usage."""

    org_id: str
    viewer_role: Role
    range: RangeOut
    providers: list[ProviderSummaryOut]


class MemberOut(TypedDict):
    provider: Provider
    email: str | None
    login: Annotated[str | None, Field(description="GitHub login (Copilot members).")]
    name: str | None
    active_days: Count
    requests: Count
    top_model: Annotated[str | None, Field(description="Most requested model (null: none).")]
    spend_cents: Cents


class MembersOut(TypedDict):
    """Per-member activity over the range, most requests first (admins only)."""

    members: list[MemberOut]


class ErasureAcceptedOut(TypedDict):
    """An erasure request, accepted: it completes asynchronously (see its status route)."""

    erasure_id: uuid.UUID
    status: Literal["pending"]


class ErasureOut(TypedDict):
    """An erasure request and how far it got."""

    erasure_id: uuid.UUID
    member: Annotated[
        str,
        Field(
            description="The member, masked (first character, and the email's domain): the "
            "identifier itself is not kept."
        ),
    ]
    status: Literal["pending", "done"]
    requested_at: dt.datetime
    completed_at: Annotated[dt.datetime | None, Field(description="Null while pending.")]
    rows_removed: Annotated[
        int | None,
        Field(
            description="Rows deleted from every store (null while pending); 0 for a member "
            "with no stored data."
        ),
    ]


class ErrorDetail(TypedDict):
    code: Annotated[str, Field(description="snake_case and stable: what went wrong.")]
    message: Annotated[str, Field(description="What to do about it, for a person.")]


class ErrorOut(TypedDict):
    """The body of every error response."""

    error: ErrorDetail
