"""The Cursor endpoints as functions of a team, "now" and the request.

Each function returns the JSON body as plain Python data or raises :class:`ApiError` with the
documented body. Authentication, plan gating, faults and rate limits are applied before these
run (see ``handlers``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from koalr_sandbox.catalog import (
    API_KEY_LABEL,
    MODEL_NAMES,
    USAGE_BASED_LABEL,
    Billing,
    Feature,
    Surface,
    included_label,
)
from koalr_sandbox.data import DayEvents, DaySummary, mix
from koalr_sandbox.errors import bad_request
from koalr_sandbox.roster import Member
from koalr_sandbox.teams import Team
from koalr_sandbox.units import (
    DAY_MS,
    UNITS_PER_CENT,
    day_of_ms,
    day_of_s,
    day_start_ms,
    iso_day,
)

JsonObject = dict[str, Any]
I64 = npt.NDArray[np.int64]

MAX_RANGE_DAYS: Final[int] = 30
LEGACY_MAX_RANGE_DAYS: Final[int] = 90
EVENTS_MAX_PAGE_SIZE: Final[int] = 1000
EVENTS_DEFAULT_PAGE_SIZE: Final[int] = 100
LEGACY_EVENTS_DEFAULT_PAGE_SIZE: Final[int] = 10
DEFAULT_PAGE_SIZE: Final[int] = 100
EVENTS_DEFAULT_DAYS: Final[int] = 7
ANALYTICS_DEFAULT_START: Final[str] = "7d"
HOSTING_TYPES: Final[frozenset[str]] = frozenset(
    {"CLOUD", "SELF_HOSTED", "SELF_HOSTED_POOL", "SELF_HOSTED_MACHINE"}
)
_UUID_SALT: Final = np.uint64(0x6A09E667F3BCC909)
_RELATIVE_DAYS: Final = re.compile(r"^(\d{1,4})d$")


@dataclass(frozen=True, slots=True)
class View:
    """A team as seen at one instant."""

    team: Team
    now_s: float

    @property
    def now_ms(self) -> int:
        return math.floor(self.now_s * 1000)

    @property
    def cutoff_ms(self) -> int:
        """Events at or before this instant are visible."""
        cutoff = self.now_ms - self.team.config.visibility_delay_s * 1000
        frozen = self.team.config.visible_until_ms
        return cutoff if frozen is None else min(cutoff, frozen)

    @property
    def today(self) -> int:
        return day_of_s(self.now_s)

    @property
    def legacy(self) -> bool:
        return self.team.config.legacy_shapes

    @property
    def members(self) -> tuple[Member, ...]:
        return self.team.data.roster.members

    def summary(self, day: int) -> DaySummary:
        return self.team.data.summary(day, self.cutoff_ms)

    def history_days(self, first_day: int, last_day: int) -> range:
        """Days of ``[first_day, last_day]`` that have data: from the history start to today."""
        return range(max(first_day, self.team.roster_start), min(last_day, self.today) + 1)


# ---------------------------------------------------------------------------------------------
# Request parsing


def _epoch_ms(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad_request(f"{name} must be a number of epoch milliseconds")
    return math.floor(value)


def _positive_int(body: Mapping[str, Any], name: str, default: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise bad_request(f"{name} must be a positive integer")
    if value < 1:
        raise bad_request(f"{name} must be a positive integer")
    return int(value)


def _optional_str(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(f"{name} must be a string")
    return value


def _choice(body: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = _optional_str(body, name)
    if value is None:
        return default
    if value not in allowed:
        raise bad_request(f"{name} must be one of: {', '.join(allowed)}")
    return value


def _pages(total: int, page_size: int) -> int:
    return -(-total // page_size)


# ---------------------------------------------------------------------------------------------
# GET /teams/members


def team_members(view: View) -> JsonObject:
    joined = [m for m in view.members if m.join_day <= view.today]
    if view.legacy:
        items: list[JsonObject] = [
            {"name": m.name, "email": m.email, "role": m.role}
            for m in joined
            if not m.is_removed(view.today)
        ]
    else:
        items = [
            {
                "id": m.user_id,
                "name": m.name,
                "email": m.email,
                "role": m.role,
                "isRemoved": m.is_removed(view.today),
            }
            for m in joined
        ]
    return {"teamMembers": items}


# ---------------------------------------------------------------------------------------------
# POST /teams/daily-usage-data


def _usage_rows(view: View, summary: DaySummary, indices: list[int]) -> list[JsonObject]:
    if not indices:
        return []
    sel = np.asarray(indices, dtype=np.int64)

    def col(values: I64) -> list[int]:
        result: list[int] = values[sel].tolist()
        return result

    requests = col(summary.requests)
    chat, agent, composer, cmdk = (col(summary.by_feature[f]) for f in Feature)
    included, usage_based, api_key = (col(summary.by_billing[b]) for b in Billing)
    applies, accepts = col(summary.applies), col(summary.accepts)
    lines_added, lines_deleted = col(summary.lines_added), col(summary.lines_deleted)
    accepted_added = col(summary.accepted_lines_added)
    accepted_deleted = col(summary.accepted_lines_deleted)
    tabs_shown, tabs_accepted = col(summary.tabs_shown), col(summary.tabs_accepted)
    bugbot, most_used = col(summary.bugbot), col(summary.most_used_model)
    active: list[bool] = summary.active[sel].tolist()
    day_ms = day_start_ms(summary.day)
    day_iso = iso_day(summary.day)
    members = view.members
    legacy = view.legacy
    rows: list[JsonObject] = []
    for i, index in enumerate(indices):
        member = members[index]
        row: JsonObject = {} if legacy else {"userId": member.user_number, "day": day_iso}
        row |= {
            "date": day_ms,
            "email": member.email,
            "isActive": active[i],
            "totalLinesAdded": lines_added[i],
            "totalLinesDeleted": lines_deleted[i],
            "acceptedLinesAdded": accepted_added[i],
            "acceptedLinesDeleted": accepted_deleted[i],
            "totalApplies": applies[i],
            "totalAccepts": accepts[i],
            "totalRejects": applies[i] - accepts[i],
            "totalTabsShown": tabs_shown[i],
            "totalTabsAccepted": tabs_accepted[i],
            "composerRequests": composer[i],
            "chatRequests": chat[i],
            "agentRequests": agent[i],
            "cmdkUsages": cmdk[i],
            "subscriptionIncludedReqs": included[i],
            "apiKeyReqs": api_key[i],
            "usageBasedReqs": usage_based[i],
            "bugbotUsages": bugbot[i],
            "mostUsedModel": MODEL_NAMES[most_used[i]] if requests[i] else None,
            "applyMostUsedExtension": member.apply_extension if applies[i] else None,
            "tabMostUsedExtension": member.tab_extension if tabs_shown[i] else None,
            "clientVersion": member.client_version if active[i] else None,
        }
        rows.append(row)
    return rows


def daily_usage(view: View, body: Mapping[str, Any]) -> JsonObject:
    start = _epoch_ms(body, "startDate")
    end = _epoch_ms(body, "endDate")
    if start is None or end is None:
        raise bad_request("startDate and endDate are required (epoch milliseconds)")
    if start > end:
        raise bad_request("startDate must not be after endDate")
    max_days = LEGACY_MAX_RANGE_DAYS if view.legacy else MAX_RANGE_DAYS
    if end - start > max_days * DAY_MS:
        raise bad_request(
            f"Date range cannot exceed {max_days} days; split the request into smaller windows"
        )
    paginated = not view.legacy and ("page" in body or "pageSize" in body)
    page = _positive_int(body, "page", 1) if paginated else 1
    page_size = _positive_int(body, "pageSize", DEFAULT_PAGE_SIZE) if paginated else 0
    first_day, last_day = day_of_ms(start), day_of_ms(end)
    days = view.history_days(first_day, last_day)
    period = {"startDate": start, "endDate": end}

    if not paginated:
        data: list[JsonObject] = []
        for day in days:
            summary = view.summary(day)
            data.extend(_usage_rows(view, summary, np.flatnonzero(summary.active).tolist()))
        return {"data": data, "period": period}

    members = (
        [m.index for m in view.members if m.overlaps(days.start, days.stop - 1)] if days else []
    )
    page_members = members[(page - 1) * page_size : page * page_size]
    data = []
    for day in days:
        summary = view.summary(day)
        present = [i for i in page_members if summary.in_membership[i]]
        data.extend(_usage_rows(view, summary, present))
    total_pages = _pages(len(members), page_size)
    return {
        "data": data,
        "period": period,
        "pagination": {
            "page": page,
            "pageSize": page_size,
            "totalUsers": len(members),
            "totalPages": total_pages,
            "hasNextPage": page < total_pages,
            "hasPreviousPage": page > 1,
        },
    }


# ---------------------------------------------------------------------------------------------
# POST /teams/spend


@dataclass(frozen=True, slots=True)
class CycleTotals:
    start_day: int
    members: list[int]  # indices of members with a membership overlapping the cycle
    overall_units: I64
    usage_based_units: I64
    usage_based_requests: I64


def cycle_totals(view: View) -> CycleTotals:
    """Per-member charges since the start of the current billing cycle (visible events)."""
    start_day = view.team.cycle_start(view.today)
    size = len(view.members)
    overall = np.zeros(size, dtype=np.int64)
    usage_based = np.zeros(size, dtype=np.int64)
    usage_based_requests = np.zeros(size, dtype=np.int64)
    for day in view.history_days(start_day, view.today):
        summary = view.summary(day)
        overall += summary.charged_units
        usage_based += summary.usage_based_charged_units
        usage_based_requests += summary.by_billing[Billing.USAGE_BASED]
    members = [m.index for m in view.members if m.overlaps(start_day, view.today)]
    return CycleTotals(start_day, members, overall, usage_based, usage_based_requests)


def _limit_dollars(view: View, member: Member) -> int:
    if member.hard_limit_override_dollars:
        return member.hard_limit_override_dollars
    if member.monthly_limit_dollars is not None:
        return member.monthly_limit_dollars
    return view.team.data.roster.default_limit_dollars


def spend(view: View, body: Mapping[str, Any]) -> JsonObject:
    search = _optional_str(body, "searchTerm")
    sort_by = _choice(body, "sortBy", ("amount", "date", "user"), "date")
    direction = _choice(body, "sortDirection", ("asc", "desc"), "desc")
    page = _positive_int(body, "page", 1)
    page_size = _positive_int(body, "pageSize", DEFAULT_PAGE_SIZE)
    totals = cycle_totals(view)
    members = [view.members[i] for i in totals.members]
    if search:
        needle = search.lower()
        members = [m for m in members if needle in m.name.lower() or needle in m.email.lower()]
    overall = totals.overall_units.tolist()
    members.sort(key=lambda m: m.index)
    if sort_by == "amount":
        members.sort(key=lambda m: overall[m.index], reverse=direction == "desc")
    elif sort_by == "user":
        members.sort(key=lambda m: (m.name.lower(), m.email), reverse=direction == "desc")
    else:
        members.sort(key=lambda m: m.join_day, reverse=direction == "desc")
    page_members = members[(page - 1) * page_size : page * page_size]
    usage_based = totals.usage_based_units.tolist()
    premium = totals.usage_based_requests.tolist()
    items: list[JsonObject] = []
    for m in page_members:
        if view.legacy:
            items.append(
                {
                    "spendCents": overall[m.index] / UNITS_PER_CENT,
                    "fastPremiumRequests": premium[m.index],
                    "name": m.name,
                    "email": m.email,
                    "role": m.role,
                    "hardLimitOverrideDollars": m.hard_limit_override_dollars,
                }
            )
        else:
            items.append(
                {
                    "userId": m.user_id,
                    "name": m.name,
                    "email": m.email,
                    "role": m.role,
                    "spendCents": usage_based[m.index] / UNITS_PER_CENT,
                    "overallSpendCents": overall[m.index] / UNITS_PER_CENT,
                    "fastPremiumRequests": premium[m.index],
                    "hardLimitOverrideDollars": m.hard_limit_override_dollars,
                    "monthlyLimitDollars": m.monthly_limit_dollars,
                    "effectivePerUserLimitDollars": _limit_dollars(view, m),
                }
            )
    return {
        "teamMemberSpend": items,
        "subscriptionCycleStart": day_start_ms(totals.start_day),
        "totalMembers": len(members),
        "totalPages": _pages(len(members), page_size),
    }


# ---------------------------------------------------------------------------------------------
# POST /teams/filtered-usage-events


@dataclass(frozen=True, slots=True)
class EventQuery:
    start_ms: int
    end_ms: int
    member: int | None
    nobody: bool  # a filter that matches no event of the sandbox
    cloud_agent: str | None
    hosting_cloud_only: bool

    @property
    def needs_scan(self) -> bool:
        return self.cloud_agent is not None or self.hosting_cloud_only


def _member_filter(view: View, body: Mapping[str, Any]) -> tuple[int | None, bool]:
    """The member selected by ``email`` and/or ``userId``, and whether nobody can match."""
    roster = view.team.data.roster
    member: int | None = None
    nobody = False
    email = _optional_str(body, "email")
    if email is not None:
        member = roster.by_email.get(email.lower())
        nobody = member is None
    user_id = body.get("userId")
    if user_id is None:
        return member, nobody
    if isinstance(user_id, float) and user_id.is_integer():
        user_id = int(user_id)
    if isinstance(user_id, bool) or not isinstance(user_id, int | str):
        raise bad_request("userId must be a number")
    found = (
        roster.by_user_number.get(user_id)
        if isinstance(user_id, int)
        else roster.by_user_id.get(user_id)
    )
    if found is None or (member is not None and found != member):
        nobody = True
    return found, nobody


def _event_query(view: View, body: Mapping[str, Any]) -> EventQuery:
    start = _epoch_ms(body, "startDate")
    end = _epoch_ms(body, "endDate")
    if end is None:
        end = view.now_ms
    if start is None:
        start = end - EVENTS_DEFAULT_DAYS * DAY_MS
    if start > end:
        raise bad_request("startDate must not be after endDate")
    if end - start > MAX_RANGE_DAYS * DAY_MS:
        raise bad_request(
            f"Date range cannot exceed {MAX_RANGE_DAYS} days; split the request into smaller windows"
        )
    member, nobody = _member_filter(view, body)
    for name in ("serviceAccountId", "automationId"):
        if _optional_str(body, name) is not None:
            nobody = True  # the sandbox has no service accounts or automations
    hosting = _optional_str(body, "hostingType")
    if hosting is not None and hosting not in HOSTING_TYPES:
        raise bad_request(f"hostingType must be one of: {', '.join(sorted(HOSTING_TYPES))}")
    if hosting is not None and hosting != "CLOUD":
        nobody = True
    return EventQuery(
        start_ms=start,
        end_ms=end,
        member=member,
        nobody=nobody,
        cloud_agent=_optional_str(body, "cloudAgentId"),
        hosting_cloud_only=hosting == "CLOUD",
    )


def _conversation_ids(keys: npt.NDArray[np.uint64]) -> tuple[list[int], list[int]]:
    return mix(keys).tolist(), mix(keys ^ _UUID_SALT).tolist()


def _uuid(high: int, low: int) -> str:
    h = f"{high:016x}{low:016x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[low >> 62]}{h[17:20]}-{h[20:32]}"


def _cloud_agent_id(high: int, low: int) -> str:
    return "bc-" + _uuid(low, high)


def _selection(view: View, events: DayEvents, query: EventQuery) -> I64:
    """Positions (newest first) of the day's events that match the query."""
    hi = min(query.end_ms, view.cutoff_ms)
    start, stop = events.window(query.start_ms, hi)
    positions = np.arange(start, stop, dtype=np.int64)
    if query.member is not None:
        positions = positions[events.member[start:stop] == query.member]
    if query.needs_scan:
        positions = positions[events.surface[positions] == Surface.CLOUD]
        if query.cloud_agent not in {None, "*"}:
            high, low = _conversation_ids(events.conversation[positions])
            ids = [_cloud_agent_id(h, lo) for h, lo in zip(high, low, strict=True)]
            positions = positions[np.asarray([i == query.cloud_agent for i in ids], dtype=bool)]
    return positions


