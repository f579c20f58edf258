"""GitHub's Copilot answers, read into small typed values.

Parsed leniently, as the report schema grows every few months: unknown fields are ignored and
every field except the keys is optional (a missing counter is 0, a missing breakdown empty).
Bodies are decoded with :func:`koalr_providers.http.decode_json`, so amounts arrive here as exact
``Decimal`` values and never pass through a float.

- billing (``/orgs/{org}/copilot/billing``): the org's ``plan_type``;
- seats (``/orgs/{org}/copilot/billing/seats``): one :class:`CopilotSeat` per seat;
- report envelopes (``…/copilot/metrics/reports/users-1-day``): the download links;
- report files: NDJSON, a JSON array or one JSON object, read into :class:`UserDayRow`;
- premium-request usage (``/organizations/{org}/settings/billing/premium_request/usage``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final, Literal

from koalr_contracts import Plan
from koalr_providers.errors import ProviderShapeError
from koalr_providers.reading import counter, json_list, json_object

SeatPlanType = Literal["business", "enterprise", "unknown"]
ORG_PLANS: Final[Mapping[str, Plan]] = {"business": "business", "enterprise": "enterprise"}
SEAT_PLANS: Final[Mapping[str, SeatPlanType]] = {
    "business": "business",
    "enterprise": "enterprise",
    "unknown": "unknown",
}


@dataclass(frozen=True, slots=True)
class CopilotSeat:
    login: str
    user_id: int | None
    plan_type: SeatPlanType
    created_at: datetime
    """When the seat was (last) granted, in UTC."""
    pending_cancellation_date: date | None
    last_activity_at: datetime | None
    """In UTC; ``None`` for a seat never used."""
    last_activity_editor: str | None


@dataclass(frozen=True, slots=True)
class SeatsPage:
    seats: tuple[CopilotSeat, ...]
    total_seats: int | None


@dataclass(frozen=True, slots=True)
class UserDayRow:
    """One user's row of a ``users-1-day`` report."""

    login: str
    user_id: int | None
    day: date
    interactions: int
    """``user_initiated_interaction_count``: explicit prompts."""
    model_interactions: Mapping[str, int] = field(default_factory=dict)
    """``totals_by_model_feature[].user_initiated_interaction_count`` summed by model."""
    feature_interactions: Mapping[str, int] = field(default_factory=dict)
    """``totals_by_feature[].user_initiated_interaction_count`` by feature."""
    cli_requests: int = 0
    """``totals_by_cli.request_count`` (0 when the user did not use the CLI)."""
    code_generations: int = 0
    code_acceptances: int = 0
    loc_suggested: int = 0
    loc_added: int = 0


