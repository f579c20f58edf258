"""The Cursor Admin API's response bodies, read into small typed values.

Both the current and the older shapes are accepted (see the drift table in the API reference):
members as ``{"teamMembers": [...]}`` or a bare list, with or without ``id``/``isRemoved``;
daily usage with or without ``userId``/``day``/``pagination``; usage events with ``kind`` or
``kindLabel``, with ``chargedCents`` or (older) ``tokenUsage.totalCents`` + ``cursorTokenFee``;
spend with ``overallSpendCents`` or (older) a total ``spendCents``.

Bodies are parsed with :func:`koalr_providers.http.decode_json`, so money arrives
here as exact ``Decimal`` values and never passes through a float.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final

from koalr_providers.errors import ProviderShapeError
from koalr_providers.reading import counter, json_list, json_object

DAY_MS: Final[int] = 86_400_000
UNKNOWN_MODEL: Final[str] = "unknown"


@dataclass(frozen=True, slots=True)
class Member:
    email: str
    name: str | None
    external_id: str | None
    role: str | None
    is_removed: bool


@dataclass(frozen=True, slots=True)
class DailyUsageRow:
    email: str
    day: date
    is_active: bool
    chat: int
    agent: int
    composer: int
    cmdk: int
    lines_added: int
    lines_accepted: int
    tabs_shown: int
    tabs_accepted: int
    user_id: str | None


@dataclass(frozen=True, slots=True)
class DailyUsagePage:
    rows: tuple[DailyUsageRow, ...]
    has_next: bool
    skipped_rows: int


@dataclass(frozen=True, slots=True)
class UsageEvent:
    email: str | None
    timestamp_ms: int
    model: str
    charged_cents: Decimal
    day: date
    """The UTC day of ``timestamp_ms``."""


@dataclass(frozen=True, slots=True)
class UsageEventsPage:
    events: tuple[UsageEvent, ...]
    total: int | None
    has_next: bool


@dataclass(frozen=True, slots=True)
class SpendRow:
    email: str
    name: str | None
    external_id: str | None
    spend_cents: Decimal | None
    overall_spend_cents: Decimal


@dataclass(frozen=True, slots=True)
class SpendPage:
    rows: tuple[SpendRow, ...]
    cycle_start: date | None
    total_pages: int | None


def day_of_ms(epoch_ms: int) -> date:
    return datetime.fromtimestamp(epoch_ms // 1000, tz=UTC).date()


def day_start_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000


def _cents(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise ProviderShapeError(f"{name}: expected an amount of cents, got {value!r}")
    try:
        amount = Decimal(value)
    except ArithmeticError as exc:
        raise ProviderShapeError(f"{name}: {value!r} is not a number") from exc
    if not amount.is_finite():
        raise ProviderShapeError(f"{name}: {value!r} is not a finite amount")
    return amount


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ProviderShapeError(f"expected text or a number, got {value!r}")
    if isinstance(value, str | int | Decimal):
        text = str(value).strip()
        return text or None
    raise ProviderShapeError(f"expected text or a number, got {value!r}")


def _email(value: Any) -> str | None:
    text = _text(value)
    return text.lower() if text else None


def _has_next(pagination: Any) -> bool:
    """``hasNextPage`` when given, else ``page < totalPages`` / ``currentPage < numPages``."""
    if not isinstance(pagination, Mapping):
        return False
    has_next = pagination.get("hasNextPage")
    if isinstance(has_next, bool):
        return has_next
    page = pagination.get("page", pagination.get("currentPage"))
    pages = pagination.get("totalPages", pagination.get("numPages"))
    if isinstance(page, int) and isinstance(pages, int):
        return page < pages
    return False


# --- GET /teams/members ------------------------------------------------------------------------


def parse_members(body: Any) -> list[Member]:
    items = body if isinstance(body, list) else json_object(body, "members").get("teamMembers")
    members: list[Member] = []
    for item in json_list(items, "teamMembers"):
        row = json_object(item, "team member")
        email = _email(row.get("email"))
        if email is None:
            continue
        members.append(
            Member(
                email=email,
                name=_text(row.get("name")),
                external_id=_text(row.get("id")),
                role=_text(row.get("role")),
                is_removed=row.get("isRemoved") is True,
            )
        )
    return members


# --- POST /teams/daily-usage-data --------------------------------------------------------------


def _row_day(row: Mapping[str, Any]) -> date:
    text = row.get("day")
    if isinstance(text, str):
        try:
            return date.fromisoformat(text[:10])
        except ValueError as exc:
            raise ProviderShapeError(f"day: {text!r} is not a date") from exc
    epoch = row.get("date")
    if isinstance(epoch, bool) or not isinstance(epoch, int | Decimal | str):
        raise ProviderShapeError("a daily-usage row has neither `day` nor `date`")
    try:
        return day_of_ms(int(epoch))
    except (ValueError, ArithmeticError, OverflowError, OSError) as exc:
        raise ProviderShapeError(f"date: {epoch!r} is not epoch milliseconds") from exc


_REQUEST_COUNTERS: Final = (
    "chatRequests",
    "agentRequests",
    "composerRequests",
    "cmdkUsages",
    "subscriptionIncludedReqs",
    "usageBasedReqs",
    "apiKeyReqs",
)


def parse_daily_usage(body: Any) -> DailyUsagePage:
    obj = json_object(body, "daily usage")
    rows: list[DailyUsageRow] = []
    skipped = 0
    for item in json_list(obj.get("data"), "data"):
        row = json_object(item, "daily-usage row")
        email = _email(row.get("email"))
        if email is None:
            skipped += 1
            continue
        active = row.get("isActive")
        if not isinstance(active, bool):
            # Older unpaginated answers list active users only and may omit the flag.
            active = any(counter(row, n) for n in (*_REQUEST_COUNTERS, "totalTabsAccepted"))
        rows.append(
            DailyUsageRow(
                email=email,
                day=_row_day(row),
                is_active=active,
                chat=counter(row, "chatRequests"),
                agent=counter(row, "agentRequests"),
                composer=counter(row, "composerRequests"),
                cmdk=counter(row, "cmdkUsages"),
                lines_added=counter(row, "totalLinesAdded"),
                lines_accepted=counter(row, "acceptedLinesAdded"),
                tabs_shown=counter(row, "totalTabsShown"),
                tabs_accepted=counter(row, "totalTabsAccepted"),
                user_id=_text(row.get("userId")),
            )
        )
    return DailyUsagePage(tuple(rows), _has_next(obj.get("pagination")), skipped)


# --- POST /teams/filtered-usage-events ---------------------------------------------------------


def _event_cents(row: Mapping[str, Any]) -> Decimal:
    charged = row.get("chargedCents")
    if charged is not None:
        return _cents(charged, "chargedCents")
    # Older shape: model cost plus the Cursor Token Fee; 0 for calls that are not token-based.
    total = Decimal(0)
    usage = row.get("tokenUsage")
    if isinstance(usage, Mapping) and usage.get("totalCents") is not None:
        total += _cents(usage["totalCents"], "tokenUsage.totalCents")
    fee = row.get("cursorTokenFee")
    if fee is not None:
        total += _cents(fee, "cursorTokenFee")
    return total


def _timestamp_ms(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise ProviderShapeError(f"timestamp: expected epoch milliseconds, got {value!r}")
    try:
        return int(Decimal(value))
    except ArithmeticError as exc:
        raise ProviderShapeError(f"timestamp: {value!r} is not epoch milliseconds") from exc


def usage_event(
    email: str | None, timestamp_ms: int, model: str, charged_cents: Decimal
) -> UsageEvent:
    return UsageEvent(email, timestamp_ms, model, charged_cents, day_of_ms(timestamp_ms))


def parse_usage_events(body: Any) -> UsageEventsPage:
    obj = json_object(body, "usage events")
    events: list[UsageEvent] = []
    days: dict[int, date] = {}  # a page spans few days: convert each once
    for item in json_list(obj.get("usageEvents"), "usageEvents"):
        row = json_object(item, "usage event")
        timestamp = _timestamp_ms(row.get("timestamp"))
        day_number = timestamp // DAY_MS
        day = days.get(day_number)
        if day is None:
            day = days[day_number] = day_of_ms(timestamp)
        events.append(
            UsageEvent(
                email=_email(row.get("userEmail")),
                timestamp_ms=timestamp,
                model=_text(row.get("model")) or UNKNOWN_MODEL,
                charged_cents=_event_cents(row),
                day=day,
            )
        )
    total = obj.get("totalUsageEventsCount")
    return UsageEventsPage(
        events=tuple(events),
        total=total if isinstance(total, int) and not isinstance(total, bool) else None,
        has_next=_has_next(obj.get("pagination")),
    )


# --- POST /teams/spend -------------------------------------------------------------------------


def parse_spend(body: Any) -> SpendPage:
    obj = json_object(body, "spend")
    rows: list[SpendRow] = []
    for item in json_list(obj.get("teamMemberSpend"), "teamMemberSpend"):
        row = json_object(item, "member spend")
        email = _email(row.get("email"))
        if email is None:
            continue
        spend = row.get("spendCents")
        overall = row.get("overallSpendCents")
        if overall is not None:
            spend_cents = None if spend is None else _cents(spend, "spendCents")
            overall_cents = _cents(overall, "overallSpendCents")
        else:
            # Older shape: `spendCents` was the total of the period.
            spend_cents = None
            overall_cents = Decimal(0) if spend is None else _cents(spend, "spendCents")
        rows.append(
            SpendRow(
                email=email,
                name=_text(row.get("name")),
                external_id=_text(row.get("userId")),
                spend_cents=spend_cents,
                overall_spend_cents=overall_cents,
            )
        )
    cycle = obj.get("subscriptionCycleStart")
    cycle_start = None
    if cycle is not None and not isinstance(cycle, bool) and isinstance(cycle, int | Decimal):
        cycle_start = day_of_ms(int(cycle))
    pages = obj.get("totalPages")
    return SpendPage(
        rows=tuple(rows),
        cycle_start=cycle_start,
        total_pages=pages if isinstance(pages, int) and not isinstance(pages, bool) else None,
    )
