"""Teams held in memory: their configuration, keys, generated data, limits and request log."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from koalr_sandbox.clock import Clock
from koalr_sandbox.data import TeamData, cycle_start_day, splitmix64
from koalr_sandbox.limits import Bucket, RateLimiter
from koalr_sandbox.roster import build_roster
from koalr_sandbox.units import day_of_s, iso_instant

Plan = Literal["team", "business", "enterprise"]
Rate = Annotated[float, Field(ge=0.0, le=1.0)]
Limit = Annotated[int, Field(ge=1, le=1_000_000)]


class RateLimits(BaseModel):
    """Requests per window (a minute by default) for each kind of endpoint."""

    model_config = ConfigDict(extra="forbid")

    default: Limit = 20
    usage_events: Limit = 60
    analytics: Limit = 100


class RateLimitsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default: Limit | None = None
    usage_events: Limit | None = None
    analytics: Limit | None = None


class TeamConfig(BaseModel):
    """Everything about a team that can change while it runs."""

    model_config = ConfigDict(extra="forbid")

    plan: Plan = "business"
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    rate_limits_enabled: bool = True
    rate_window_s: Annotated[float, Field(gt=0.0, le=3600.0)] = 60.0
    retry_after_ratio: Rate = 0.5
    latency_ms: Annotated[int, Field(ge=0, le=120_000)] = 0
    fault_rate_5xx: Rate = 0.0
    fault_rate_stall: Rate = 0.0
    stall_s: Annotated[float, Field(ge=0.0, le=600.0)] = 30.0
    legacy_shapes: bool = False
    visibility_delay_s: Annotated[int, Field(ge=0, le=30 * 86_400)] = 3600
    visible_until_ms: Annotated[int, Field(ge=0)] | None = None
    """Freeze what is visible at an instant (epoch ms), whatever the clock says; None = moving."""


class ConfigPatch(BaseModel):
    """A partial :class:`TeamConfig`; fields left out (or null) keep their value."""

    model_config = ConfigDict(extra="forbid")

    plan: Plan | None = None
    rate_limits: RateLimitsPatch | None = None
    rate_limits_enabled: bool | None = None
    rate_window_s: Annotated[float, Field(gt=0.0, le=3600.0)] | None = None
    retry_after_ratio: Rate | None = None
    latency_ms: Annotated[int, Field(ge=0, le=120_000)] | None = None
    fault_rate_5xx: Rate | None = None
    fault_rate_stall: Rate | None = None
    stall_s: Annotated[float, Field(ge=0.0, le=600.0)] | None = None
    legacy_shapes: bool | None = None
    visibility_delay_s: Annotated[int, Field(ge=0, le=30 * 86_400)] | None = None
    visible_until_ms: Annotated[int, Field(ge=0)] | None = None

    def apply_to(self, config: TeamConfig) -> TeamConfig:
        merged = config.model_dump()
        for name in ConfigPatch.model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, RateLimitsPatch):
                merged["rate_limits"].update(value.model_dump(exclude_none=True))
            else:
                merged[name] = value
        return TeamConfig.model_validate(merged)


class TeamCreate(ConfigPatch):
    """Body of ``POST /_sandbox/teams``: the shape of the team plus any runtime config."""

    members: Annotated[int, Field(ge=1, le=5000)] = 50
    days: Annotated[int, Field(ge=1, le=365)] = 60
    seed: Annotated[int, Field(ge=0, lt=1 << 63)] | None = None


@dataclass(frozen=True, slots=True)
class RequestRecord:
    method: str
    path: str
    status: int
    at: float
    retry_after: int | None


def request_log_body(log: list[RequestRecord], since: int) -> dict[str, Any]:
    """The answer of a ``/requests`` admin route: entries from ``since`` on, and the next index."""
    entries = log[since:]
    return {
        "requests": [
            {
                "method": r.method,
                "path": r.path,
                "status": r.status,
                "at": iso_instant(r.at),
                "retry_after": r.retry_after,
            }
            for r in entries
        ],
        "next": since + len(entries),
    }


def new_api_key(*, legacy: bool) -> str:
    return ("key_" if legacy else "crsr_") + secrets.token_hex(32)


class Team:
    """One generated team."""

    def __init__(
        self,
        team_id: str,
        spec: TeamCreate,
        *,
        seed: int,
        created_at: float,
        event_cache_events: int,
    ) -> None:
        self.team_id = team_id
        self.seed = seed
        self.member_count = spec.members
        self.days = spec.days
        self.created_at = created_at
        today = day_of_s(created_at)
        self.config = spec.apply_to(TeamConfig())
        self.api_key = new_api_key(legacy=self.config.legacy_shapes)
        roster = build_roster(seed, spec.members, today - spec.days, today)
        self.data = TeamData(roster, seed, event_cache_events=event_cache_events)
        self.limiter: RateLimiter[Bucket] = RateLimiter()
        self.faults = random.Random(splitmix64(seed ^ 0x5EED))
        self.log: list[RequestRecord] = []

    @property
    def roster_start(self) -> int:
        return self.data.roster.history_start

    def cycle_start(self, today: int) -> int:
        return cycle_start_day(today, self.data.roster.cycle_day_of_month)


class UnknownTeamError(KeyError):
    pass


class TeamRegistry:
    """All teams of one sandbox process, found by id or by API key."""

    def __init__(self, clock: Clock, *, event_cache_events: int = 2_000_000) -> None:
        self.clock = clock
        self._event_cache_events = event_cache_events
        self._teams: dict[str, Team] = {}
        self._by_key: dict[str, str] = {}
        self._revoked: dict[str, str] = {}

    def create(self, spec: TeamCreate) -> Team:
        seed = spec.seed if spec.seed is not None else secrets.randbelow(1 << 31)
        team_id = str(secrets.randbelow(9_000_000) + 1_000_000)
        while team_id in self._teams:
            team_id = str(secrets.randbelow(9_000_000) + 1_000_000)
        team = Team(
            team_id,
            spec,
            seed=seed,
            created_at=self.clock.now(),
            event_cache_events=self._event_cache_events,
        )
        self._teams[team_id] = team
        self._by_key[team.api_key] = team_id
        return team

    def get(self, team_id: str) -> Team:
        team = self._teams.get(team_id)
        if team is None:
            raise UnknownTeamError(team_id)
        return team

    def delete(self, team_id: str) -> None:
        team = self.get(team_id)
        del self._teams[team_id]
        self._by_key.pop(team.api_key, None)
        self._revoked = {k: t for k, t in self._revoked.items() if t != team_id}

    def by_key(self, api_key: str) -> Team | None:
        team_id = self._by_key.get(api_key)
        return None if team_id is None else self._teams.get(team_id)

    def revoked_owner(self, api_key: str) -> Team | None:
        """The team a revoked key used to belong to (for its request log)."""
        team_id = self._revoked.get(api_key)
        return None if team_id is None else self._teams.get(team_id)

    def rotate_key(self, team_id: str) -> Team:
        team = self.get(team_id)
        del self._by_key[team.api_key]
        self._revoked[team.api_key] = team_id
        team.api_key = new_api_key(legacy=team.config.legacy_shapes)
        self._by_key[team.api_key] = team_id
        return team

    def __len__(self) -> int:
        return len(self._teams)
