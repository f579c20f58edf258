"""The events every service exchanges over Kafka, as Pydantic v2 models.

Rules, so that a reader can rely on them without reading every model:

- Every event has the envelope fields of :class:`Event` (``event_id``, ``event_type``,
  ``schema_version``, ``occurred_at`` in UTC, ``org_id``, ``integration_id``, ``correlation_id``) and
  is keyed on Kafka by ``integration_id`` (:meth:`Event.kafka_key`).
- Our own events reject unknown fields, naive datetimes, negative counts and unknown providers. A
  field added later gets a default and bumps ``schema_version``; consumers are deployed first.
- Money is ``Decimal`` cents (fractional cents allowed), serialised to JSON as a string so no float
  ever touches it.
- Days are UTC calendar days. A usage day after the day it was fetched (``fetched_at``) is
  rejected: validation compares the producer's own fields, never the consumer's clock.
- Events that change an integration's state (``koalr.integrations.v1``, ``SyncStatusChanged``)
  carry a ``sequence`` assigned by the producer's database, increasing per integration; consumers
  order them by it, never by ``occurred_at`` (two machines' clocks must not decide an outcome).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Literal, Self
from uuid import UUID, uuid4

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    StringConstraints,
    model_validator,
)

from koalr_contracts.identifiers import ORG_ID_MAX_LENGTH, ORG_ID_PATTERN

SCHEMA_VERSION = 2
"""Current schema version of every event in this module (the topic name carries the major).

2: ``sequence`` on integration events and ``SyncStatusChanged``; a usage day is checked against
its own ``fetched_at`` instead of the consumer's clock; ``SeatsSnapshot`` and ``DaySpend`` (GitHub
Copilot seats and premium requests); reason codes ``insufficient_permissions`` and
``metrics_disabled``."""

Provider = Literal["cursor", "github_copilot"]
"""The AI coding assistants we read usage from."""

Plan = Literal["team", "business", "enterprise"]
"""The provider plan detected at connect time; it decides what can be synced."""

IntegrationStatus = Literal["active", "degraded", "failed"]
SyncState = Literal["pending", "syncing", "idle", "error"]
SyncReason = Literal["backfill", "scheduled", "manual"]
ErrorCode = Literal[
    "invalid_api_key",
    "insufficient_plan",
    "insufficient_permissions",
    "metrics_disabled",
    "rate_limited",
    "provider_unavailable",
    "provider_error",
    "internal_error",
]
"""Reason codes a sync can fail or degrade with; shown to users in the integration's status."""

RequestKind = Literal["chat", "agent", "composer", "cmdk", "completion", "other"]
ProgressUnit = Literal["days", "chunks", "pages"]


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _normalise_email(value: str) -> str:
    value = value.strip().lower()
    if "@" not in value or value.startswith("@") or value.endswith("@"):
        msg = f"{value!r} is not an email address"
        raise ValueError(msg)
    return value


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware datetime, normalised to UTC. Naive datetimes are rejected."""

Sequence = Annotated[
    int,
    Field(
        ge=0,
        description=(
            "Per-integration order of state-changing events, assigned by the producer's database "
            "(strictly increasing for one integration). Consumers apply an event only when its "
            "sequence is above the last one applied; 0 means unordered (schema version 1)."
        ),
    ),
]

Cents = Annotated[Decimal, Field(ge=0, max_digits=20, decimal_places=8)]
"""A non-negative amount of US cents; fractional cents allowed; never a float."""

OrgId = Annotated[
    str, StringConstraints(min_length=1, max_length=ORG_ID_MAX_LENGTH, pattern=ORG_ID_PATTERN)
]
Email = Annotated[str, StringConstraints(max_length=320), AfterValidator(_normalise_email)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Message = Annotated[str, StringConstraints(max_length=1000)]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=200)]

SealedCredential = Annotated[
    str,
    StringConstraints(pattern=r"^v1\.[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{24,}$", max_length=8192),
]
"""A credential sealed with AES-GCM (``v1.<key id>.<base64url nonce+ciphertext>``); see
``koalr_runtime.sealing``. Never a clear-text key."""


class ContractModel(BaseModel):
    """Base of every contract model: strict about unknown fields and immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Event(ContractModel):
    """The envelope every event carries."""

    event_type: str
    event_id: UUID = Field(default_factory=uuid4)
    schema_version: int = Field(default=SCHEMA_VERSION, ge=1)
    occurred_at: UtcDatetime = Field(default_factory=lambda: datetime.now(UTC))
    org_id: OrgId
    integration_id: UUID
    correlation_id: UUID = Field(
        default_factory=uuid4,
        description="Follows one sync from connect to storage; copied onto every derived event.",
    )

    def kafka_key(self) -> bytes:
        """The Kafka message key: one integration's events stay in order on one partition."""
        return str(self.integration_id).encode()


