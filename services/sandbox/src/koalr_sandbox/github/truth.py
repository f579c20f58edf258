"""Ground truth of an organisation, by the definitions of the Copilot integration.

Computed from the data model (the same user-days, seats and premium requests the routes render),
never from the served files, so comparing a sync with it checks the whole path.
"""

from __future__ import annotations

import calendar
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction
from typing import Any, Final

from koalr_sandbox.github.catalog import PREMIUM_REQUEST_CENTS, SEAT_PRICE_CENTS, OrgPlan
from koalr_sandbox.github.model import DAY_S, Seat, UserDay
from koalr_sandbox.github.reports import OrgView
from koalr_sandbox.units import UNITS_PER_CENT, cents_str, iso_day, iso_instant

JsonObject = dict[str, Any]
UNATTRIBUTED: Final[str] = "unattributed"
ACTIVE_WINDOW_S: Final[int] = 30 * DAY_S


def seat_price_cents(seat: Seat, org_plan: OrgPlan) -> int:
    """List price per month: by the seat's plan type; ``unknown`` takes the org's plan."""
    return SEAT_PRICE_CENTS[org_plan if seat.plan_type == "unknown" else seat.plan_type]


def seat_day_cents(seat: Seat, org_plan: OrgPlan, day: int) -> Fraction:
    """What a seat costs on ``day``: the monthly price over the days of that month."""
    if not seat.billed_on(day):
        return Fraction(0)
    d = date.fromordinal(day)
    return Fraction(seat_price_cents(seat, org_plan), calendar.monthrange(d.year, d.month)[1])


def requests_of(row: UserDay) -> tuple[int, dict[str, int]]:
    """``requests(r)`` and the row's model breakdown, ``unattributed`` included when positive."""
    models = row.model_interactions()
    attributed = sum(models.values())
    requests = max(row.totals.interactions, attributed) + (row.cli.requests if row.cli else 0)
    if requests > attributed:
        models[UNATTRIBUTED] = requests - attributed
    return requests, models


def premium_cents_of(row: UserDay) -> int:
    return sum((p.gross - p.discounted) * PREMIUM_REQUEST_CENTS for p in row.premium)


def money(value: Fraction | int) -> str:
    """An exact decimal string, rounded to 1e-5 cent when the value has more digits."""
    return cents_str(round(Fraction(value) * UNITS_PER_CENT))


@dataclass
class MemberTotals:
    active_days: int = 0
    requests: int = 0
    models: Counter[str] = field(default_factory=Counter)
    seat_cents: Fraction = Fraction(0)
    premium_cents: int = 0

    def as_json(self) -> JsonObject:
        ranked = sorted(self.models.items(), key=lambda item: (-item[1], item[0]))
        top = next((m for m, _ in ranked if m != UNATTRIBUTED), None)
        return {
            "active_days": self.active_days,
            "requests": self.requests,
            "models": dict(sorted(self.models.items())),
            "top_model": top,
            "spend_cents": money(self.seat_cents),
            "premium_cents": money(self.premium_cents),
        }


def github_truth(view: OrgView, first: int, last: int) -> JsonObject:
    model = view.model
    plan = view.org.config.plan
    seats = view.listed_seats()
    members: dict[str, MemberTotals] = {seat.login: MemberTotals() for seat in seats}
    billed_through = view.billed_through()
    days: JsonObject = {}
    for day in range(first, last + 1):
        reported = view.published(day)
        rows = model.rows(day) if model.history_start <= day <= view.today else ()
        dau, requests, premium = 0, 0, 0
        if model.history_start <= day <= billed_through:
            # A premium spike is billed to the organisation, not to a member.
            premium += model.premium_spikes.get(day, 0) * PREMIUM_REQUEST_CENTS
        models: Counter[str] = Counter()
        for row in rows:
            login = model.seats[row.seat].login
            member = members.setdefault(login, MemberTotals())
            if day <= billed_through:
                cents = premium_cents_of(row)
                premium += cents
                member.premium_cents += cents
            if not reported:
                continue
            row_requests, row_models = requests_of(row)
            dau += 1
            requests += row_requests
            models.update(row_models)
            member.active_days += 1
            member.requests += row_requests
            member.models.update(row_models)
        seat_cents = Fraction(0)
        for seat in seats:
            cost = seat_day_cents(seat, plan, day)
            seat_cents += cost
            members[seat.login].seat_cents += cost
        days[iso_day(day)] = {
            "dau": dau,
            "requests": requests,
            "models": dict(sorted(models.items())),
            "premium_cents": money(premium),
            "seat_cents": money(seat_cents),
            "reported": reported,
        }
    horizon = view.horizon_s
    last_activity = model.last_activity_s(horizon)
    listed = [seat.index for seat in seats]
    data_through = view.data_through
    return {
        "org": view.org.login,
        "start": iso_day(first),
        "end": iso_day(last),
        "as_of": iso_instant(view.now_s),
        "currency": "USD",
        "days": days,
        "members": {login: members[login].as_json() for login in sorted(members)},
        "seats": {
            "total": len(seats),
            "never_used": sum(1 for i in listed if last_activity[i] < 0),
            "active_30d": sum(1 for i in listed if last_activity[i] >= horizon - ACTIVE_WINDOW_S),
            "monthly_cents": money(sum(seat_price_cents(seat, plan) for seat in seats)),
        },
        "data_through": None if data_through is None else iso_day(data_through),
    }
