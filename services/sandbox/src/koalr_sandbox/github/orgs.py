"""GitHub organisations held in memory: configuration, tokens, generated data, limits, request log."""

from __future__ import annotations

import random
import secrets
import string
from dataclasses import dataclass
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from koalr_sandbox.catalog import DOMAIN_WORDS
from koalr_sandbox.clock import Clock
from koalr_sandbox.data import splitmix64
from koalr_sandbox.github.catalog import ALL_PERMISSIONS, OrgPlan, Permission
from koalr_sandbox.github.model import OrgModel, build_org, day_of_epoch_s
from koalr_sandbox.limits import RateLimiter
from koalr_sandbox.teams import RequestRecord

Rate = Annotated[float, Field(ge=0.0, le=1.0)]
Limit = Annotated[int, Field(ge=1, le=1_000_000)]
HOUR_S: Final[int] = 3600
_TOKEN_ALPHABET: Final[str] = string.ascii_letters + string.digits


class GithubConfig(BaseModel):
    """Everything about an organisation that can change while it runs."""

    model_config = ConfigDict(extra="forbid")

    plan: OrgPlan = "business"
    metrics_policy: bool = True
    """The org's "Copilot usage metrics" policy; off, the reports answer 403 (seats still work)."""
    rate_limits_enabled: bool = True
    primary_limit_per_hour: Limit = 5000
    primary_status: Literal[403, 429] = 403
    secondary_limit_per_minute: Limit = 900
    """Requests per rolling minute on one route before a secondary limit answers."""
    secondary_429_ratio: Rate = 0.5
    """Share of secondary-limit answers that are 429 (the others are 403)."""
    max_concurrent: Limit = 100
    latency_ms: Annotated[int, Field(ge=0, le=120_000)] = 0
    fault_rate_5xx: Rate = 0.0
    fault_rate_stall: Rate = 0.0
    stall_s: Annotated[float, Field(ge=0.0, le=600.0)] = 30.0
    publish_lag_s: Annotated[int, Field(ge=0, le=30 * 86_400)] = 2 * 86_400
    """A day is published this long after it ends (00:00 UTC two days later by default)."""
    visible_until_ms: Annotated[int, Field(ge=0)] | None = None
    """Freeze publication and billing visibility at an instant (epoch ms); None = moving."""
    link_ttl_s: Annotated[int, Field(ge=1, le=7 * 86_400)] = 600
    rows_per_file: Annotated[int, Field(ge=1, le=100_000)] = 250
    empty_as_204: bool = False
    """Days without a report answer 204 on the org 1-day routes instead of empty links."""


class GithubConfigPatch(BaseModel):
    """A partial :class:`GithubConfig`; fields left out (or null) keep their value."""

    model_config = ConfigDict(extra="forbid")

    plan: OrgPlan | None = None
    metrics_policy: bool | None = None
    rate_limits_enabled: bool | None = None
    primary_limit_per_hour: Limit | None = None
    primary_status: Literal[403, 429] | None = None
    secondary_limit_per_minute: Limit | None = None
    secondary_429_ratio: Rate | None = None
    max_concurrent: Limit | None = None
    latency_ms: Annotated[int, Field(ge=0, le=120_000)] | None = None
    fault_rate_5xx: Rate | None = None
    fault_rate_stall: Rate | None = None
    stall_s: Annotated[float, Field(ge=0.0, le=600.0)] | None = None
    publish_lag_s: Annotated[int, Field(ge=0, le=30 * 86_400)] | None = None
    visible_until_ms: Annotated[int, Field(ge=0)] | None = None
    link_ttl_s: Annotated[int, Field(ge=1, le=7 * 86_400)] | None = None
    rows_per_file: Annotated[int, Field(ge=1, le=100_000)] | None = None
    empty_as_204: bool | None = None

    def apply_to(self, config: GithubConfig) -> GithubConfig:
        changes = {
            name: value
            for name in GithubConfigPatch.model_fields
            if (value := getattr(self, name)) is not None
        }
        return GithubConfig.model_validate(config.model_dump() | changes)