def _day_count(view: View, day: int, query: EventQuery) -> int:
    hi = min(query.end_ms, view.cutoff_ms)
    whole_day = query.start_ms <= day_start_ms(day) and day_start_ms(day) + DAY_MS - 1 <= hi
    if whole_day and not query.needs_scan:
        requests = view.summary(day).requests
        return int(requests.sum() if query.member is None else requests[query.member])
    return int(_selection(view, view.team.data.events(day), query).shape[0])


def _event_rows(view: View, events: DayEvents, positions: I64) -> list[JsonObject]:
    def col(values: npt.NDArray[Any]) -> list[Any]:
        result: list[Any] = values[positions].tolist()
        return result

    timestamps = col(events.timestamp_ms)
    member = col(events.member)
    model = col(events.model)
    billing = col(events.billing)
    surface = col(events.surface)
    token_based = col(events.token_based)
    max_mode = col(events.max_mode)
    fee_applies = col(events.fee_applies)
    input_tokens, output_tokens = col(events.input_tokens), col(events.output_tokens)
    cache_write, cache_read = col(events.cache_write_tokens), col(events.cache_read_tokens)
    cost = (events.cost_units[positions] / UNITS_PER_CENT).tolist()
    fee = (events.fee_units[positions] / UNITS_PER_CENT).tolist()
    charged = (events.charged_units[positions] / UNITS_PER_CENT).tolist()
    request_costs = (events.request_cost_tenths[positions] / 10).tolist()
    high, low = _conversation_ids(events.conversation[positions])
    labels = (included_label(view.team.config.plan), USAGE_BASED_LABEL, API_KEY_LABEL)
    members = view.members
    legacy = view.legacy
    rows: list[JsonObject] = []
    for i in range(len(timestamps)):
        row: JsonObject = {
            "timestamp": str(timestamps[i]),
            "userEmail": members[member[i]].email,
        }
        if not legacy:
            row["conversationId"] = _uuid(high[i], low[i])
        row["model"] = MODEL_NAMES[model[i]]
        row["kindLabel" if legacy else "kind"] = labels[billing[i]]
        row["maxMode"] = max_mode[i]
        row["requestsCosts"] = request_costs[i]
        row["isTokenBasedCall"] = token_based[i]
        if legacy:
            row["isFreeBugbot"] = False
        else:
            row["isChargeable"] = token_based[i]
            row["isHeadless"] = surface[i] != Surface.IDE
        if token_based[i]:
            row["tokenUsage"] = {
                "inputTokens": input_tokens[i],
                "outputTokens": output_tokens[i],
                "cacheWriteTokens": cache_write[i],
                "cacheReadTokens": cache_read[i],
                "totalCents": cost[i],
            }
        if not legacy:
            row["chargedCents"] = charged[i]
        if fee_applies[i]:
            row["cursorTokenFee"] = fee[i]
        if surface[i] == Surface.CLOUD and not legacy:
            row["cloudAgentId"] = _cloud_agent_id(high[i], low[i])
        rows.append(row)
    return rows


