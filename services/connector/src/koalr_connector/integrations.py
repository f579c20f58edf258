"""The integration as the connector keeps it, and how sync-status events change it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any
from uuid import UUID

from koalr_contracts import (
    ErrorCode,
    IntegrationStatus,
    Plan,
    Provider,
    SyncState,
    SyncStatusChanged,
)

TEAM_PLAN_MESSAGE = (
    "Your Cursor plan (Team) only gives access to the member list, so usage, requests, models "
    "and spend cannot be synced. Usage analytics need a Business plan with Admin API access "
    "(Enterprise for the Analytics API); upgrade the Cursor plan, then rotate the key here."
)

METRICS_DISABLED_MESSAGE = (
    "GitHub refuses this organisation's Copilot usage-metrics reports (403), so active users, "
    "requests and models cannot be synced; seats and spend still are. An organisation owner "
    'must enable the "Copilot usage metrics" policy (organisation settings, Copilot, Policies). '
    'If it is on, give the token the "Organization Copilot metrics" (read) permission, then '
    "rotate the token here."
)
INSUFFICIENT_PERMISSIONS_MESSAGE = (
    "GitHub refuses the token access to the organisation's Copilot billing (403). Use a token "
    'of an organisation owner with the permissions "GitHub Copilot Business" and '
    '"Organization Copilot metrics" (read), or the classic scopes manage_billing:copilot and '
    "read:org, then rotate the token here."
)

DEFAULT_ERROR_MESSAGES: dict[str, str] = {
    "invalid_api_key": (
        "Cursor rejected the API key (it was probably rotated or revoked); create a new key in "
        "Cursor and update it here."
    ),
    "insufficient_plan": TEAM_PLAN_MESSAGE,
    "insufficient_permissions": INSUFFICIENT_PERMISSIONS_MESSAGE,
    "metrics_disabled": METRICS_DISABLED_MESSAGE,
    "rate_limited": "Cursor is rate limiting requests; the sync will resume automatically.",
    "provider_unavailable": ("Cursor did not answer; the sync will be retried automatically."),
    "provider_error": "Cursor returned an unexpected answer; the sync will be retried.",
    "internal_error": "The sync failed on our side; it will be retried.",
}


@dataclass(frozen=True, slots=True)
class SyncError:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class SyncSummary:
    state: SyncState = "pending"
    last_success_at: datetime | None = None
    data_through: date | None = None
    progress: dict[str, Any] | None = None
    last_error: SyncError | None = None
    status_sequence: int = 0
    """``sequence`` of the last applied ``SyncStatusChanged`` (0: none, or only unordered ones)."""


@dataclass(frozen=True, slots=True)
class Integration:
    id: UUID
    org_id: str
    provider: Provider
    external_id: str
    plan: Plan
    status: IntegrationStatus
    correlation_id: UUID
    created_at: datetime
    sync: SyncSummary
    sealed_credential: str | None = None


def base_status(plan: Plan) -> IntegrationStatus:
    """The status of a working integration on ``plan``: a Team plan is degraded by nature."""
    return "degraded" if plan == "team" else "active"


def plan_error(plan: Plan) -> SyncError | None:
    """The standing error a plan implies (Team: member list only)."""
    if plan == "team":
        return SyncError("insufficient_plan", TEAM_PLAN_MESSAGE)
    return None


def error_message(code: ErrorCode, message: str | None) -> str:
    return message or DEFAULT_ERROR_MESSAGES.get(code, "The sync failed.")


def follows(sequence: int, last: int) -> bool:
    """Whether an event numbered ``sequence`` is applied after the one numbered ``last``.

    Above the last one: yes. Equal or below: a redelivery or an overtaken event, ignored. Both
    0: an unordered event (schema version 1), applied in arrival order. Clocks play no part.
    """
    return sequence > last or sequence == last == 0


def apply_sync_status(current: Integration, event: SyncStatusChanged) -> Integration | None:
    """The integration after ``event``, or None when the event must be ignored.

    - Events that do not :func:`follow <follows>` the last applied one (by ``sequence``, which
      the syncer assigns per integration) are ignored; ``occurred_at`` is not compared.
    - ``last_error`` carries the event's reason while the sync is not running or idle.
    - ``status``: ``error``/``invalid_api_key`` fails the integration; ``insufficient_plan``
      (or ``metrics_disabled``, GitHub's metrics policy off) degrades it; a running or idle sync returns it to the plan's base status; other errors
      (rate limits, provider outages) leave it as it was.
    """
    if not follows(event.sequence, current.sync.status_sequence):
        return None
    last_error: SyncError | None = None
    if event.reason_code is not None and event.state not in ("idle", "syncing"):
        last_error = SyncError(event.reason_code, error_message(event.reason_code, event.message))
    status: IntegrationStatus
    if event.state == "error" and event.reason_code == "invalid_api_key":
        status = "failed"
    elif event.reason_code in {"insufficient_plan", "metrics_disabled"}:
        status = "degraded"
    elif event.state in ("idle", "syncing"):
        status = base_status(current.plan)
    else:
        status = current.status
    sync = SyncSummary(
        state=event.state,
        last_success_at=event.last_success_at or current.sync.last_success_at,
        data_through=event.data_through or current.sync.data_through,
        progress=event.progress.model_dump(mode="json") if event.progress else None,
        last_error=last_error,
        status_sequence=event.sequence,
    )
    return replace(current, status=status, sync=sync)
