"""Fixed vocabularies of the generated world: models and prices, personas, names.

Everything here is constant data; the random choices that use it live in ``roster`` and ``data``.
Models are kept in alphabetical order: a model's index is its position here, and ties in "most
used model" go to the lower index, i.e. the alphabetically first model.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final


@dataclass(frozen=True, slots=True)
class Model:
    """A model as it appears in usage events, with its list prices.

    Prices are in tenths of a cent per million tokens (integers, so the cost of an event is
    computed exactly); ``token_based`` is false for models billed per request.
    """

    name: str
    weight: float
    input_price: int
    output_price: int
    cache_write_price: int
    cache_read_price: int
    request_cost_tenths: int
    token_based: bool = True
    max_mode_capable: bool = True


MODELS: Final[tuple[Model, ...]] = (
    Model("auto", 0.22, 1250, 6000, 1250, 250, 10, max_mode_capable=False),
    Model("claude-4-sonnet-thinking", 0.09, 3000, 15000, 3750, 300, 20),
    Model("claude-4.1-opus", 0.04, 15000, 75000, 18750, 1500, 50),
    Model("claude-4.5-sonnet", 0.30, 3000, 15000, 3750, 300, 10),
    Model("cursor-small", 0.09, 0, 0, 0, 0, 0, token_based=False, max_mode_capable=False),
    Model("gemini-2.5-pro", 0.08, 1250, 10000, 0, 310, 10),
    Model("gpt-5", 0.18, 1250, 10000, 0, 125, 10),
)
MODEL_NAMES: Final[tuple[str, ...]] = tuple(m.name for m in MODELS)
MODEL_INDEX: Final[dict[str, int]] = {name: i for i, name in enumerate(MODEL_NAMES)}
AUTO_MODEL: Final[int] = MODEL_INDEX["auto"]
SMALL_MODEL: Final[int] = MODEL_INDEX["cursor-small"]

#: Cursor Token Rate: $0.25 per million tokens, i.e. 2.5 units of 1e-5 cent per token.
TOKEN_FEE_UNITS_NUMERATOR: Final[int] = 5
TOKEN_FEE_UNITS_DENOMINATOR: Final[int] = 2


class Feature(IntEnum):
    """Where in the editor a request came from (daily-usage counters)."""

    CHAT = 0
    AGENT = 1
    COMPOSER = 2
    CMDK = 3


FEATURE_NAMES: Final[tuple[str, ...]] = ("chat", "agent", "composer", "cmdk")


class Billing(IntEnum):
    """How a usage event was billed (its ``kind``)."""

    INCLUDED = 0
    USAGE_BASED = 1
    API_KEY = 2


USAGE_BASED_LABEL: Final[str] = "Usage-based"
API_KEY_LABEL: Final[str] = "User API Key"


def included_label(plan: str) -> str:
    """The ``kind`` of an event covered by the subscription on ``plan``."""
    return "Included in Enterprise" if plan == "enterprise" else "Included in Business"


class Surface(IntEnum):
    """Where an agent request ran: the IDE, the CLI (headless) or a cloud agent (headless)."""

    IDE = 0
    CLI = 1
    CLOUD = 2


@dataclass(frozen=True, slots=True)
class Persona:
    """How a kind of member uses Cursor.

    ``feature_mix`` holds the shares of chat, agent, composer and cmd-k requests.
    ``usage_based_from`` is the range of days into the billing cycle after which the member's
    included allowance is used up and requests become usage-based (None: never).
    """

    name: str
    share: float
    p_active_weekday: float
    p_active_weekend: float
    mean_requests: float
    p_tab_only: float
    mean_tabs: float
    feature_mix: tuple[float, float, float, float]
    usage_based_from: tuple[int, int] | None


PERSONAS: Final[tuple[Persona, ...]] = (
    Persona("heavy", 0.15, 0.95, 0.35, 90.0, 0.02, 120.0, (0.15, 0.55, 0.15, 0.15), (4, 12)),
    Persona("moderate", 0.30, 0.85, 0.12, 28.0, 0.06, 150.0, (0.25, 0.35, 0.20, 0.20), (14, 32)),
    Persona("light", 0.25, 0.50, 0.05, 6.0, 0.20, 60.0, (0.40, 0.15, 0.15, 0.30), None),
    Persona("tab-only", 0.10, 0.75, 0.05, 3.0, 0.75, 200.0, (0.35, 0.10, 0.10, 0.45), None),
    Persona("idle", 0.20, 0.04, 0.01, 2.0, 0.30, 20.0, (0.50, 0.10, 0.10, 0.30), None),
)
PERSONA_INDEX: Final[dict[str, int]] = {p.name: i for i, p in enumerate(PERSONAS)}

#: Token counts are drawn from exponential distributions with these means, per feature:
#: (input, output, cache write, cache read).
TOKEN_MEANS: Final[tuple[tuple[int, int, int, int], ...]] = (
    (1500, 700, 2000, 8000),  # chat
    (3000, 1500, 8000, 40000),  # agent
    (2500, 1200, 5000, 20000),  # composer
    (800, 200, 0, 1000),  # cmd-k
)

MAX_REQUESTS_PER_MEMBER_DAY: Final[int] = 600

FIRST_NAMES: Final[tuple[str, ...]] = (
    "Aaliyah", "Aarav", "Adele", "Ahmed", "Aiko", "Alex", "Amara", "Ana", "Andrei", "Anika",
    "Ben", "Bianca", "Carlos", "Chen", "Chiara", "Chloe", "Dana", "Daniel", "Deepa", "Diego",
    "Elena", "Emeka", "Emma", "Erik", "Fatima", "Felix", "Grace", "Hana", "Hugo", "Ines",
    "Ivan", "Jamal", "Jana", "Jonas", "Julia", "Kai", "Kenji", "Lara", "Leila", "Liam",
    "Lucia", "Maya", "Mateo", "Mei", "Nadia", "Nikhil", "Noah", "Olga", "Omar", "Priya",
    "Rafael", "Rosa", "Sam", "Sara", "Sofia", "Tariq", "Theo", "Uma", "Yara", "Zoe",
)  # fmt: skip
LAST_NAMES: Final[tuple[str, ...]] = (
    "Abe", "Adeyemi", "Alvarez", "Andersen", "Bauer", "Becker", "Bianchi", "Brown", "Chen",
    "Costa", "Dubois", "Eriksson", "Fernandes", "Fischer", "Garcia", "Gupta", "Haddad", "Hansen",
    "Ito", "Jansen", "Kaur", "Khan", "Kim", "Kowalski", "Larsen", "Lee", "Lopez", "Martin",
    "Meyer", "Mueller", "Nakamura", "Nguyen", "Novak", "Okafor", "Olsen", "Park", "Patel",
    "Petrov", "Popescu", "Quinn", "Rossi", "Sato", "Schmidt", "Silva", "Singh", "Smith",
    "Suzuki", "Tanaka", "Taylor", "Torres", "Vasquez", "Wagner", "Walker", "Wang", "Weber",
    "Wilson", "Yamamoto", "Yilmaz", "Zhang", "Zimmermann",
)  # fmt: skip
DOMAIN_WORDS: Final[tuple[str, ...]] = (
    "acme", "basalt", "cobalt", "delta", "ember", "fjord", "granite", "harbor", "indigo", "juniper",
    "kestrel", "lumen", "meridian", "nimbus", "orchid", "pioneer", "quartz", "redwood", "summit",
    "tundra", "umber", "vertex", "willow", "zephyr",
)  # fmt: skip
DOMAIN_SUFFIXES: Final[tuple[str, ...]] = ("labs", "works", "soft", "systems", "io", "tech")
EXTENSIONS: Final[tuple[str, ...]] = (
    ".ts", ".tsx", ".py", ".go", ".java", ".rs", ".rb", ".kt", ".swift", ".cs",
)  # fmt: skip
CLIENT_VERSIONS: Final[tuple[str, ...]] = ("1.7.52", "2.0.34", "2.0.43", "2.1.26", "2.1.39")
