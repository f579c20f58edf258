"""A generated GitHub organisation: its Copilot seats, teams and per-user daily activity.

The data model every GitHub route and the ground truth read. Whether a seat is active on a day,
and when, is a pure function of (org seed, seat, day) hashed over numpy arrays (see ``data``);
the counters of an active user-day are drawn from a generator seeded by the same key. A day is
therefore the same whenever and in whatever order it is asked for. "Now" never enters
generation: it only decides what is published or visible (``reports``).
"""

from __future__ import annotations

import random
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date
from typing import Final

import numpy as np
import numpy.typing as npt

from koalr_sandbox.catalog import FIRST_NAMES, LAST_NAMES
from koalr_sandbox.data import mix, splitmix64, stream_uniform
from koalr_sandbox.github.catalog import (
    IDES,
    LANGUAGES,
    MODEL_FEATURE_WEIGHTS,
    MODEL_FEATURES,
    MODEL_WEIGHTS,
    MODELS,
    PREMIUM_MULTIPLIER,
    TEAM_WORDS,
    OrgPlan,
    SeatPlan,
)
from koalr_sandbox.roster import NEVER
from koalr_sandbox.units import DAY_MS

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

DAY_S: Final[int] = DAY_MS // 1000
_MASK64: Final[int] = (1 << 64) - 1
_DAY_STRIDE: Final[int] = 0xD1B54A32D192ED03
_SEAT_STRIDE: Final = np.uint64(0xA0761D6478BD642F)
_LATE_SALT: Final[int] = 0x1A7E_0000_5EED
_EPOCH_ORDINAL: Final[int] = date(1970, 1, 1).toordinal()


@dataclass(frozen=True, slots=True)
class Persona:
    name: str
    share: float
    p_active_weekday: float
    p_active_weekend: float
    mean_interactions: float


PERSONAS: Final[tuple[Persona, ...]] = (
    Persona("heavy", 0.15, 0.92, 0.30, 60.0),
    Persona("moderate", 0.30, 0.80, 0.10, 20.0),
    Persona("light", 0.28, 0.45, 0.04, 5.0),
    Persona("occasional", 0.20, 0.08, 0.01, 3.0),
    Persona("never", 0.07, 0.0, 0.0, 0.0),
)
#: Share of active user-days seen only through server-side telemetry (empty breakdowns).
TELEMETRY_ONLY_SHARE: Final[float] = 0.04


def day_start_s(day: int) -> int:
    return (day - _EPOCH_ORDINAL) * DAY_S