def _newest_first(view: View, query: EventQuery) -> Iterator[int]:
    first = max(day_of_ms(query.start_ms), view.team.roster_start)
    last = min(day_of_ms(min(query.end_ms, view.cutoff_ms)), view.today)
    return iter(range(last, first - 1, -1))


def usage_events(view: View, body: Mapping[str, Any]) -> JsonObject:
    query = _event_query(view, body)
    page = _positive_int(body, "page", 1)
    default_size = LEGACY_EVENTS_DEFAULT_PAGE_SIZE if view.legacy else EVENTS_DEFAULT_PAGE_SIZE
    page_size = _positive_int(body, "pageSize", default_size)
    if page_size > EVENTS_MAX_PAGE_SIZE:
        raise bad_request(f"pageSize must be at most {EVENTS_MAX_PAGE_SIZE}")
    counts: list[tuple[int, int]] = []
    if not query.nobody:
        counts = [(day, _day_count(view, day, query)) for day in _newest_first(view, query)]
    total = sum(count for _, count in counts)
    skip = (page - 1) * page_size
    wanted = page_size
    rows: list[JsonObject] = []
    for day, count in counts:
        if wanted == 0:
            break
        if skip >= count:
            skip -= count
            continue
        events = view.team.data.events(day)
        positions = _selection(view, events, query)[skip : skip + wanted]
        skip = 0
        wanted -= int(positions.shape[0])
        rows.extend(_event_rows(view, events, positions))
    pages = _pages(total, page_size)
    return {
        "totalUsageEventsCount": total,
        "pagination": {
            "numPages": pages,
            "currentPage": page,
            "pageSize": page_size,
            "hasNextPage": page < pages,
            "hasPreviousPage": page > 1,
        },
        "usageEvents": rows,
        "period": {"startDate": query.start_ms, "endDate": query.end_ms},
    }


