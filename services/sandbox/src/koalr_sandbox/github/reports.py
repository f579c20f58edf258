"""What an organisation looks like at one instant: publication, and the report files' contents.

A day is published ``publish_lag_s`` after it ends (two full UTC days by default), never before
the first org report day nor more than a year back. Report files are rendered from the data
model (``model``) and cached per day, so a warm download is a dictionary lookup.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

from koalr_sandbox.github.catalog import (
    CLI_VERSION,
    CODE_COMPLETION,
    FIRST_ORG_REPORT_DAY,
    IDES,
    LANGUAGES,
    LATEST_WINDOW_DAYS,
    REPORT_HISTORY_DAYS,
    TEAM_REPORT_MIN_USERS,
    UNATTRIBUTED_FEATURE,
)
from koalr_sandbox.github.model import (
    ZERO,
    Counters,
    OrgModel,
    Seat,
    UserDay,
    day_of_epoch_s,
    day_start_s,
)
from koalr_sandbox.github.orgs import GithubOrg
from koalr_sandbox.units import iso_day, iso_instant

JsonObject = dict[str, Any]
ReportKind = Literal[
    "users-1-day",
    "organization-1-day",
    "user-teams-1-day",
    "users-28-day",
    "organization-28-day",
]
NDJSON_KINDS: Final[frozenset[ReportKind]] = frozenset(
    {"users-1-day", "user-teams-1-day", "users-28-day"}
)
FILE_CACHE_ENTRIES: Final[int] = 256
CHAT_MODES: Final[tuple[str, ...]] = (
    "chat_panel_agent_mode",
    "chat_panel_ask_mode",
    "chat_panel_custom_mode",
    "chat_panel_edit_mode",
    "chat_panel_plan_mode",
    "chat_panel_unknown_mode",
)
PHASES: Final[tuple[tuple[int, str], ...]] = ((1, "Phase 1"), (2, "Phase 2"), (3, "Phase 3"))


@dataclass(frozen=True, slots=True)
class OrgView:
    """An organisation as seen at one instant."""

    org: GithubOrg
    now_s: float

    @property
    def horizon_s(self) -> float:
        """What has happened for publication and billing: now, or the frozen instant."""
        frozen = self.org.config.visible_until_ms
        return self.now_s if frozen is None else min(self.now_s, frozen / 1000)

    @property
    def today(self) -> int:
        return day_of_epoch_s(self.now_s)

    @property
    def model(self) -> OrgModel:
        return self.org.model

    @property
    def first_report_day(self) -> int:
        return max(FIRST_ORG_REPORT_DAY, self.today - REPORT_HISTORY_DAYS, self.model.history_start)

    @property
    def data_through(self) -> int | None:
        """The last day whose reports are published, None before the first."""
        last = day_of_epoch_s(self.horizon_s - self.org.config.publish_lag_s) - 1
        return last if last >= self.first_report_day else None

    def published(self, day: int) -> bool:
        last = self.data_through
        return last is not None and self.first_report_day <= day <= last

    def billed_through(self) -> int:
        """The last complete day of premium-request usage."""
        return day_of_epoch_s(self.horizon_s) - 1

    def listed_seats(self) -> list[Seat]:
        """Seats the seats route lists: not yet past their cancellation date."""
        today = self.today
        return [
            s
            for s in self.model.seats
            if s.pending_cancellation_day is None or s.pending_cancellation_day > today
        ]

    def latest_window(self) -> tuple[int, int] | None:
        last = self.data_through
        if last is None:
            return None
        return max(self.first_report_day, last - LATEST_WINDOW_DAYS + 1), last


# ---------------------------------------------------------------------------------------------
# Rows


def _counter_fields(counters: Counters, *, interactions: bool = True) -> JsonObject:
    fields: JsonObject = {}
    if interactions:
        fields["user_initiated_interaction_count"] = counters.interactions
    fields |= {
        "code_generation_activity_count": counters.generation,
        "code_acceptance_activity_count": counters.acceptance,
        "loc_suggested_to_add_sum": counters.loc_suggested_to_add,
        "loc_suggested_to_delete_sum": counters.loc_suggested_to_delete,
        "loc_added_sum": counters.loc_added,
        "loc_deleted_sum": counters.loc_deleted,
    }
    return fields


def _merge(entries: Iterable[tuple[Hashable, Counters]]) -> dict[Any, Counters]:
    merged: dict[Any, Counters] = {}
    for key, counters in entries:
        merged[key] = merged.get(key, ZERO) + counters
    return merged


def _languages(seat: Seat) -> tuple[str, str]:
    first, second = seat.languages
    return LANGUAGES[first], LANGUAGES[second + (second >= first)]


@dataclass(frozen=True, slots=True)
class Breakdown:
    """The keyed breakdowns of one or more user-days."""

    by_feature: dict[str, Counters]
    by_model_feature: dict[tuple[str, str], Counters]
    by_language_feature: dict[tuple[str, str], Counters]
    by_language_model: dict[tuple[str, str], Counters]
    by_ide: dict[str, Counters]


def breakdown(rows: Iterable[UserDay], seats: tuple[Seat, ...]) -> Breakdown:
    feature: list[tuple[Hashable, Counters]] = []
    model_feature: list[tuple[Hashable, Counters]] = []
    language_feature: list[tuple[Hashable, Counters]] = []
    language_model: list[tuple[Hashable, Counters]] = []
    ide: list[tuple[Hashable, Counters]] = []
    for row in rows:
        if row.telemetry_only:
            continue
        seat = seats[row.seat]
        first, second = _languages(seat)
        cells: list[tuple[str, str | None, Counters]] = [(CODE_COMPLETION, None, row.completion)]
        cells += [(f, m, c) for m, f, c in row.by_model_feature]
        if row.unattributed != ZERO:
            cells.append((UNATTRIBUTED_FEATURE, None, row.unattributed))
        for feature_name, model, counters in cells:
            feature.append((feature_name, counters))
            part, rest = counters.split(seat.language_share)
            language_feature += [((first, feature_name), part), ((second, feature_name), rest)]
            if model is not None:
                model_feature.append(((model, feature_name), counters))
                language_model += [((first, model), part), ((second, model), rest)]
        ide.append((IDES[seat.ide][0], row.totals))
    return Breakdown(
        _merge(feature),
        _merge(model_feature),
        _merge(language_feature),
        _merge(language_model),
        _merge(ide),
    )


def _breakdown_fields(parts: Breakdown, ide_extra: Callable[[str], JsonObject]) -> JsonObject:
    return {
        "totals_by_ide": [
            {"ide": name} | _counter_fields(c) | ide_extra(name)
            for name, c in sorted(parts.by_ide.items())
        ],
        "totals_by_feature": [
            {"feature": name} | _counter_fields(c) for name, c in sorted(parts.by_feature.items())
        ],
        "totals_by_language_feature": [
            {"language": lang, "feature": feat} | _counter_fields(c, interactions=False)
            for (lang, feat), c in sorted(parts.by_language_feature.items())
        ],
        "totals_by_language_model": [
            {"language": lang, "model": model} | _counter_fields(c, interactions=False)
            for (lang, model), c in sorted(parts.by_language_model.items())
        ],
        "totals_by_model_feature": [
            {"model": model, "feature": feat} | _counter_fields(c)
            for (model, feat), c in sorted(parts.by_model_feature.items())
        ],
    }


def user_row(org: GithubOrg, row: UserDay, start: int, end: int) -> JsonObject:
    """One line of a ``users-1-day`` / ``users-28-day`` file."""
    model = org.model
    seat = model.seats[row.seat]
    parts = breakdown((row,), model.seats)
    totals = row.totals
    feature_interactions = {name: c.interactions for name, c in parts.by_feature.items()}
    _, _, ide_version, plugin, plugin_version = IDES[seat.ide]
    sampled = iso_instant(row.instant_s)

    def ide_extra(_: str) -> JsonObject:
        return {
            "last_known_ide_version": {"ide_version": ide_version, "sampled_at": sampled},
            "last_known_plugin_version": {
                "plugin": plugin,
                "plugin_version": plugin_version,
                "sampled_at": sampled,
            },
        }

    phase_number = 3 if totals.interactions >= 40 else 2 if totals.interactions >= 10 else 1
    result: JsonObject = {
        "user_id": seat.user_id,
        "user_login": seat.login,
        "day": iso_day(row.day),
        "organization_id": str(model.org_id),
        "report_start_day": iso_day(start),
        "report_end_day": iso_day(end),
        "ai_credits_used": row.ai_credits_hundredths / 100,
        "ai_adoption_phase": {
            "phase_number": phase_number,
            "phase": f"Phase {phase_number}",
            "version": "v1",
        },
        **_counter_fields(totals),
        "used_chat": any(f.startswith("chat_") for f in feature_interactions),
        "used_agent": any(f in {"chat_panel_agent_mode", "agent_edit"} for f in parts.by_feature),
        "used_cli": row.cli is not None,
        "used_copilot_app": False,
        "used_copilot_cloud_agent": False,
        "used_copilot_coding_agent": False,
        "used_copilot_code_review_active": False,
        "used_copilot_code_review_passive": (row.seat + row.day) % 7 == 0,
        **{mode: feature_interactions.get(mode, 0) for mode in CHAT_MODES},
        **_breakdown_fields(parts, ide_extra),
        "totals_by_3rd_party_agent": [],
        "etl_id": f"{model.org_id}-{row.day}",
        "day_partition": iso_day(row.day),
    }
    if row.telemetry_only:
        result["totals_by_ide"] = []
    if row.cli is not None:
        cli = row.cli
        result["totals_by_cli"] = {
            "session_count": cli.sessions,
            "request_count": cli.requests,
            "prompt_count": cli.prompts,
            "token_usage": {
                "avg_tokens_per_request": (cli.prompt_tokens + cli.output_tokens) / cli.requests,
                "output_tokens_sum": cli.output_tokens,
                "prompt_tokens_sum": cli.prompt_tokens,
            },
            "last_known_cli_version": {
                "cli_version": CLI_VERSION,
                "sampled_at": iso_instant(cli.last_seen_s),
            },
        }
    return result


def _distinct_active(model: OrgModel, first: int, last: int) -> int:
    seen = np.zeros(len(model.seats), dtype=np.bool_)
    for day in range(max(first, model.history_start), last + 1):
        seen |= model.active(day)
    return int(seen.sum())


def _distinct_with(model: OrgModel, first: int, last: int, test: Callable[[UserDay], bool]) -> int:
    users = {
        row.seat
        for day in range(max(first, model.history_start), last + 1)
        for row in model.rows(day)
        if test(row)
    }
    return len(users)


def day_totals(org: GithubOrg, day: int) -> JsonObject:
    """One ``day_totals`` item of an aggregate report."""
    model = org.model
    rows = model.rows(day)
    parts = breakdown(rows, model.seats)
    totals = ZERO
    for row in rows:
        totals = totals + row.totals
    clis = [row.cli for row in rows if row.cli is not None]
    sessions = sum(c.sessions for c in clis)
    requests = sum(c.requests for c in clis)
    prompt_tokens = sum(c.prompt_tokens for c in clis)
    output_tokens = sum(c.output_tokens for c in clis)
    active = len(rows)
    created = (day * 7 + model.seed) % 11 + active // 10
    return {
        "day": iso_day(day),
        "organization_id": str(model.org_id),
        "daily_active_users": active,
        "weekly_active_users": _distinct_active(model, day - 6, day),
        "monthly_active_users": _distinct_active(model, day - 27, day),
        "monthly_active_chat_users": _distinct_with(
            model,
            day - 27,
            day,
            lambda r: any(f.startswith("chat_") for _, f, _ in r.by_model_feature),
        ),
        "monthly_active_agent_users": _distinct_with(
            model,
            day - 27,
            day,
            lambda r: any(
                f in {"chat_panel_agent_mode", "agent_edit"} for _, f, _ in r.by_model_feature
            ),
        ),
        "daily_active_cli_users": len(clis),
        "daily_active_copilot_app_users": 0,
        **_counter_fields(totals),
        **{mode: parts.by_feature.get(mode, ZERO).interactions for mode in CHAT_MODES},
        **_breakdown_fields(parts, lambda _: {}),
        "totals_by_cli": {
            "session_count": sessions,
            "request_count": requests,
            "prompt_count": requests,
            "token_usage": {
                "avg_tokens_per_request": (prompt_tokens + output_tokens) / requests
                if requests
                else 0.0,
                "output_tokens_sum": output_tokens,
                "prompt_tokens_sum": prompt_tokens,
            },
        },
        "totals_by_3rd_party_agent": [],
        "totals_by_ai_adoption_phase": [
            {"phase": name, "phase_number": number, "total_engaged_users": 0}
            for number, name in PHASES
        ],
        "pull_requests": {
            "total_created": created,
            "total_reviewed": created // 2,
            "total_merged": created * 3 // 4,
            "median_minutes_to_merge": 42.5,
            "total_suggestions": 0,
            "total_applied_suggestions": 0,
            "total_created_by_copilot": created // 5,
            "total_reviewed_by_copilot": created // 3,
        },
    }


def team_rows(org: GithubOrg, day: int) -> list[JsonObject]:
    """``user-teams-1-day``: each seated user of each team with at least five seated users."""
    model = org.model
    billed = [s for s in model.seats if s.billed_on(day)]
    members: dict[int, list[Seat]] = {}
    for seat in billed:
        for team in seat.teams:
            members.setdefault(team, []).append(seat)
    rows: list[JsonObject] = []
    for team_index in sorted(members):
        if len(members[team_index]) < TEAM_REPORT_MIN_USERS:
            continue
        team_of_day = model.teams[team_index]
        rows += [
            {
                "user_id": seat.user_id,
                "user_login": seat.login,
                "day": iso_day(day),
                "organization_id": str(model.org_id),
                "team_id": team_of_day.team_id,
                "slug": team_of_day.slug,
            }
            for seat in members[team_index]
        ]
    return rows


# ---------------------------------------------------------------------------------------------
# Files


def _ndjson(rows: list[JsonObject], per_file: int) -> list[bytes]:
    chunks = [rows[i : i + per_file] for i in range(0, len(rows), per_file)] or [[]]
    return [
        "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in chunk).encode()
        for chunk in chunks
    ]


def _aggregate(org: GithubOrg, view: OrgView, first: int, last: int) -> bytes:
    body = {
        "report_start_day": iso_day(first),
        "report_end_day": iso_day(last),
        "organization_id": str(org.model.org_id),
        "created_at": iso_instant(day_start_s(last + 1) + org.config.publish_lag_s),
        "day_totals": [
            day_totals(org, day) for day in range(first, last + 1) if view.published(day)
        ],
    }
    return json.dumps(body, separators=(",", ":")).encode()


def render_files(view: OrgView, kind: ReportKind, first: int, last: int) -> list[bytes]:
    """The files of a report over ``[first, last]`` (one day for the 1-day kinds)."""
    org = view.org
    per_file = org.config.rows_per_file
    if kind in {"organization-1-day", "organization-28-day"}:
        return [_aggregate(org, view, first, last)]
    if kind == "user-teams-1-day":
        return _ndjson(team_rows(org, first), per_file)
    rows = [
        user_row(org, row, first, last)
        for day in range(first, last + 1)
        if view.published(day)
        for row in org.model.rows(day)
    ]
    return _ndjson(rows, per_file)


class FileCache:
    """Rendered report files, keyed by what they depend on."""

    def __init__(self, entries: int = FILE_CACHE_ENTRIES) -> None:
        self._entries = entries
        self._files: OrderedDict[tuple[Hashable, ...], list[bytes]] = OrderedDict()

    def files(self, view: OrgView, kind: ReportKind, first: int, last: int) -> list[bytes]:
        org = view.org
        key = (org.login, kind, first, last, org.model.late_version, org.config.rows_per_file)
        cached = self._files.get(key)
        if cached is not None:
            self._files.move_to_end(key)
            return cached
        rendered = render_files(view, kind, first, last)
        self._files[key] = rendered
        while len(self._files) > self._entries:
            self._files.popitem(last=False)
        return rendered