# --- koalr.integrations.v1 --------------------------------------------------------------------


class IntegrationConnected(Event):
    """An org connected a provider; the syncer starts a backfill of ``backfill_days``."""

    event_type: Literal["IntegrationConnected"] = "IntegrationConnected"
    sequence: Sequence = 0
    provider: Provider
    external_id: ShortText = Field(description="Cursor team ID or GitHub organisation.")
    plan: Plan
    status: Literal["active", "degraded"] = "active"
    status_reason: ErrorCode | None = Field(
        default=None, description="Why the integration is degraded, e.g. insufficient_plan."
    )
    sealed_credential: SealedCredential
    backfill_days: int = Field(default=30, ge=1, le=90)

    @model_validator(mode="after")
    def _degraded_has_reason(self) -> Self:
        if self.status == "degraded" and self.status_reason is None:
            msg = "a degraded integration needs a status_reason (e.g. insufficient_plan)"
            raise ValueError(msg)
        return self


class IntegrationCredentialsRotated(Event):
    """The org replaced the provider credential; a failed integration may resume."""

    event_type: Literal["IntegrationCredentialsRotated"] = "IntegrationCredentialsRotated"
    sequence: Sequence = 0
    provider: Provider
    plan: Plan
    sealed_credential: SealedCredential


class IntegrationDisconnected(Event):
    """The org disconnected a provider; with ``purge`` its stored usage is deleted too."""

    event_type: Literal["IntegrationDisconnected"] = "IntegrationDisconnected"
    sequence: Sequence = 0
    provider: Provider
    purge: bool = False


# --- koalr.member-erasures.v1 -----------------------------------------------------------------


class MemberErased(Event):
    """An org's admin had a member erased (GDPR article 17): every service deletes what it holds
    of that member for this integration and keeps them out from now on. One event per
    integration of the org. The member is named only by ``member_hash``: SHA-256 of the org id,
    a newline and the normalised identifier (the email lower-cased, or ``github:`` and the login
    lower-cased), in lower-case hex; never by the identifier itself."""

    event_type: Literal["MemberErased"] = "MemberErased"
    erasure_id: UUID
    member_hash: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


# --- koalr.sync-jobs.v1 -----------------------------------------------------------------------


class SyncJobRequested(Event):
    """A bounded piece of sync work: fetch ``[window_start, window_end]`` (inclusive UTC days).

    Long backfills are split into several jobs; ``cursor`` lets a job continue where the previous
    chunk stopped, so no job holds a partition for long and a crash re-runs one chunk only.
    """

    event_type: Literal["SyncJobRequested"] = "SyncJobRequested"
    job_id: UUID = Field(default_factory=uuid4)
    provider: Provider
    reason: SyncReason
    window_start: date
    window_end: date
    cursor: Annotated[str, StringConstraints(max_length=2000)] | None = Field(
        default=None, description="Opaque continuation cursor; None starts at window_start."
    )
    attempt: NonNegativeInt = 0

    @model_validator(mode="after")
    def _window_is_ordered(self) -> Self:
        if self.window_start > self.window_end:
            msg = (
                f"window_start {self.window_start} is after window_end {self.window_end}; "
                "the window is inclusive and must be ordered"
            )
            raise ValueError(msg)
        if self.window_end - self.window_start > timedelta(days=366):
            msg = "a sync window spans at most 366 days; split longer periods into several jobs"
            raise ValueError(msg)
        return self

    @property
    def days(self) -> int:
        return (self.window_end - self.window_start).days + 1


