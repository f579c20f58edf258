"""The members of a generated team, drawn once from the team's seed.

A roster is small (one record per member), so it is built eagerly; the per-day activity in
``data`` is generated lazily from it. Besides the records, the roster keeps the per-member
parameters the day generator needs as numpy columns.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from koalr_sandbox.catalog import (
    CLIENT_VERSIONS,
    DOMAIN_SUFFIXES,
    DOMAIN_WORDS,
    EXTENSIONS,
    FIRST_NAMES,
    LAST_NAMES,
    MODELS,
    PERSONAS,
    SMALL_MODEL,
)

NEVER: Final[int] = 1 << 40
"""Sentinel day ordinal for "not removed" and "never usage-based"."""

_ID_ALPHABET: Final[str] = string.ascii_letters + string.digits

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Member:
    index: int
    user_id: str
    user_number: int
    name: str
    email: str
    role: str
    persona: str
    join_day: int
    removal_day: int | None
    hard_limit_override_dollars: int
    monthly_limit_dollars: int | None
    client_version: str
    apply_extension: str
    tab_extension: str

    def overlaps(self, first_day: int, last_day: int) -> bool:
        """Whether the membership covers any day of ``[first_day, last_day]``."""
        return self.join_day <= last_day and (
            self.removal_day is None or self.removal_day > first_day
        )

    def is_removed(self, today: int) -> bool:
        return self.removal_day is not None and self.removal_day <= today


@dataclass(frozen=True, slots=True)
class MemberColumns:
    """Per-member generation parameters, one numpy entry per member (index order)."""

    join_day: I64
    removal_day: I64
    persona: I64
    p_active_weekday: F64
    p_active_weekend: F64
    mean_requests: F64
    p_tab_only: F64
    mean_tabs: F64
    tab_accept_rate: F64
    feature_cumulative: F64  # shape (members, 3)
    favorite_model: I64
    favorite_weight: F64
    center_hour: F64
    usage_based_from: I64  # day of the billing cycle (0-based); NEVER for none
    api_key_share: F64
    cli_share: F64
    cloud_share: F64
    bugbot_rate: F64


@dataclass(frozen=True, slots=True)
class Roster:
    domain: str
    cycle_day_of_month: int
    default_limit_dollars: int
    history_start: int
    members: tuple[Member, ...]
    columns: MemberColumns
    by_email: dict[str, int]
    by_user_id: dict[str, int]
    by_user_number: dict[int, int]

    def __len__(self) -> int:
        return len(self.members)


def _user_id(rng: random.Random) -> str:
    return "user_" + "".join(rng.choice(_ID_ALPHABET) for _ in range(28))


def _persona_plan(rng: random.Random, count: int) -> list[int]:
    """Persona indices for ``count`` members in the personas' shares, shuffled.

    Teams of five or more get at least one heavy, one tab-only and one idle member.
    """
    counts = [int(p.share * count) for p in PERSONAS]
    order = sorted(range(len(PERSONAS)), key=lambda i: -(PERSONAS[i].share * count % 1))
    for i in order[: count - sum(counts)]:
        counts[i] += 1
    if count >= 5:
        for wanted in (0, 3, 4):
            if counts[wanted] == 0:
                donor = max(range(len(counts)), key=lambda i: counts[i])
                counts[donor] -= 1
                counts[wanted] += 1
    plan = [i for i, c in enumerate(counts) for _ in range(c)]
    rng.shuffle(plan)
    return plan


def _identity(
    rng: random.Random, domain: str, seen_emails: set[str], used_numbers: set[int]
) -> tuple[str, str, int]:
    """A name, a unique email and a unique numeric user id."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    local = f"{first}.{last}".lower()
    email, suffix = f"{local}@{domain}", 1
    while email in seen_emails:
        suffix += 1
        email = f"{local}{suffix}@{domain}"
    seen_emails.add(email)
    number = rng.randint(10_000, 9_999_999)
    while number in used_numbers:
        number = rng.randint(10_000, 9_999_999)
    used_numbers.add(number)
    return f"{first} {last}", email, number


_MODEL_WEIGHTS: Final[tuple[float, ...]] = tuple(
    0.0 if i == SMALL_MODEL else m.weight for i, m in enumerate(MODELS)
)