def _optional_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _instant(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProviderShapeError(f"{name}: expected a timestamp, got {value!r}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ProviderShapeError(f"{name}: {value!r} is not a timestamp") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _day(value: Any, name: str) -> date | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProviderShapeError(f"{name}: expected a date, got {value!r}")
    try:
        return date.fromisoformat(value[:10])
    except ValueError as exc:
        raise ProviderShapeError(f"{name}: {value!r} is not a date") from exc


def _sum_by(items: Any, key: str, what: str) -> dict[str, int]:
    totals: dict[str, int] = {}
    if items is None:
        return totals
    for item in json_list(items, what):
        cell = json_object(item, what)
        name = _text(cell.get(key))
        if name is None:
            continue
        totals[name] = totals.get(name, 0) + counter(cell, "user_initiated_interaction_count")
    return totals


# --- GET /orgs/{org}/copilot/billing -----------------------------------------------------------


def parse_billing_plan(body: Any) -> Plan:
    """The org's plan from ``plan_type``; an org without one is priced as ``business``."""
    plan_type = json_object(body, "billing").get("plan_type")
    if plan_type is None:
        return "business"
    plan = ORG_PLANS.get(str(plan_type).lower())
    if plan is None:
        raise ProviderShapeError(f"plan_type: {plan_type!r} is neither business nor enterprise")
    return plan


# --- GET /orgs/{org}/copilot/billing/seats -----------------------------------------------------


def parse_seats(body: Any) -> SeatsPage:
    obj = json_object(body, "seats")
    seats: list[CopilotSeat] = []
    for item in json_list(obj.get("seats", []), "seats"):
        seat = json_object(item, "seat")
        assignee = seat.get("assignee")
        login = _text(assignee.get("login")) if isinstance(assignee, Mapping) else None
        if login is None:
            continue  # a seat without a user (a team or organisation assignee) has no member
        created = _instant(seat.get("created_at"), "created_at")
        if created is None:
            raise ProviderShapeError(f"the seat of {login} has no created_at")
        plan_type = SEAT_PLANS.get(str(seat.get("plan_type", "unknown")).lower(), "unknown")
        seats.append(
            CopilotSeat(
                login=login,
                user_id=_optional_int(assignee.get("id"))
                if isinstance(assignee, Mapping)
                else None,
                plan_type=plan_type,
                created_at=created,
                pending_cancellation_date=_day(
                    seat.get("pending_cancellation_date"), "pending_cancellation_date"
                ),
                last_activity_at=_instant(seat.get("last_activity_at"), "last_activity_at"),
                last_activity_editor=_text(seat.get("last_activity_editor")),
            )
        )
    return SeatsPage(tuple(seats), _optional_int(obj.get("total_seats")))


# --- report envelopes and files ----------------------------------------------------------------


def parse_download_links(body: Any) -> list[str]:
    links = json_list(json_object(body, "report").get("download_links"), "download_links")
    if not all(isinstance(link, str) and link for link in links):
        raise ProviderShapeError("download_links: expected a list of URLs")
    return [str(link) for link in links]


def parse_report_file(content: bytes) -> list[Mapping[str, Any]]:
    """The rows of a report file: NDJSON, a JSON array of rows, or one JSON object."""
    text = content.decode("utf-8-sig")
    try:
        whole = json.loads(text, parse_float=Decimal)
    except ValueError:
        whole = None
        rows: list[Any] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line, parse_float=Decimal))
                except ValueError as exc:
                    raise ProviderShapeError(f"line {number} is not JSON") from exc
    else:
        rows = list(whole) if isinstance(whole, list) else [whole]
    return [json_object(row, "report row") for row in rows]


def parse_user_day(row: Mapping[str, Any], day: date) -> UserDayRow | None:
    """A ``users-1-day`` row; ``None`` for a row of another day or without a login."""
    login = _text(row.get("user_login"))
    row_day = _day(row.get("day"), "day") or day
    if login is None or row_day != day:
        return None
    cli = row.get("totals_by_cli")
    return UserDayRow(
        login=login,
        user_id=_optional_int(row.get("user_id")),
        day=row_day,
        interactions=counter(row, "user_initiated_interaction_count"),
        model_interactions=_sum_by(
            row.get("totals_by_model_feature"), "model", "totals_by_model_feature"
        ),
        feature_interactions=_sum_by(row.get("totals_by_feature"), "feature", "totals_by_feature"),
        cli_requests=counter(cli, "request_count") if isinstance(cli, Mapping) else 0,
        code_generations=counter(row, "code_generation_activity_count"),
        code_acceptances=counter(row, "code_acceptance_activity_count"),
        loc_suggested=counter(row, "loc_suggested_to_add_sum"),
        loc_added=counter(row, "loc_added_sum"),
    )


# --- GET /organizations/{org}/settings/billing/premium_request/usage ---------------------------


def parse_premium_net_cents(body: Any) -> Decimal:
    """Σ ``netAmount`` (dollars) times 100 over ``usageItems``, exactly."""
    total = Decimal(0)
    for item in json_list(
        json_object(body, "premium request usage").get("usageItems", []), "usageItems"
    ):
        amount = json_object(item, "usage item").get("netAmount")
        if amount is None:
            continue
        if isinstance(amount, bool) or not isinstance(amount, int | Decimal | str):
            raise ProviderShapeError(f"netAmount: expected an amount, got {amount!r}")
        try:
            dollars = Decimal(amount)
        except ArithmeticError as exc:
            raise ProviderShapeError(f"netAmount: {amount!r} is not a number") from exc
        if not dollars.is_finite():
            raise ProviderShapeError(f"netAmount: {amount!r} is not a finite amount")
        total += dollars * 100
    return total