# ---------------------------------------------------------------------------------------------
# GET /analytics/team/*


def _analytics_day(view: View, text: str, name: str) -> int:
    value = text.strip().lower()
    if value in {"today", "now"}:
        return view.today
    if value == "yesterday":
        return view.today - 1
    relative = _RELATIVE_DAYS.match(value)
    if relative:
        return view.today - int(relative.group(1))
    try:
        if len(value) == 10:
            return date.fromisoformat(value).toordinal()
        return datetime.fromisoformat(text.strip()).date().toordinal()
    except ValueError:
        raise bad_request(
            f"Invalid {name}: use YYYY-MM-DD, an ISO timestamp, 'today', 'yesterday' or 'Nd'"
        ) from None


@dataclass(frozen=True, slots=True)
class AnalyticsQuery:
    first_day: int
    last_day: int
    mask: npt.NDArray[np.bool_]


def _analytics_query(view: View, params: Mapping[str, str]) -> AnalyticsQuery:
    first = _analytics_day(view, params.get("startDate", ANALYTICS_DEFAULT_START), "startDate")
    last = _analytics_day(view, params.get("endDate", "today"), "endDate")
    if first > last:
        raise bad_request("startDate must not be after endDate")
    if last - first > MAX_RANGE_DAYS:
        raise bad_request(f"Date range cannot exceed {MAX_RANGE_DAYS} days")
    roster = view.team.data.roster
    mask = np.ones(len(roster), dtype=np.bool_)
    users = params.get("users")
    if users:
        mask[:] = False
        for user in (u.strip() for u in users.split(",") if u.strip()):
            found = roster.by_email.get(user.lower(), roster.by_user_id.get(user))
            if found is None:
                raise bad_request("Some users are not in the team")
            mask[found] = True
    return AnalyticsQuery(first, last, mask)


