"""The GitHub routes as functions of an organisation, "now" and the query.

Each returns a :class:`Reply` (status, JSON body or none, headers) or raises :class:`GithubError`.
Authentication, permissions, the policy, faults and rate limits are applied before (``handlers``).
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Final
from urllib.parse import urlencode

from koalr_sandbox.github.catalog import (
    BILLING_MODEL_NAME,
    DOCUMENTATION_URL,
    IDES,
    LATEST_WINDOW_DAYS,
    PREMIUM_REQUEST_CENTS,
    SPIKE_BILLING_MODEL,
)
from koalr_sandbox.github.model import Seat, day_of_epoch_s
from koalr_sandbox.github.reports import NDJSON_KINDS, FileCache, OrgView, ReportKind
from koalr_sandbox.units import iso_day, parse_iso_day

JsonObject = dict[str, Any]
SEATS_DEFAULT_PER_PAGE: Final[int] = 50
SEATS_MAX_PER_PAGE: Final[int] = 100
FILES_PREFIX: Final[str] = "/copilot-reports"


class GithubError(Exception):
    """An error answered in GitHub's shape: ``{"message", "documentation_url", "status"}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    @property
    def body(self) -> dict[str, str]:
        return {
            "message": self.message,
            "documentation_url": DOCUMENTATION_URL,
            "status": str(self.status),
        }


@dataclass(frozen=True, slots=True)
class Reply:
    body: object | None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Signed report links


def sign(secret: bytes, path: str, expires_s: int) -> str:
    return hmac.new(secret, f"{path}\n{expires_s}".encode(), hashlib.sha256).hexdigest()[:40]


def file_path(org: str, kind: ReportKind, first: int, last: int, part: int) -> str:
    extension = "ndjson" if kind in NDJSON_KINDS else "json"
    return f"{FILES_PREFIX}/{org}/{kind}/{iso_day(first)}/{iso_day(last)}/{part}.{extension}"


def signed_link(base_url: str, secret: bytes, path: str, expires_s: int) -> str:
    query = urlencode({"se": expires_s, "sig": sign(secret, path, expires_s)})
    return f"{base_url.rstrip('/')}{path}?{query}"


# ---------------------------------------------------------------------------------------------
# Reports


def parse_day(params: Mapping[str, str]) -> int:
    text = params.get("day")
    if text is None:
        raise GithubError(422, 'Invalid request.\n\n"day" wasn\'t supplied.')
    try:
        day: int | None = parse_iso_day(text)
    except ValueError:
        day = None
    if day is None or len(text) != len("YYYY-MM-DD"):
        raise GithubError(
            422, f'Invalid request.\n\n"day" must be a date as YYYY-MM-DD, not "{text}".'
        )
    return day


def envelope(links: list[str], first: int, last: int, *, one_day: bool) -> JsonObject:
    if one_day:
        return {"download_links": links, "report_day": iso_day(first)}
    return {
        "download_links": links,
        "report_start_day": iso_day(first),
        "report_end_day": iso_day(last),
    }


ONE_DAY_KINDS: Final[frozenset[ReportKind]] = frozenset(
    {"users-1-day", "organization-1-day", "user-teams-1-day"}
)


@dataclass(frozen=True, slots=True)
class LinkSigner:
    """Makes absolute, signed, expiring links to report files on this server."""

    base_url: str
    secret: bytes
    expires_s: int

    def link(self, path: str) -> str:
        return signed_link(self.base_url, self.secret, path, self.expires_s)


def report(
    view: OrgView, kind: ReportKind, params: Mapping[str, str], cache: FileCache, signer: LinkSigner
) -> Reply:
    """A report envelope: links to its files, or no links while it is not published."""
    org = view.org.login
    one_day = kind in ONE_DAY_KINDS
    if one_day:
        first = last = parse_day(params)
        ready = view.published(first)
    else:
        window = view.latest_window()
        ready = window is not None
        if window is None:
            last = day_of_epoch_s(view.horizon_s - view.org.config.publish_lag_s) - 1
            window = (last - LATEST_WINDOW_DAYS + 1, last)
        first, last = window
    if not ready:
        if one_day and view.org.config.empty_as_204:
            return Reply(None, 204)
        return Reply(envelope([], first, last, one_day=one_day))
    files = cache.files(view, kind, first, last)
    links = [
        signer.link(file_path(org, kind, first, last, part)) for part in range(1, len(files) + 1)
    ]
    return Reply(envelope(links, first, last, one_day=one_day))


# ---------------------------------------------------------------------------------------------
# Billing and seats


def _offset_instant(epoch_s: float, offset_minutes: int) -> str:
    zone = timezone(timedelta(minutes=offset_minutes))
    return datetime.fromtimestamp(math.floor(epoch_s), tz=UTC).astimezone(zone).isoformat()


def _simple_user(seat: Seat) -> JsonObject:
    return {
        "login": seat.login,
        "id": seat.user_id,
        "node_id": f"U_kgDO{seat.user_id:08X}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{seat.user_id}?v=4",
        "html_url": f"https://github.com/{seat.login}",
        "type": "User",
        "site_admin": False,
    }


def billing(view: OrgView) -> Reply:
    seats = view.listed_seats()
    today = view.today
    month_start = date.fromordinal(today).replace(day=1).toordinal()
    last_activity = view.model.last_activity_s(view.horizon_s)
    active = sum(1 for s in seats if day_of_epoch_s(last_activity[s.index]) >= month_start)
    return Reply(
        {
            "seat_breakdown": {
                "total": len(seats),
                "added_this_cycle": sum(1 for s in seats if s.created_day >= month_start),
                "pending_invitation": 0,
                "pending_cancellation": sum(
                    1 for s in seats if s.pending_cancellation_day is not None
                ),
                "active_this_cycle": active,
                "inactive_this_cycle": len(seats) - active,
            },
            "seat_management_setting": "assign_selected",
            "ide_chat": "enabled",
            "platform_chat": "enabled",
            "cli": "enabled",
            "public_code_suggestions": "block",
            "plan_type": view.org.config.plan,
        }
    )