def _parameters(rng: random.Random, persona_index: int) -> dict[str, float]:
    """The generation parameters of one member (see :class:`MemberColumns`)."""
    persona = PERSONAS[persona_index]
    agentic = persona.name in {"heavy", "moderate"}
    usage_based_from = NEVER
    if persona.usage_based_from is not None:
        usage_based_from = rng.randint(*persona.usage_based_from)
    return {
        "persona": persona_index,
        "p_active_weekday": min(1.0, persona.p_active_weekday * rng.uniform(0.9, 1.1)),
        "p_active_weekend": persona.p_active_weekend,
        "mean_requests": persona.mean_requests * rng.uniform(0.7, 1.3),
        "p_tab_only": persona.p_tab_only,
        "mean_tabs": persona.mean_tabs * rng.uniform(0.5, 1.5),
        "tab_accept_rate": rng.uniform(0.2, 0.45),
        "favorite_model": rng.choices(range(len(MODELS)), _MODEL_WEIGHTS)[0],
        "favorite_weight": rng.uniform(0.3, 0.7),
        "center_hour": rng.uniform(8.0, 19.0),
        "usage_based_from": usage_based_from,
        "api_key_share": 0.25 if rng.random() < 0.08 else 0.0,
        "cli_share": 0.15 if agentic and rng.random() < 0.2 else 0.0,
        "cloud_share": 0.10 if agentic and rng.random() < 0.1 else 0.0,
        "bugbot_rate": 0.3 if agentic and rng.random() < 0.3 else 0.0,
    }


def _columns(rows: list[dict[str, float]], features: list[tuple[float, ...]]) -> MemberColumns:
    def ints(name: str) -> I64:
        return np.asarray([row[name] for row in rows], dtype=np.int64)

    def floats(name: str) -> F64:
        return np.asarray([row[name] for row in rows], dtype=np.float64)

    return MemberColumns(
        join_day=ints("join_day"),
        removal_day=ints("removal_day"),
        persona=ints("persona"),
        p_active_weekday=floats("p_active_weekday"),
        p_active_weekend=floats("p_active_weekend"),
        mean_requests=floats("mean_requests"),
        p_tab_only=floats("p_tab_only"),
        mean_tabs=floats("mean_tabs"),
        tab_accept_rate=floats("tab_accept_rate"),
        feature_cumulative=np.asarray(features, dtype=np.float64).reshape(-1, 3),
        favorite_model=ints("favorite_model"),
        favorite_weight=floats("favorite_weight"),
        center_hour=floats("center_hour"),
        usage_based_from=ints("usage_based_from"),
        api_key_share=floats("api_key_share"),
        cli_share=floats("cli_share"),
        cloud_share=floats("cloud_share"),
        bugbot_rate=floats("bugbot_rate"),
    )


def build_roster(seed: int, member_count: int, history_start: int, today: int) -> Roster:
    """Draw a team of ``member_count`` members whose history starts on ``history_start``.

    A few members join during the history and a few are removed during it (never the owners).
    """
    rng = random.Random(seed)
    domain = f"{rng.choice(DOMAIN_WORDS)}{rng.choice(DOMAIN_SUFFIXES)}.example"
    cycle_day_of_month = rng.randint(1, 28)
    default_limit_dollars = rng.choice((50, 100, 200))
    personas = _persona_plan(rng, member_count)

    candidates = list(range(2, member_count))
    rng.shuffle(candidates)
    changeable = today > history_start + 1 and member_count >= 4
    joiner_count = max(1, round(member_count * 0.08)) if changeable else 0
    leaver_count = max(1, round(member_count * 0.06)) if changeable else 0
    joiners = set(candidates[:joiner_count])
    leavers = set(candidates[joiner_count : joiner_count + leaver_count])

    members: list[Member] = []
    rows: list[dict[str, float]] = []
    features: list[tuple[float, ...]] = []
    seen_emails: set[str] = set()
    used_numbers: set[int] = set()
    for index in range(member_count):
        name, email, number = _identity(rng, domain, seen_emails, used_numbers)
        join_day = rng.randint(history_start + 1, today) if index in joiners else history_start
        removal_day = rng.randint(history_start + 1, today) if index in leavers else None
        extension = rng.choice(EXTENSIONS)
        members.append(
            Member(
                index=index,
                user_id=_user_id(rng),
                user_number=number,
                name=name,
                email=email,
                role="owner" if index == 0 else ("free-owner" if index == 1 else "member"),
                persona=PERSONAS[personas[index]].name,
                join_day=join_day,
                removal_day=removal_day,
                hard_limit_override_dollars=rng.choice((0, 0, 0, 0, 100, 250)),
                monthly_limit_dollars=rng.choice((None, None, None, 200, 500)),
                client_version=rng.choice(CLIENT_VERSIONS),
                apply_extension=extension,
                tab_extension=extension if rng.random() < 0.7 else rng.choice(EXTENSIONS),
            )
        )
        row = _parameters(rng, personas[index])
        row["join_day"] = join_day
        row["removal_day"] = NEVER if removal_day is None else removal_day
        rows.append(row)
        mix = PERSONAS[personas[index]].feature_mix
        features.append((mix[0], mix[0] + mix[1], mix[0] + mix[1] + mix[2]))

    return Roster(
        domain=domain,
        cycle_day_of_month=cycle_day_of_month,
        default_limit_dollars=default_limit_dollars,
        history_start=history_start,
        members=tuple(members),
        columns=_columns(rows, features),
        by_email={m.email: m.index for m in members},
        by_user_id={m.user_id: m.index for m in members},
        by_user_number={m.user_number: m.index for m in members},
    )