def _analytics_params(view: View, metric: str, query: AnalyticsQuery) -> JsonObject:
    return {
        "metric": metric,
        "teamId": int(view.team.team_id),
        "startDate": iso_day(query.first_day),
        "endDate": iso_day(query.last_day),
    }


def analytics_dau(view: View, params: Mapping[str, str]) -> JsonObject:
    query = _analytics_query(view, params)
    data: list[JsonObject] = []
    for day in range(query.first_day, min(query.last_day, view.today) + 1):
        item: JsonObject = {"date": iso_day(day)}
        if day < view.team.roster_start:
            item.update(dau=0, cli_dau=0, cloud_agent_dau=0, bugbot_dau=0)
        else:
            s = view.summary(day)
            item.update(
                dau=int((s.active & query.mask).sum()),
                cli_dau=int((s.cli & query.mask).sum()),
                cloud_agent_dau=int((s.cloud & query.mask).sum()),
                bugbot_dau=int(((s.bugbot > 0) & query.mask).sum()),
            )
        data.append(item)
    return {"data": data, "params": _analytics_params(view, "dau", query)}


def analytics_models(view: View, params: Mapping[str, str]) -> JsonObject:
    query = _analytics_query(view, params)
    data: list[JsonObject] = []
    for day in range(query.first_day, min(query.last_day, view.today) + 1):
        breakdown: JsonObject = {}
        if day >= view.team.roster_start:
            per_member = view.summary(day).model_requests[query.mask]
            messages = per_member.sum(axis=0).tolist()
            users = (per_member > 0).sum(axis=0).tolist()
            for k, name in enumerate(MODEL_NAMES):
                if messages[k]:
                    breakdown[name] = {"messages": int(messages[k]), "users": int(users[k])}
        data.append({"date": iso_day(day), "model_breakdown": breakdown})
    return {"data": data, "params": _analytics_params(view, "models", query)}
