"""Events for a GitHub Copilot integration made the way the syncer makes them (section 6b), from
what the sandbox serves: ``users-1-day`` report rows, the seats and the premium-request usage."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from koalr_contracts import DaySpend, Plan, SeatsSnapshot, UsageRecord

UNATTRIBUTED = "unattributed"


def usage_from_row(
    org_id: str, integration_id: UUID, row: dict[str, Any], *, fetched_at: datetime
) -> UsageRecord:
    """One ``users-1-day`` row as a usage record: ``models(r)`` by model, ``requests(r) =
    max(interactions, Σ models(r)) + CLI requests`` and the rest as ``unattributed``."""
    models: dict[str, int] = {}
    for cell in row.get("totals_by_model_feature", []):
        models[cell["model"]] = (
            models.get(cell["model"], 0) + cell["user_initiated_interaction_count"]
        )
    attributed = sum(models.values())
    cli = row.get("totals_by_cli") or {}
    requests = max(row["user_initiated_interaction_count"], attributed) + cli.get(
        "request_count", 0
    )
    if requests > attributed:
        models[UNATTRIBUTED] = requests - attributed
    return UsageRecord.model_validate(
        {
            "org_id": org_id,
            "integration_id": integration_id,
            "provider": "github_copilot",
            "day": row["day"],
            "member": {"login": row["user_login"], "external_id": str(row["user_id"])},
            "is_active": True,
            "requests": requests,
            "models": [{"model": m, "requests": r} for m, r in sorted(models.items())],
            "fetched_at": fetched_at,
        }
    )


def seats_snapshot(
    org_id: str,
    integration_id: UUID,
    plan: Plan,
    seats: list[dict[str, Any]],
    *,
    fetched_at: datetime,
) -> SeatsSnapshot:
    return SeatsSnapshot.model_validate(
        {
            "org_id": org_id,
            "integration_id": integration_id,
            "provider": "github_copilot",
            "plan": plan,
            "fetched_at": fetched_at,
            "seats": [
                {
                    "member": {
                        "login": seat["assignee"]["login"],
                        "external_id": str(seat["assignee"]["id"]),
                    },
                    "plan_type": seat.get("plan_type") or "unknown",
                    "created_at": seat["created_at"],
                    "pending_cancellation_date": seat.get("pending_cancellation_date"),
                    "last_activity_at": seat.get("last_activity_at"),
                    "last_activity_editor": seat.get("last_activity_editor"),
                }
                for seat in seats
            ],
        }
    )


def premium_spend(
    org_id: str,
    integration_id: UUID,
    day: date,
    usage: dict[str, Any],
    *,
    fetched_at: datetime,
) -> DaySpend:
    """A day's premium-request usage: Σ ``netAmount`` (dollars) times 100 cents."""
    dollars = sum((Decimal(str(i["netAmount"])) for i in usage["usageItems"]), Decimal(0))
    return DaySpend(
        org_id=org_id,
        integration_id=integration_id,
        provider="github_copilot",
        day=day,
        cents=dollars * 100,
        fetched_at=fetched_at,
    )
