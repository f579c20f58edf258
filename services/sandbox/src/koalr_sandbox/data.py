"""Seeded, lazily generated activity: usage events and per-member daily counters.

Every random quantity is a pure function of (team seed, member index, UTC day[, event index]),
computed with a counter-based hash (splitmix64) over numpy arrays. A day is therefore generated
the same way whenever and in whatever order it is asked for, and a whole day of a 1,000-member
team takes a few milliseconds. "Now" never enters generation: what is visible is a filter
(``cutoff_ms``) applied when a day is summarised or listed.

Money is integer units of 1e-5 cent (see ``units``); sums are exact.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import date
from typing import Final

import numpy as np
import numpy.typing as npt

from koalr_sandbox.catalog import (
    AUTO_MODEL,
    MAX_REQUESTS_PER_MEMBER_DAY,
    MODELS,
    SMALL_MODEL,
    TOKEN_FEE_UNITS_DENOMINATOR,
    TOKEN_FEE_UNITS_NUMERATOR,
    TOKEN_MEANS,
    Billing,
    Feature,
    Surface,
)
from koalr_sandbox.roster import Roster
from koalr_sandbox.units import DAY_MS, day_start_ms

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
I16 = npt.NDArray[np.int16]
I8 = npt.NDArray[np.int8]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

_MASK64: Final[int] = (1 << 64) - 1
_GOLDEN: Final[int] = 0x9E3779B97F4A7C15


def splitmix64(value: int) -> int:
    """One round of splitmix64 on a Python int (used to derive keys from seeds)."""
    z = (value + _GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


_C1: Final = np.uint64(_GOLDEN)
_C2: Final = np.uint64(0xBF58476D1CE4E5B9)
_C3: Final = np.uint64(0x94D049BB133111EB)
_S30: Final = np.uint64(30)
_S27: Final = np.uint64(27)
_S31: Final = np.uint64(31)
_S11: Final = np.uint64(11)
_DAY_STRIDE: Final[int] = 0xD1B54A32D192ED03
_MEMBER_STRIDE: Final = np.uint64(0xA0761D6478BD642F)
_EVENT_STRIDE: Final = np.uint64(0xE7037ED1A0B428DB)
_CONVERSATION_STRIDE: Final = np.uint64(0x8EBC6AF09C88C6E3)
_STREAMS: Final = tuple(np.uint64(splitmix64(1000 + i)) for i in range(32))
_TO_UNIT: Final[float] = 1.0 / float(1 << 53)


def mix(x: U64) -> U64:
    """splitmix64 finaliser over an array (wrapping uint64 arithmetic)."""
    z = x + _C1
    z = (z ^ (z >> _S30)) * _C2
    z = (z ^ (z >> _S27)) * _C3
    result: U64 = z ^ (z >> _S31)
    return result


def _unit(x: U64) -> F64:
    """Uniform floats in [0, 1) from hashed keys."""
    return (x >> _S11).astype(np.float64) * _TO_UNIT


def stream_uniform(keys: U64, stream: int) -> F64:
    return _unit(mix(keys ^ _STREAMS[stream]))


_MODEL_TOKEN_BASED: Final = np.array([m.token_based for m in MODELS], dtype=np.bool_)
_MODEL_MAX_CAPABLE: Final = np.array([m.max_mode_capable for m in MODELS], dtype=np.bool_)
_MODEL_REQUEST_TENTHS: Final = np.array([m.request_cost_tenths for m in MODELS], dtype=np.int64)
_MODEL_PRICES: Final = np.array(
    [[m.input_price, m.output_price, m.cache_write_price, m.cache_read_price] for m in MODELS],
    dtype=np.int64,
)
_MODEL_CUMULATIVE: Final = np.cumsum([m.weight for m in MODELS]) / sum(m.weight for m in MODELS)
_TOKEN_MEANS: Final = np.array(TOKEN_MEANS, dtype=np.float64)
_MODEL_COUNT: Final[int] = len(MODELS)
_LATEST_MS_IN_DAY: Final[int] = DAY_MS - 1 - MAX_REQUESTS_PER_MEMBER_DAY
_HOUR_MS: Final[float] = 3_600_000.0


def cycle_start_day(day: int, day_of_month: int) -> int:
    """The most recent billing-cycle start on or before ``day``."""
    d = date.fromordinal(day)
    if d.day >= day_of_month:
        return date(d.year, d.month, day_of_month).toordinal()
    year, month = (d.year, d.month - 1) if d.month > 1 else (d.year - 1, 12)
    return date(year, month, day_of_month).toordinal()


@dataclass(frozen=True, slots=True)
class DayEvents:
    """One UTC day of a team: its usage events, newest first, and per-member counters.

    Event order is (timestamp descending, member index ascending); (timestamp, member) is
    unique, so the order is total and stable.
    """

    day: int
    timestamp_ms: I64
    negated_timestamp_ms: I64  # ascending, for binary search
    member: I64
    model: I8
    feature: I8
    billing: I8
    surface: I8
    token_based: Bools
    max_mode: Bools
    fee_applies: Bools
    input_tokens: I32
    output_tokens: I32
    cache_write_tokens: I32
    cache_read_tokens: I32
    cost_units: I64
    fee_units: I64
    charged_units: I64
    request_cost_tenths: I16
    conversation: U64
    applied: Bools
    accepted: Bools
    lines_added: I32
    lines_deleted: I32
    # per member (index order)
    in_membership: Bools
    tabs_shown: I64
    tabs_accepted: I64
    tabs_visible_from_ms: I64
    bugbot: I64

    @property
    def size(self) -> int:
        return int(self.timestamp_ms.shape[0])

    def window(self, lo_ms: int, hi_ms: int) -> tuple[int, int]:
        """Positions ``[start, stop)`` of the events with ``lo_ms <= timestamp <= hi_ms``."""
        start = int(np.searchsorted(self.negated_timestamp_ms, -hi_ms, side="left"))
        stop = int(np.searchsorted(self.negated_timestamp_ms, -lo_ms, side="right"))
        return start, max(start, stop)


def generate_day(roster: Roster, team_key: int, day: int) -> DayEvents:  # noqa: PLR0915
    """Generate every event and counter of ``day`` for ``roster``."""
    cols = roster.columns
    members = len(roster)
    base = mix(np.array([team_key ^ ((day * _DAY_STRIDE) & _MASK64)], dtype=np.uint64))
    member_keys = mix((np.arange(members, dtype=np.uint64) * _MEMBER_STRIDE) ^ base)
    day_start = day_start_ms(day)
    weekend = date.fromordinal(day).weekday() >= 5
    factor = 0.5 if weekend else 1.0

    # Member-day level.
    in_membership = (cols.join_day <= day) & (cols.removal_day > day)
    p_active = cols.p_active_weekend if weekend else cols.p_active_weekday
    active = in_membership & (stream_uniform(member_keys, 0) < p_active)
    tab_only = active & (stream_uniform(member_keys, 1) < cols.p_tab_only)
    spread = 0.25 + 1.5 * stream_uniform(member_keys, 2)
    counts = np.where(active & ~tab_only, 1 + np.floor(cols.mean_requests * factor * spread), 0)
    counts = np.minimum(counts, MAX_REQUESTS_PER_MEMBER_DAY).astype(np.int64)
    shown = np.where(
        active, np.floor(cols.mean_tabs * factor * (0.3 + 1.4 * stream_uniform(member_keys, 3))), 0
    )
    accepted_tabs = np.floor(shown * cols.tab_accept_rate)
    accepted_tabs = np.where(tab_only, np.maximum(accepted_tabs, 1), accepted_tabs)
    shown = np.maximum(shown, accepted_tabs)
    tab_hour = np.clip(cols.center_hour + 2.0 * (stream_uniform(member_keys, 4) - 0.5), 0.0, 23.99)
    tabs_visible_from = day_start + np.floor(tab_hour * _HOUR_MS).astype(np.int64)
    bugbot = np.where(
        (counts > 0) & (stream_uniform(member_keys, 5) < cols.bugbot_rate),
        1 + np.floor(3 * stream_uniform(member_keys, 6)),
        0,
    ).astype(np.int64)
    cycle_day = day - cycle_start_day(day, roster.cycle_day_of_month)
    usage_based_member = cycle_day >= cols.usage_based_from

    # Events.
    total = int(counts.sum())
    rep = np.repeat(np.arange(members, dtype=np.int64), counts)
    firsts = np.cumsum(counts) - counts
    k = np.arange(total, dtype=np.int64) - np.repeat(firsts, counts)
    rep_keys = member_keys[rep]
    event_keys = mix(rep_keys ^ mix((k + 1).astype(np.uint64) * _EVENT_STRIDE))

    def f(stream: int) -> F64:
        return stream_uniform(event_keys, stream)

    hour = np.mod(cols.center_hour[rep] + 3.2 * (f(0) + f(1) + f(2) - 1.5), 24.0)
    ms_in_day = np.minimum(np.floor(hour * _HOUR_MS).astype(np.int64), _LATEST_MS_IN_DAY)
    # Make (member, ms) unique: within each member, bump collisions forward by 1 ms.
    by_member_time = np.lexsort((ms_in_day, rep))
    keyed = rep[by_member_time] * DAY_MS + ms_in_day[by_member_time]
    steps = np.arange(total, dtype=np.int64)
    unique_keyed = np.maximum.accumulate(keyed - steps) + steps if total else keyed
    ms_in_day[by_member_time] = unique_keyed - rep[by_member_time] * DAY_MS

    cumulative = cols.feature_cumulative[rep]
    feature_draw = f(3)
    feature = (
        (feature_draw >= cumulative[:, 0]).astype(np.int8)
        + (feature_draw >= cumulative[:, 1])
        + (feature_draw >= cumulative[:, 2])
    ).astype(np.int8)
    global_model = np.minimum(
        np.searchsorted(_MODEL_CUMULATIVE, f(5), side="right"), _MODEL_COUNT - 1
    )
    model = np.where(f(4) < cols.favorite_weight[rep], cols.favorite_model[rep], global_model)
    model = np.where((feature == Feature.CMDK) & (f(6) < 0.5), SMALL_MODEL, model)
    is_agent = feature == Feature.AGENT
    surface_draw = f(7)
    cloud_share = cols.cloud_share[rep]
    surface = np.where(
        is_agent & (surface_draw < cloud_share),
        Surface.CLOUD,
        np.where(
            is_agent & (surface_draw < cloud_share + cols.cli_share[rep]), Surface.CLI, Surface.IDE
        ),
    ).astype(np.int8)
    model_token_based = _MODEL_TOKEN_BASED[model]
    api_key = f(8) < cols.api_key_share[rep]
    usage_based = ~api_key & usage_based_member[rep] & model_token_based & (f(9) < 0.95)
    billing = np.where(
        api_key, Billing.API_KEY, np.where(usage_based, Billing.USAGE_BASED, Billing.INCLUDED)
    ).astype(np.int8)
    token_based = model_token_based & ~api_key & (usage_based | (f(10) >= 0.04))
    max_mode = (
        _MODEL_MAX_CAPABLE[model]
        & ((feature == Feature.CHAT) | is_agent)
        & ~api_key
        & (f(11) < 0.1)
    )
    means = _TOKEN_MEANS[feature]
    boost = np.where(max_mode, 2.0, 1.0)
    tokens = []
    for column in range(4):
        scale = means[:, column] * (boost if column in {0, 3} else 1.0)
        drawn = np.floor(-np.log1p(-f(12 + column)) * scale)
        drawn = np.minimum(drawn, 20 * scale)
        tokens.append(np.where(token_based, drawn, 0).astype(np.int64))
    prices = _MODEL_PRICES[model]
    cost = (
        tokens[0] * prices[:, 0]
        + tokens[1] * prices[:, 1]
        + tokens[2] * prices[:, 2]
        + tokens[3] * prices[:, 3]
    ) // 100
    fee_applies = token_based & (model != AUTO_MODEL)
    all_tokens = tokens[0] + tokens[1] + tokens[2] + tokens[3]
    fee = np.where(
        fee_applies, all_tokens * TOKEN_FEE_UNITS_NUMERATOR // TOKEN_FEE_UNITS_DENOMINATOR, 0
    )
    cost = np.where(token_based, cost, 0)
    charged = cost + fee
    request_tenths = np.where(api_key, 0, _MODEL_REQUEST_TENTHS[model] * np.where(max_mode, 2, 1))
    conversation = mix(rep_keys ^ mix((k // 6 + 1).astype(np.uint64) * _CONVERSATION_STRIDE))
    applies = ((feature == Feature.AGENT) | (feature == Feature.COMPOSER)) & (f(16) < 0.6)
    accepts = applies & (f(17) < 0.8)
    lines_added = np.where(applies, 3 + np.floor(80 * f(18) ** 2), 0)
    lines_deleted = np.floor(lines_added * 0.5 * f(19))

    timestamp = day_start + ms_in_day
    order = np.lexsort((rep, -timestamp))
    ts_sorted = timestamp[order]
    return DayEvents(
        day=day,
        timestamp_ms=ts_sorted,
        negated_timestamp_ms=-ts_sorted,
        member=rep[order],
        model=model[order].astype(np.int8),
        feature=feature[order],
        billing=billing[order],
        surface=surface[order],
        token_based=token_based[order],
        max_mode=max_mode[order],
        fee_applies=fee_applies[order],
        input_tokens=tokens[0][order].astype(np.int32),
        output_tokens=tokens[1][order].astype(np.int32),
        cache_write_tokens=tokens[2][order].astype(np.int32),
        cache_read_tokens=tokens[3][order].astype(np.int32),
        cost_units=cost[order],
        fee_units=fee[order],
        charged_units=charged[order],
        request_cost_tenths=request_tenths[order].astype(np.int16),
        conversation=conversation[order],
        applied=applies[order],
        accepted=accepts[order],
        lines_added=lines_added[order].astype(np.int32),
        lines_deleted=lines_deleted[order].astype(np.int32),
        in_membership=in_membership,
        tabs_shown=shown.astype(np.int64),
        tabs_accepted=accepted_tabs.astype(np.int64),
        tabs_visible_from_ms=tabs_visible_from,
        bugbot=bugbot,
    )


@dataclass(frozen=True, slots=True)
class DaySummary:
    """Per-member daily counters of the events visible at ``cutoff_ms``."""

    day: int
    in_membership: Bools
    requests: I64
    by_feature: I64  # shape (4, members): chat, agent, composer, cmdk
    by_billing: I64  # shape (3, members): included, usage-based, api key
    charged_units: I64
    usage_based_charged_units: I64
    model_requests: I64  # shape (members, models)
    model_charged_units: I64  # shape (members, models)
    applies: I64
    accepts: I64
    lines_added: I64
    lines_deleted: I64
    accepted_lines_added: I64
    accepted_lines_deleted: I64
    tabs_shown: I64
    tabs_accepted: I64
    bugbot: I64
    cli: Bools
    cloud: Bools
    active: Bools
    most_used_model: I64  # -1 when no requests

    @property
    def members(self) -> int:
        return int(self.requests.shape[0])


def _counts(index: I64, size: int, weights: npt.NDArray[np.generic] | None = None) -> I64:
    """Per-index totals; integer weights are summed exactly (float64 sums of ints < 2**53)."""
    if weights is None:
        return np.bincount(index, minlength=size).astype(np.int64)
    sums = np.bincount(index, weights=weights.astype(np.float64), minlength=size)
    return np.rint(sums).astype(np.int64)


def summarize(events: DayEvents, cutoff_ms: int) -> DaySummary:
    """Aggregate the events of a day with ``timestamp <= cutoff_ms`` per member."""
    members = int(events.in_membership.shape[0])
    start, _ = events.window(-(1 << 62), cutoff_ms)
    sl = slice(start, None)
    member = events.member[sl]
    model = events.model[sl].astype(np.int64)
    charged = events.charged_units[sl]
    billing = events.billing[sl]
    feature = events.feature[sl]
    requests = _counts(member, members)
    by_feature = np.stack([_counts(member[feature == f], members) for f in Feature])
    by_billing = np.stack([_counts(member[billing == b], members) for b in Billing])
    usage_based = billing == Billing.USAGE_BASED
    cells = member * _MODEL_COUNT + model
    model_requests = _counts(cells, members * _MODEL_COUNT).reshape(members, _MODEL_COUNT)
    model_charged = _counts(cells, members * _MODEL_COUNT, charged).reshape(members, _MODEL_COUNT)
    applied = events.applied[sl]
    accepted = events.accepted[sl]
    lines_added = events.lines_added[sl]
    lines_deleted = events.lines_deleted[sl]
    tabs_visible = events.tabs_visible_from_ms <= cutoff_ms
    tabs_shown = np.where(tabs_visible, events.tabs_shown, 0)
    tabs_accepted = np.where(tabs_visible, events.tabs_accepted, 0)
    tab_lines = 2 * tabs_accepted
    surface = events.surface[sl]
    most_used = np.where(requests > 0, np.argmax(model_requests, axis=1), -1).astype(np.int64)
    return DaySummary(
        day=events.day,
        in_membership=events.in_membership,
        requests=requests,
        by_feature=by_feature,
        by_billing=by_billing,
        charged_units=_counts(member, members, charged),
        usage_based_charged_units=_counts(member[usage_based], members, charged[usage_based]),
        model_requests=model_requests,
        model_charged_units=model_charged,
        applies=_counts(member[applied], members),
        accepts=_counts(member[accepted], members),
        lines_added=_counts(member[applied], members, lines_added[applied]) + tab_lines,
        lines_deleted=_counts(member[applied], members, lines_deleted[applied]),
        accepted_lines_added=_counts(member[accepted], members, lines_added[accepted]) + tab_lines,
        accepted_lines_deleted=_counts(member[accepted], members, lines_deleted[accepted]),
        tabs_shown=tabs_shown,
        tabs_accepted=tabs_accepted,
        bugbot=np.where(requests > 0, events.bugbot, 0),
        cli=_counts(member[surface == Surface.CLI], members) > 0,
        cloud=_counts(member[surface == Surface.CLOUD], members) > 0,
        active=(requests > 0) | (tabs_accepted > 0),
        most_used_model=most_used,
    )


class TeamData:
    """A team's generated days with two caches.

    Generated days are kept in an LRU bounded by the total number of events held, so a long range
    of a large team never exhausts memory (evicted days are regenerated identically on demand).
    Summaries of days that are fully visible are small and kept in a second, longer LRU.
    """

    def __init__(
        self,
        roster: Roster,
        seed: int,
        *,
        event_cache_events: int = 2_000_000,
        summary_cache_days: int = 400,
    ) -> None:
        self.roster = roster
        self.team_key = splitmix64(seed & _MASK64)
        self._event_cache_events = event_cache_events
        self._summary_cache_days = summary_cache_days
        self._events: OrderedDict[int, DayEvents] = OrderedDict()
        self._events_held = 0
        self._summaries: OrderedDict[int, DaySummary] = OrderedDict()

    def events(self, day: int) -> DayEvents:
        cached = self._events.get(day)
        if cached is not None:
            self._events.move_to_end(day)
            return cached
        generated = generate_day(self.roster, self.team_key, day)
        self._events[day] = generated
        self._events_held += generated.size
        while self._events_held > self._event_cache_events and len(self._events) > 1:
            _, evicted = self._events.popitem(last=False)
            self._events_held -= evicted.size
        return generated

    def summary(self, day: int, cutoff_ms: int) -> DaySummary:
        """Counters of ``day`` as visible at ``cutoff_ms``."""
        complete = day_start_ms(day) + DAY_MS - 1 <= cutoff_ms
        if complete:
            cached = self._summaries.get(day)
            if cached is not None:
                self._summaries.move_to_end(day)
                return cached
        result = summarize(self.events(day), cutoff_ms)
        if complete:
            self._summaries[day] = result
            while len(self._summaries) > self._summary_cache_days:
                self._summaries.popitem(last=False)
        return result

    @property
    def events_held(self) -> int:
        return self._events_held