# --- koalr.usage-records.v1 -------------------------------------------------------------------


class MemberRef(ContractModel):
    """Who a usage row belongs to. Cursor identifies members by email, Copilot by login."""

    email: Email | None = None
    login: ShortText | None = None
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    external_id: ShortText | None = None

    @model_validator(mode="after")
    def _identified(self) -> Self:
        if self.email is None and self.login is None:
            msg = "a member needs an email or a login"
            raise ValueError(msg)
        return self

    @property
    def key(self) -> str:
        """The stable identity used in natural keys: the email, else ``github:<login>``."""
        if self.email is not None:
            return self.email
        return f"github:{self.login}"


class ModelUsage(ContractModel):
    model: ModelName
    requests: NonNegativeInt
    charged_cents: Cents = Decimal(0)


class UsageRecord(Event):
    """One member's usage on one UTC day with one provider.

    A record replaces whatever was stored before for the same ``(integration_id, day, member)``
    if its ``fetched_at`` is not older, so re-syncs and replays never double count.
    """

    event_type: Literal["UsageRecord"] = "UsageRecord"
    provider: Provider
    day: date
    member: MemberRef
    is_active: bool
    requests: NonNegativeInt = Field(description="AI requests that day (usage events).")
    requests_by_kind: dict[RequestKind, NonNegativeInt] = Field(default_factory=dict)
    models: tuple[ModelUsage, ...] = ()
    charged_cents: Cents = Decimal(0)
    lines_added: NonNegativeInt | None = None
    lines_accepted: NonNegativeInt | None = None
    tabs_shown: NonNegativeInt | None = None
    tabs_accepted: NonNegativeInt | None = None
    fetched_at: UtcDatetime

    @model_validator(mode="after")
    def _day_not_after_fetch(self) -> Self:
        fetched_day = self.fetched_at.date()
        if self.day > fetched_day:
            msg = (
                f"day {self.day.isoformat()} is after the day the record was fetched "
                f"({fetched_day.isoformat()} UTC); a provider cannot report usage in the future"
            )
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _models_add_up(self) -> Self:
        names = [m.model for m in self.models]
        if len(set(names)) != len(names):
            msg = "each model appears at most once in a usage record"
            raise ValueError(msg)
        model_requests = sum(m.requests for m in self.models)
        if model_requests != self.requests:
            msg = (
                f"the models' requests add up to {model_requests}, not to requests={self.requests}"
            )
            raise ValueError(msg)
        model_cents = sum((m.charged_cents for m in self.models), Decimal(0))
        if model_cents != self.charged_cents:
            msg = (
                f"the models' charged_cents add up to {model_cents}, "
                f"not to charged_cents={self.charged_cents}"
            )
            raise ValueError(msg)
        return self


class MemberSpend(ContractModel):
    member: MemberRef
    spend_cents: Cents | None = Field(default=None, description="On-demand part, when known.")
    overall_spend_cents: Cents = Field(description="Included plus on-demand spend this cycle.")


class CycleSpendSnapshot(Event):
    """Per-member spend of the provider's current billing cycle, as read at ``fetched_at``."""

    event_type: Literal["CycleSpendSnapshot"] = "CycleSpendSnapshot"
    provider: Provider
    cycle_start: date
    members: tuple[MemberSpend, ...]
    total_cents: Cents
    fetched_at: UtcDatetime

    @model_validator(mode="after")
    def _total_adds_up(self) -> Self:
        total = sum((m.overall_spend_cents for m in self.members), Decimal(0))
        if total != self.total_cents:
            msg = f"the members' overall_spend_cents add up to {total}, not to {self.total_cents}"
            raise ValueError(msg)
        return self