class OrgCreate(GithubConfigPatch):
    """Body of ``POST /_sandbox/github/orgs``: the shape of the org plus any runtime config."""

    seats: Annotated[int, Field(ge=1, le=5000)] = 40
    days: Annotated[int, Field(ge=1, le=365)] = 60
    seed: Annotated[int, Field(ge=0, lt=1 << 63)] | None = None


class TokenCreate(BaseModel):
    """Body of ``POST /_sandbox/github/orgs/{org}/tokens``: what the new token may read."""

    model_config = ConfigDict(extra="forbid")

    permissions: list[Permission] = Field(default_factory=list)


def new_token() -> str:
    return "ghp_" + "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(36))


@dataclass(slots=True)
class PrimaryWindow:
    """The primary (hourly) limit of a token: a fixed window opened by its first request."""

    reset_s: int = 0
    used: int = 0

    def take(self, now_s: float, limit: int) -> bool:
        """Count a request at ``now_s``; False when the window's budget is spent."""
        if now_s >= self.reset_s:
            self.reset_s = int(now_s) + HOUR_S
            self.used = 0
        if self.used >= limit:
            return False
        self.used += 1
        return True


class GithubOrg:
    """One generated organisation."""

    def __init__(self, login: str, spec: OrgCreate, *, seed: int, created_at: float) -> None:
        self.login = login
        self.seed = seed
        self.days = spec.days
        self.created_at = created_at
        today = day_of_epoch_s(created_at)
        self.config = spec.apply_to(GithubConfig())
        self.model: OrgModel = build_org(
            seed, spec.seats, self.config.plan, today - spec.days, today
        )
        self.token = new_token()
        self.tokens: dict[str, frozenset[Permission]] = {self.token: ALL_PERMISSIONS}
        self.primary: dict[str, PrimaryWindow] = {}
        self.secondary: RateLimiter[str] = RateLimiter()
        self.in_flight = 0
        self.faults = random.Random(splitmix64(seed ^ 0x61_7468_7562))
        self.log: list[RequestRecord] = []


class UnknownOrgError(KeyError):
    pass


class OrgRegistry:
    """All GitHub organisations of one sandbox process, found by login or by token."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._orgs: dict[str, GithubOrg] = {}
        self._by_token: dict[str, str] = {}
        self._revoked: dict[str, str] = {}

    def create(self, spec: OrgCreate) -> GithubOrg:
        seed = spec.seed if spec.seed is not None else secrets.randbelow(1 << 31)
        rng = random.Random(seed)
        base = f"{rng.choice(DOMAIN_WORDS)}-{rng.choice(DOMAIN_WORDS)}-{seed % 1000}"
        login, suffix = base, 1
        while login.lower() in self._orgs:
            suffix += 1
            login = f"{base}-{suffix}"
        org = GithubOrg(login, spec, seed=seed, created_at=self.clock.now())
        self._orgs[login.lower()] = org
        self._by_token[org.token] = login.lower()
        return org

    def get(self, login: str) -> GithubOrg:
        org = self._orgs.get(login.lower())
        if org is None:
            raise UnknownOrgError(login)
        return org

    def delete(self, login: str) -> None:
        org = self.get(login)
        del self._orgs[login.lower()]
        self._by_token = {t: o for t, o in self._by_token.items() if o != login.lower()}
        self._revoked = {t: o for t, o in self._revoked.items() if o != login.lower()}
        org.tokens.clear()

    def by_token(self, token: str) -> GithubOrg | None:
        login = self._by_token.get(token)
        return None if login is None else self._orgs.get(login)

    def revoked_owner(self, token: str) -> GithubOrg | None:
        login = self._revoked.get(token)
        return None if login is None else self._orgs.get(login)

    def add_token(self, org: GithubOrg, permissions: frozenset[Permission]) -> str:
        token = new_token()
        org.tokens[token] = permissions
        self._by_token[token] = org.login.lower()
        return token

    def revoke(self, org: GithubOrg, token: str) -> None:
        if org.tokens.pop(token, None) is not None:
            self._by_token.pop(token, None)
            self._revoked[token] = org.login.lower()

    def rotate(self, org: GithubOrg) -> str:
        """Revoke the org's main token and issue a new one with every permission."""
        self.revoke(org, org.token)
        org.token = self.add_token(org, ALL_PERMISSIONS)
        return org.token

    def __len__(self) -> int:
        return len(self._orgs)