def _positive(params: Mapping[str, str], name: str, default: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < 1:
        raise GithubError(422, f'Invalid request.\n\n"{name}" must be a positive integer.')
    return int(text)


def _link_header(url: str, page: int, pages: int, per_page: int) -> str:
    def link(number: int, rel: str) -> str:
        return f'<{url}?{urlencode({"per_page": per_page, "page": number})}>; rel="{rel}"'

    parts = []
    if page < pages:
        parts += [link(page + 1, "next"), link(pages, "last")]
    if page > 1:
        parts += [link(1, "first"), link(min(page - 1, pages), "prev")]
    return ", ".join(parts)


def seats_page(view: OrgView, params: Mapping[str, str], url: str) -> Reply:
    page = _positive(params, "page", 1)
    per_page = min(_positive(params, "per_page", SEATS_DEFAULT_PER_PAGE), SEATS_MAX_PER_PAGE)
    seats = view.listed_seats()
    pages = max(1, math.ceil(len(seats) / per_page))
    chosen = seats[(page - 1) * per_page : page * per_page]
    model = view.model
    offset = model.offset_minutes
    last_activity = model.last_activity_s(view.horizon_s)
    items = []
    for seat in chosen:
        last = int(last_activity[seat.index])
        ide = IDES[seat.ide]
        team = None if seat.assigning_team is None else model.teams[seat.assigning_team]
        items.append(
            {
                "created_at": _offset_instant(seat.created_s, offset),
                "updated_at": _offset_instant(seat.created_s, offset),
                "pending_cancellation_date": None
                if seat.pending_cancellation_day is None
                else iso_day(seat.pending_cancellation_day),
                "last_activity_at": None if last < 0 else _offset_instant(last, offset),
                "last_activity_editor": None
                if last < 0
                else f"{ide[0]}/{ide[2]}/{ide[3]}/{ide[4]}",
                "last_authenticated_at": _offset_instant(max(last, seat.created_s), offset),
                "plan_type": seat.plan_type,
                "assignee": _simple_user(seat),
                "organization": None,
                "assigning_team": None
                if team is None
                else {
                    "id": team.team_id,
                    "node_id": f"T_kwDO{team.team_id:08X}",
                    "slug": team.slug,
                    "name": team.name,
                    "description": None,
                    "privacy": "closed",
                    "permission": "pull",
                    "parent": None,
                },
            }
        )
    headers = {}
    if pages > 1:
        headers["link"] = _link_header(url, page, pages, per_page)
    return Reply({"total_seats": len(seats), "seats": items}, headers=headers)


# ---------------------------------------------------------------------------------------------
# Premium requests


def _int_param(params: Mapping[str, str], name: str, low: int, high: int, default: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise GithubError(400, f"{name} must be an integer from {low} to {high}.")
    return int(text)


def _dollars(quantity: int) -> float:
    return quantity * PREMIUM_REQUEST_CENTS / 100


def premium_usage(view: OrgView, params: Mapping[str, str]) -> Reply:
    today = date.fromordinal(view.today)
    year = _int_param(params, "year", 2000, 2100, today.year)
    month = _int_param(params, "month", 1, 12, today.month)
    days_in_month = calendar.monthrange(year, month)[1]
    day = _int_param(params, "day", 1, days_in_month, 0) if "day" in params else None
    user, model_filter, product = params.get("user"), params.get("model"), params.get("product")
    first = date(year, month, day or 1).toordinal()
    last = first if day is not None else date(year, month, days_in_month).toordinal()
    model = view.model
    last = min(last, view.billed_through())
    gross: dict[str, int] = {}
    discounted: dict[str, int] = {}
    if product is None or product.lower() == "copilot":
        for d in range(max(first, model.history_start), last + 1):
            for row in model.rows(d):
                if user is not None and model.seats[row.seat].login.lower() != user.lower():
                    continue
                for use in row.premium:
                    name = BILLING_MODEL_NAME[use.model]
                    if model_filter is not None and name.lower() != model_filter.lower():
                        continue
                    gross[name] = gross.get(name, 0) + use.gross
                    discounted[name] = discounted.get(name, 0) + use.discounted
            spike = model.premium_spikes.get(d, 0)
            spike_model = (
                model_filter is None or model_filter.lower() == SPIKE_BILLING_MODEL.lower()
            )
            if spike and user is None and spike_model:
                gross[SPIKE_BILLING_MODEL] = gross.get(SPIKE_BILLING_MODEL, 0) + spike
                discounted.setdefault(SPIKE_BILLING_MODEL, 0)
    items = [
        {
            "product": "Copilot",
            "sku": "Copilot Premium Request",
            "model": name,
            "unitType": "requests",
            "pricePerUnit": PREMIUM_REQUEST_CENTS / 100,
            "grossQuantity": gross[name],
            "grossAmount": _dollars(gross[name]),
            "discountQuantity": discounted[name],
            "discountAmount": _dollars(discounted[name]),
            "netQuantity": gross[name] - discounted[name],
            "netAmount": _dollars(gross[name] - discounted[name]),
        }
        for name in sorted(gross)
    ]
    period: JsonObject = {"year": year, "month": month}
    if day is not None:
        period["day"] = day
    body: JsonObject = {"timePeriod": period, "organization": view.org.login}
    if user is not None:
        body["user"] = user
    if model_filter is not None:
        body["model"] = model_filter
    body["usageItems"] = items
    return Reply(body)