SeatPlanType = Literal["business", "enterprise", "unknown"]
"""A Copilot seat's ``plan_type``; ``unknown`` is priced at the organisation's plan."""


class Seat(ContractModel):
    """One assigned provider seat (GitHub Copilot), as the provider lists it."""

    member: MemberRef
    plan_type: SeatPlanType = "unknown"
    created_at: UtcDatetime = Field(description="When the seat was (last) granted.")
    pending_cancellation_date: date | None = Field(
        default=None, description="The day the seat stops costing; None while it is kept."
    )
    last_activity_at: UtcDatetime | None = Field(
        default=None, description="Last use of the assistant; None for a seat never used."
    )
    last_activity_editor: Annotated[str, StringConstraints(max_length=200)] | None = None


class SeatsSnapshot(Event):
    """Every seat of the provider organisation as read at ``fetched_at``; replaces the previous
    snapshot of the integration when it is not older. Seat cost is derived from it (price per
    ``plan_type``, prorated by day; architecture section 6b)."""

    event_type: Literal["SeatsSnapshot"] = "SeatsSnapshot"
    provider: Provider
    plan: Plan = Field(description="The organisation's plan; prices seats whose plan is unknown.")
    seats: tuple[Seat, ...]
    fetched_at: UtcDatetime

    @model_validator(mode="after")
    def _one_seat_per_member(self) -> Self:
        keys = [seat.member.key for seat in self.seats]
        if len(set(keys)) != len(keys):
            msg = "each member holds at most one seat in a snapshot"
            raise ValueError(msg)
        return self


class DaySpend(Event):
    """Spend of one UTC day that belongs to no member's usage record, e.g. GitHub Copilot's
    premium requests (``netAmount`` in cents). Replaces the same ``(integration, day, source)``
    when its ``fetched_at`` is not older."""

    event_type: Literal["DaySpend"] = "DaySpend"
    provider: Provider
    day: date
    source: Literal["premium_requests"] = "premium_requests"
    cents: Cents
    fetched_at: UtcDatetime

    @model_validator(mode="after")
    def _day_not_after_fetch(self) -> Self:
        if self.day > self.fetched_at.date():
            msg = (
                f"day {self.day.isoformat()} is after the day the spend was fetched "
                f"({self.fetched_at.date().isoformat()} UTC)"
            )
            raise ValueError(msg)
        return self


# --- koalr.sync-status.v1 ---------------------------------------------------------------------


class SyncProgress(ContractModel):
    done: NonNegativeInt
    total: NonNegativeInt
    unit: ProgressUnit = "days"

    @model_validator(mode="after")
    def _done_within_total(self) -> Self:
        if self.done > self.total:
            msg = f"progress done={self.done} exceeds total={self.total}"
            raise ValueError(msg)
        return self


class SyncStatusChanged(Event):
    """A sync moved to a new state; ``error`` always carries a reason code."""

    event_type: Literal["SyncStatusChanged"] = "SyncStatusChanged"
    sequence: Sequence = 0
    provider: Provider
    state: SyncState
    reason_code: ErrorCode | None = None
    message: Message | None = None
    data_through: date | None = Field(
        default=None, description="Last UTC day whose data is complete in our store."
    )
    progress: SyncProgress | None = None
    last_success_at: UtcDatetime | None = None
    job_id: UUID | None = None

    @model_validator(mode="after")
    def _error_has_reason(self) -> Self:
        if self.state == "error" and self.reason_code is None:
            msg = "an error state needs a reason_code"
            raise ValueError(msg)
        return self


# --- koalr.dead-letters.v1 --------------------------------------------------------------------


