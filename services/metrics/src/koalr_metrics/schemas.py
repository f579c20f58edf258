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

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    WithJsonSchema,
    with_config,
)
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
    cursor_seat_price_cents: StrictInt = Field(
        default=4000,
        ge=0,
        le=1_000_000,
        description="What a Cursor seat costs the org per month, in cents (idle seats); "
        "default: the Teams list price, $40.",
    )
    retention_days: StrictInt = Field(
        default=400,
        ge=31,
        le=3650,
        description="Member days older than this many days (and their rollups) are deleted.",
    )


@with_config(ConfigDict(extra="forbid"))
class IdentityIn(TypedDict):
    """One person: their email (Cursor) and their GitHub login (Copilot). A ``TypedDict``
    rather than a model: 100,000 rows validate without building 100,000 objects."""

    email: Annotated[
        StrictStr, Field(description="At most 320 characters; compared case-insensitively.")
    ]
    github_login: Annotated[
        StrictStr,
        Field(
            description=(
                "1 to 39 letters, digits or single hyphens, not starting or ending with one; "
                "compared case-insensitively."
            )
        ),
    ]


class IdentitiesIn(BaseModel):
    """The org's whole mapping of people across tools; a PUT replaces the previous one."""

    model_config = ConfigDict(extra="forbid")

    identities: list[IdentityIn] = Field(
        max_length=100_000,
        description=(
            "At most 100,000 rows; each email and each login at most once (case-insensitively)."
        ),
    )


# --- responses ---------------------------------------------------------------------------------


class PolicyOut(TypedDict):
    """The org's privacy policy (the defaults until an admin sets one)."""

    org_id: str
    members_can_see_spend: bool
    min_group_size: Annotated[int, Field(ge=1, le=100)]
    cursor_seat_price_cents: Annotated[
        int, Field(ge=0, le=1_000_000, description="A Cursor seat's monthly price, in cents.")
    ]
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


class SeatHolderOut(TypedDict):
    """A Copilot seat (by ``login``) or a Cursor member (by ``email``)."""

    email: str | None
    login: Annotated[str | None, Field(description="GitHub login (Copilot seats).")]
    name: str | None
    last_active: Annotated[
        dt.date | None,
        Field(
            description="Copilot: the day of the seat's last_activity_at; Cursor: the last "
            "active day we hold. Null: never used."
        ),
    ]
    seat_since: Annotated[
        dt.date | None,
        Field(
            description="Copilot: the seat's created_at day; Cursor: the member's first day in "
            "our data (Cursor gives no assignment date)."
        ),
    ]


class IdleSeatsOut(TypedDict):
    """Paid seats with no activity in the last 30 days, and what they cost per month."""

    count: Count
    monthly_cents: Annotated[
        Count,
        Field(
            description="Copilot: the seats' list prices; Cursor: count times the org's "
            "cursor_seat_price_cents."
        ),
    ]
    seats: list[SeatHolderOut]


class NeverUsedOut(TypedDict):
    count: Count
    seats: list[SeatHolderOut]


class ActivationOut(TypedDict):
    """Days from seat assignment to first use."""

    median_days: Annotated[
        Decimal | None,
        WithJsonSchema(
            {
                "type": ["number", "null"],
                "description": "Median days from the seat to its first active day (null: none).",
            }
        ),
    ]
    activated: Annotated[
        Count,
        Field(description="Seats assigned within the data we hold, with an observed first use."),
    ]
    never_used: NeverUsedOut
    first_use_unobserved: Annotated[
        Count,
        Field(
            description="Seats used whose assignment or first use lies outside the data we "
            "hold (e.g. assigned before the history we read)."
        ),
    ]


class AnomalyOut(TypedDict):
    """A day whose spend exceeded its robust baseline."""

    date: dt.date
    spend_cents: Cents
    baseline_median_cents: Annotated[Cents, Field(description="Median of the 28 days before.")]
    baseline_mad_cents: Annotated[Cents, Field(description="Their median absolute deviation.")]
    threshold_cents: Annotated[Cents, Field(description="median + k * MAD.")]


class AnomaliesOut(TypedDict):
    k: Annotated[
        Decimal,
        WithJsonSchema({"type": "number", "description": "MADs above the median that alert."}),
    ]
    min_delta_cents: Annotated[
        Cents, Field(description="Least excess over the median that counts as an anomaly.")
    ]
    days: list[AnomalyOut]


class ProviderInsightsOut(TypedDict):
    """One provider's insights (admins only)."""

    provider: Provider
    integration_id: str
    data_through: Annotated[dt.date | None, Field(description="Last complete UTC day.")]
    cost_per_active_user: Annotated[
        Cents | None,
        Field(
            description="spend_cents / active_members, rounded half-even to 1e-5 cent; null "
            "when nobody was active in the range."
        ),
    ]
    spend_cents: Annotated[
        Cents, Field(description="Spend over the range, as the summary's spend.total_cents.")
    ]
    active_members: Annotated[Count, Field(description="Distinct members active in the range.")]
    idle_seats: IdleSeatsOut
    seat_activation: ActivationOut
    spend_anomalies: AnomaliesOut


class InsightsOut(TypedDict):
    """Cost per active user, idle seats, seat activation and spend anomalies per provider."""

    org_id: str
    range: RangeOut
    currency: Literal["USD"]
    providers: list[ProviderInsightsOut]


class ErrorDetail(TypedDict):
    code: Annotated[str, Field(description="snake_case and stable: what went wrong.")]
    message: Annotated[str, Field(description="What to do about it, for a person.")]


class ErrorOut(TypedDict):
    """The body of every error response."""

    error: ErrorDetail


class IdentityOut(TypedDict):
    email: Annotated[str, Field(description="Lowercased.")]
    github_login: Annotated[str, Field(description="Lowercased.")]


class IdentitiesOut(TypedDict):
    """The org's mapping, by email."""

    identities: list[IdentityOut]


class IdentitiesCountOut(TypedDict):
    """How many identities the mapping now holds."""

    identities: Count


class ToolFiguresOut(TypedDict):
    """One person's figures with one tool over the range, as ``/members`` gives them (summed
    over the org's integrations of that tool)."""

    active_days: Count
    requests: Count
    spend_cents: Cents


class PersonOut(TypedDict):
    """One person: a mapped email and login together, or an unmapped member alone."""

    email: Annotated[
        str | None, Field(description="Lowercased; null for an unmapped Copilot member.")
    ]
    github_login: Annotated[
        str | None, Field(description="Lowercased; null for an unmapped Cursor member.")
    ]
    name: Annotated[str | None, Field(description="As a provider last reported it.")]
    cursor: Annotated[
        ToolFiguresOut | None, Field(description="Null: no Cursor data in the range.")
    ]
    github_copilot: Annotated[
        ToolFiguresOut | None,
        Field(description="Null: no Copilot activity or seat in the range."),
    ]
    total_spend_cents: Cents


class PeopleOut(TypedDict):
    """One page of people, by total spend (highest first), ties by email then login."""

    people: list[PersonOut]
    next: Annotated[
        str | None,
        Field(description="Pass as `cursor` for the next page; null on the last page."),
    ]


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