def day_of_epoch_s(epoch_s: float) -> int:
    return int(epoch_s // DAY_S) + _EPOCH_ORDINAL


def first_of_next_month(day: int) -> int:
    d = date.fromordinal(day)
    return (date(d.year + 1, 1, 1) if d.month == 12 else date(d.year, d.month + 1, 1)).toordinal()


@dataclass(frozen=True, slots=True)
class Counters:
    """The seven counters of a report row (or of one breakdown entry)."""

    interactions: int = 0
    generation: int = 0
    acceptance: int = 0
    loc_suggested_to_add: int = 0
    loc_suggested_to_delete: int = 0
    loc_added: int = 0
    loc_deleted: int = 0

    def __add__(self, other: Counters) -> Counters:
        return Counters(
            self.interactions + other.interactions,
            self.generation + other.generation,
            self.acceptance + other.acceptance,
            self.loc_suggested_to_add + other.loc_suggested_to_add,
            self.loc_suggested_to_delete + other.loc_suggested_to_delete,
            self.loc_added + other.loc_added,
            self.loc_deleted + other.loc_deleted,
        )

    def split(self, share: float) -> tuple[Counters, Counters]:
        """Two parts that add up to this one: ``share`` of each counter (rounded down), the rest."""
        first = Counters(*(int(v * share) for v in self.values()))
        rest = Counters(*(v - w for v, w in zip(self.values(), first.values(), strict=True)))
        return first, rest

    def values(self) -> tuple[int, int, int, int, int, int, int]:
        return (
            self.interactions,
            self.generation,
            self.acceptance,
            self.loc_suggested_to_add,
            self.loc_suggested_to_delete,
            self.loc_added,
            self.loc_deleted,
        )


ZERO: Final[Counters] = Counters()


@dataclass(frozen=True, slots=True)
class CliUse:
    sessions: int
    requests: int
    prompts: int
    prompt_tokens: int
    output_tokens: int
    last_seen_s: int


@dataclass(frozen=True, slots=True)
class PremiumUse:
    model: str
    gross: int
    discounted: int


def model_interactions(cells: tuple[tuple[str, str, Counters], ...]) -> dict[str, int]:
    """Interactions per model of ``totals_by_model_feature`` entries."""
    per_model: dict[str, int] = {}
    for model, _, counters in cells:
        per_model[model] = per_model.get(model, 0) + counters.interactions
    return per_model


@dataclass(frozen=True, slots=True)
class UserDay:
    """One user's activity on one day: what their row in ``users-1-day`` says."""

    seat: int
    day: int
    instant_s: int
    telemetry_only: bool
    by_model_feature: tuple[tuple[str, str, Counters], ...]
    completion: Counters
    unattributed: Counters
    cli: CliUse | None
    premium: tuple[PremiumUse, ...]
    ai_credits_hundredths: int

    @property
    def totals(self) -> Counters:
        total = self.completion + self.unattributed
        for _, _, counters in self.by_model_feature:
            total = total + counters
        return total

    def model_interactions(self) -> dict[str, int]:
        """``models(r)``: interactions per model."""
        return model_interactions(self.by_model_feature)


@dataclass(frozen=True, slots=True)
class Team:
    team_id: int
    slug: str
    name: str


@dataclass(frozen=True, slots=True)
class Seat:
    index: int
    login: str
    user_id: int
    name: str
    created_s: int
    plan_type: SeatPlan
    pending_cancellation_day: int | None
    teams: tuple[int, ...]
    assigning_team: int | None
    ide: int
    languages: tuple[int, int]
    language_share: float
    favorite_model: int
    persona: int
    cli_user: bool
    within_allowance: bool

    @property
    def created_day(self) -> int:
        return day_of_epoch_s(self.created_s)

    def billed_on(self, day: int) -> bool:
        """Whether the seat costs on ``day`` (created that day or before, not yet cancelled)."""
        ends = self.pending_cancellation_day
        return self.created_day <= day and (ends is None or day < ends)


@dataclass(slots=True)
class Presence:
    """Who is active on a day (generated, before late rows) and the instant of their activity."""

    active: Bools
    instant_s: I64
    telemetry_only: Bools


def _login(first: str, last: str, taken: set[str]) -> str:
    base = f"{first}-{last}".lower()
    login, suffix = base, 1
    while login in taken:
        suffix += 1
        login = f"{base}{suffix}"
    taken.add(login)
    return login


def _share_plan(rng: random.Random, count: int) -> list[int]:
    counts = [int(p.share * count) for p in PERSONAS]
    for i in range(count - sum(counts)):
        counts[i % len(counts)] += 1
    plan = [i for i, c in enumerate(counts) for _ in range(c)]
    rng.shuffle(plan)
    return plan


@dataclass
class OrgModel:
    """Seats, teams and activity of one organisation, with the late rows added since."""

    seed: int
    plan: OrgPlan
    seats: tuple[Seat, ...]
    teams: tuple[Team, ...]
    org_id: int
    offset_minutes: int
    history_start: int
    org_key: int
    p_weekday: F64
    p_weekend: F64
    mean_interactions: F64
    center_hour: F64
    activity_from: I64
    activity_until: I64
    late: dict[int, list[int]] = field(default_factory=dict)
    late_version: int = 0
    premium_spikes: dict[int, int] = field(default_factory=dict)
    """Premium requests billed to the org on a day beyond its users' rows (a spend spike)."""
    cache_days: int = 120
    _presence: OrderedDict[int, Presence] = field(default_factory=OrderedDict)
    _rows: OrderedDict[int, tuple[int, tuple[UserDay, ...]]] = field(default_factory=OrderedDict)

    def presence(self, day: int) -> Presence:
        """Generated activity of ``day`` (late rows not included)."""
        cached = self._presence.get(day)
        if cached is not None:
            return cached
        base = mix(np.array([self.org_key ^ ((day * _DAY_STRIDE) & _MASK64)], dtype=np.uint64))
        keys = mix((np.arange(len(self.seats), dtype=np.uint64) * _SEAT_STRIDE) ^ base)
        weekend = date.fromordinal(day).weekday() >= 5
        covered = (self.activity_from <= day) & (self.activity_until > day)
        p_active = self.p_weekend if weekend else self.p_weekday
        active = covered & (stream_uniform(keys, 0) < p_active)
        hour = np.clip(self.center_hour + 3.0 * (stream_uniform(keys, 1) - 0.5), 0.0, 23.99)
        instant = day_start_s(day) + np.floor(hour * 3600).astype(np.int64)
        telemetry_only = active & (stream_uniform(keys, 2) < TELEMETRY_ONLY_SHARE)
        result = Presence(active, instant, telemetry_only)
        self._presence[day] = result
        while len(self._presence) > 4 * self.cache_days:
            self._presence.popitem(last=False)
        return result

    def active(self, day: int) -> Bools:
        """Who has a row on ``day``: generated activity plus late rows."""
        active = self.presence(day).active
        late = self.late.get(day)
        if not late:
            return active
        combined = active.copy()
        combined[late] = True
        return combined

    def instant_s(self, day: int) -> I64:
        return self.presence(day).instant_s

    def rows(self, day: int) -> tuple[UserDay, ...]:
        """Every user row of ``day`` in seat order, late rows included."""
        cached = self._rows.get(day)
        if cached is not None and cached[0] == self.late_version:
            self._rows.move_to_end(day)
            return cached[1]
        presence = self.presence(day)
        late = set(self.late.get(day, ()))
        rows = tuple(
            self._user_day(int(index), day, presence, late=int(index) in late)
            for index in np.flatnonzero(self.active(day)).tolist()
        )
        self._rows[day] = (self.late_version, rows)
        while len(self._rows) > self.cache_days:
            self._rows.popitem(last=False)
        return rows

    def add_premium_spike(self, day: int, requests: int) -> int:
        """Bill ``requests`` more premium requests (none discounted) on ``day``; returns the
        day's total spike."""
        self.premium_spikes[day] = self.premium_spikes.get(day, 0) + requests
        return self.premium_spikes[day]

    def add_late_rows(self, day: int, count: int) -> list[int]:
        """Give ``count`` more seated users a row on ``day`` (those without one, in a seeded order)."""
        active = self.active(day)
        candidates = [
            s.index
            for s in self.seats
            if not active[s.index]
            and self.activity_from[s.index] <= day < self.activity_until[s.index]
        ]
        random.Random(splitmix64(self.org_key ^ day ^ self.late_version)).shuffle(candidates)
        chosen = sorted(candidates[:count])
        if chosen:
            self.late.setdefault(day, []).extend(chosen)
            self.late_version += 1
        return chosen

    def _user_day(self, index: int, day: int, presence: Presence, *, late: bool) -> UserDay:
        seat = self.seats[index]
        rng = random.Random(
            splitmix64(self.org_key ^ (index << 20) ^ (day << 1) ^ (_LATE_SALT if late else 0))
        )
        instant = int(presence.instant_s[index])
        if late:
            instant = day_start_s(day) + rng.randrange(DAY_S)
        telemetry_only = bool(presence.telemetry_only[index]) and not late
        if telemetry_only:
            return UserDay(index, day, instant, True, (), ZERO, ZERO, None, (), 0)
        weekend = date.fromordinal(day).weekday() >= 5
        mean = float(self.mean_interactions[index]) * (0.5 if weekend else 1.0)
        interactions = max(1, round(mean * rng.uniform(0.3, 1.7)))
        cells: dict[tuple[str, str], int] = {}
        for _ in range(rng.randint(1, 4)):
            if rng.random() < 0.6:
                model = MODELS[seat.favorite_model]
            else:
                model = rng.choices(MODELS, MODEL_WEIGHTS)[0]
            feature = rng.choices(MODEL_FEATURES, MODEL_FEATURE_WEIGHTS)[0]
            cells[(model, feature)] = cells.get((model, feature), 0)
        shares = [rng.random() + 0.05 for _ in cells]
        remaining = interactions
        by_model_feature: list[tuple[str, str, Counters]] = []
        for position, (model, feature) in enumerate(sorted(cells)):
            last = position == len(cells) - 1
            count = remaining if last else int(interactions * shares[position] / sum(shares))
            remaining -= count
            if count == 0:
                continue
            generation = count + rng.randint(0, count)
            acceptance = int(generation * rng.uniform(0.2, 0.7))
            agent = feature == "agent_edit"
            by_model_feature.append(
                (
                    model,
                    feature,
                    Counters(
                        interactions=count,
                        generation=generation,
                        acceptance=acceptance,
                        loc_suggested_to_add=0 if agent else generation * rng.randint(3, 12),
                        loc_suggested_to_delete=0 if agent else rng.randint(0, generation),
                        loc_added=acceptance * rng.randint(2, 10),
                        loc_deleted=rng.randint(1, 3 * generation) if agent else 0,
                    ),
                )
            )
        shown = rng.randint(0, 8 * interactions)
        accepted = int(shown * rng.uniform(0.15, 0.4))
        completion = Counters(0, shown, accepted, 2 * shown, 0, 2 * accepted, 0)
        unattributed = ZERO
        if rng.random() < 0.15:
            unattributed = Counters(interactions=rng.randint(1, 3))
        cli = None
        if seat.cli_user and rng.random() < 0.5:
            sessions = rng.randint(1, 3)
            requests = sessions * rng.randint(1, 6)
            prompt_tokens = requests * rng.randint(800, 4000)
            cli = CliUse(
                sessions=sessions,
                requests=requests,
                prompts=requests,
                prompt_tokens=prompt_tokens,
                output_tokens=requests * rng.randint(200, 1500),
                last_seen_s=instant,
            )
        premium: list[PremiumUse] = []
        for model, count in sorted(model_interactions(tuple(by_model_feature)).items()):
            multiplier = PREMIUM_MULTIPLIER.get(model)
            if multiplier is None:
                continue
            gross = count * multiplier
            discounted = gross if seat.within_allowance else int(gross * 0.3)
            premium.append(PremiumUse(model, gross, discounted))
        credits = sum(p.gross for p in premium) * 100 + rng.randint(0, 99)
        return UserDay(
            index,
            day,
            instant,
            False,
            tuple(by_model_feature),
            completion,
            unattributed,
            cli,
            tuple(premium),
            credits,
        )

    def last_activity_s(self, through_s: float) -> I64:
        """Per seat, the last activity at or before ``through_s`` (epoch s), -1 for none."""
        last = np.full(len(self.seats), -1, dtype=np.int64)
        for day in range(self.history_start, day_of_epoch_s(through_s) + 1):
            instant = self.instant_s(day)
            active = self.active(day)
            late = self.late.get(day)
            if late:
                instant = instant.copy()
                for index in late:
                    instant[index] = self._user_day(
                        index, day, self.presence(day), late=True
                    ).instant_s
            seen = active & (instant <= through_s)
            last = np.where(seen, instant, last)
        return last


def build_org(
    seed: int, seat_count: int, plan: OrgPlan, history_start: int, today: int
) -> OrgModel:
    """Draw an organisation of ``seat_count`` seats whose history starts on ``history_start``.

    About 8% of the seats are granted during the history, 5% are pending cancellation at the
    start of next month, 5% have the plan type ``unknown`` and about 7% are never used.
    """
    rng = random.Random(seed)
    team_count = max(1, seat_count // 8)
    team_weights = [1.0 / (i + 1) for i in range(team_count)]  # a few big teams, many small
    teams = tuple(
        Team(
            team_id=rng.randint(100_000, 9_999_999),
            slug=f"{TEAM_WORDS[i % len(TEAM_WORDS)]}{'' if i < len(TEAM_WORDS) else i}",
            name=f"{TEAM_WORDS[i % len(TEAM_WORDS)].replace('-', ' ').title()}"
            + ("" if i < len(TEAM_WORDS) else f" {i}"),
        )
        for i in range(team_count)
    )
    personas = _share_plan(rng, seat_count)
    indexes = list(range(1, seat_count))
    rng.shuffle(indexes)
    changeable = today - history_start >= 3 and seat_count >= 4
    joiner_count = max(1, round(seat_count * 0.08)) if changeable else 0
    leaver_count = max(1, round(seat_count * 0.05)) if changeable else 0
    joiners = set(indexes[:joiner_count])
    leavers = set(indexes[joiner_count : joiner_count + leaver_count])
    ends = first_of_next_month(today)
    taken: set[str] = set()
    used_ids: set[int] = set()
    seats: list[Seat] = []
    for index in range(seat_count):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        user_id = rng.randint(1_000_000, 199_999_999)
        while user_id in used_ids:
            user_id = rng.randint(1_000_000, 199_999_999)
        used_ids.add(user_id)
        if index in joiners:
            created_day = rng.randint(history_start + 1, today - 1)
        else:
            created_day = history_start - rng.randint(1, 400)
        member_of = list(dict.fromkeys(rng.choices(range(team_count), team_weights, k=2)))
        member_of = member_of[: rng.choice((1, 1, 1, 2))]
        ide_weights = [ide[1] for ide in IDES]
        persona = personas[index]
        seats.append(
            Seat(
                index=index,
                login=_login(first, last, taken),
                user_id=user_id,
                name=f"{first} {last}",
                created_s=day_start_s(created_day) + rng.randrange(DAY_S),
                plan_type="unknown" if rng.random() < 0.05 else plan,
                pending_cancellation_day=ends if index in leavers else None,
                teams=tuple(sorted(member_of)),
                assigning_team=member_of[0] if rng.random() < 0.6 else None,
                ide=rng.choices(range(len(IDES)), ide_weights)[0],
                languages=(rng.randrange(len(LANGUAGES)), rng.randrange(len(LANGUAGES) - 1)),
                language_share=rng.uniform(0.5, 0.9),
                favorite_model=rng.choices(range(len(MODELS)), MODEL_WEIGHTS)[0],
                persona=persona,
                cli_user=persona <= 1 and rng.random() < 0.3,
                within_allowance=persona >= 2 or rng.random() < 0.5,
            )
        )
    parameters = [PERSONAS[s.persona] for s in seats]
    return OrgModel(
        seed=seed,
        plan=plan,
        seats=tuple(seats),
        teams=teams,
        org_id=rng.randint(1_000_000, 299_999_999),
        offset_minutes=rng.choice((-420, -360, -300, 0, 60, 120, 330)),
        history_start=history_start,
        org_key=splitmix64(seed & _MASK64),
        p_weekday=np.asarray(
            [min(1.0, p.p_active_weekday * rng.uniform(0.9, 1.1)) for p in parameters]
        ),
        p_weekend=np.asarray([p.p_active_weekend for p in parameters]),
        mean_interactions=np.asarray(
            [p.mean_interactions * rng.uniform(0.7, 1.3) for p in parameters]
        ),
        center_hour=np.asarray([rng.uniform(7.0, 19.0) for _ in seats]),
        activity_from=np.asarray(
            [max(history_start, s.created_day + 1) for s in seats], dtype=np.int64
        ),
        activity_until=np.asarray(
            [s.pending_cancellation_day or NEVER for s in seats], dtype=np.int64
        ),
    )