class DeadLetter(ContractModel):
    """A message a consumer could not process, with where it came from and why.

    Unlike the other events it may lack an org or integration: the original could be undecodable.
    """

    event_type: Literal["DeadLetter"] = "DeadLetter"
    event_id: UUID = Field(default_factory=uuid4)
    schema_version: int = Field(default=SCHEMA_VERSION, ge=1)
    occurred_at: UtcDatetime = Field(default_factory=lambda: datetime.now(UTC))
    org_id: OrgId | None = None
    integration_id: UUID | None = None
    correlation_id: UUID | None = None
    source_topic: ShortText
    source_partition: NonNegativeInt
    source_offset: NonNegativeInt
    consumer_group: ShortText
    key: Annotated[str, StringConstraints(max_length=1000)] | None = None
    error_type: ShortText
    reason: Annotated[str, StringConstraints(min_length=1, max_length=4000)]
    payload: str = Field(description="The original message value, as text or base64.")
    payload_encoding: Literal["utf-8", "base64"] = "utf-8"

    def kafka_key(self) -> bytes | None:
        return self.key.encode() if self.key is not None else None


# --- koalr.alerts.v1 --------------------------------------------------------------------------

AlertKind = Literal["spend_anomaly", "idle_seat"]
"""What an alert is about: a day whose spend left its robust baseline, or a seat gone idle."""

ALERT_SCHEMA_VERSION = 1
"""Schema version of :class:`Alert` (a new event, versioned on its own topic)."""


def alert_key(kind: AlertKind, org_id: str, integration_id: UUID, subject: str) -> str:
    """The idempotency key of an alert: SHA-256 (hex) of its kind, org, integration and subject
    (the day of a spend anomaly; the member key and idle-since day of an idle seat). The same
    finding always gets the same key, so a consumer dedupes a redelivered alert by it."""
    text = "\x1f".join((kind, org_id, str(integration_id), subject))
    return hashlib.sha256(text.encode()).hexdigest()


class SpendAnomalyDetails(ContractModel):
    """A day whose spend exceeds median + k·MAD of the 28 days before it (and the median by at
    least the configured minimum)."""

    kind: Literal["spend_anomaly"] = "spend_anomaly"
    spend_cents: Cents
    baseline_median_cents: Cents
    baseline_mad_cents: Cents
    threshold_cents: Cents


class IdleSeatDetails(ContractModel):
    """A paid seat (Copilot) or member (Cursor) with no activity in the last 30 days."""

    kind: Literal["idle_seat"] = "idle_seat"
    member: MemberRef
    last_active: date | None = Field(
        default=None, description="Last day with activity; null when never used."
    )
    monthly_cents: Cents = Field(description="What the seat costs per month.")


class Alert(Event):
    """A finding the platform may notify about, published once per ``alert_key`` (at least once
    on the wire: consumers dedupe on the key). ``day`` is the anomalous day, or the first day a
    seat counted as idle."""

    event_type: Literal["Alert"] = "Alert"
    schema_version: int = Field(default=ALERT_SCHEMA_VERSION, ge=1)
    alert_key: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    kind: AlertKind
    provider: Provider
    day: date
    details: Annotated[SpendAnomalyDetails | IdleSeatDetails, Field(discriminator="kind")]

    @model_validator(mode="after")
    def _details_match_kind(self) -> Self:
        if self.details.kind != self.kind:
            msg = f"an alert of kind {self.kind!r} carries details of kind {self.details.kind!r}"
            raise ValueError(msg)
        return self


EVENT_TYPES: tuple[type[ContractModel], ...] = (
    IntegrationConnected,
    IntegrationCredentialsRotated,
    IntegrationDisconnected,
    MemberErased,
    SyncJobRequested,
    UsageRecord,
    CycleSpendSnapshot,
    SeatsSnapshot,
    DaySpend,
    SyncStatusChanged,
    DeadLetter,
    Alert,
)
