"""Fixed vocabulary of the GitHub Copilot half: plans, prices, models, features, editors, dates."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Final, Literal

OrgPlan = Literal["business", "enterprise"]
SeatPlan = Literal["business", "enterprise", "unknown"]


class Permission(StrEnum):
    """What a token may read (a classic scope or fine-grained permission, simplified)."""

    METRICS = "copilot_metrics"
    """The usage-metrics reports ("Organization Copilot metrics", or ``read:org``)."""
    SEATS = "copilot_seats"
    """Billing and seats ("GitHub Copilot Business", or ``manage_billing:copilot``)."""
    BILLING = "billing_usage"
    """The enhanced billing usage routes (premium requests)."""


ALL_PERMISSIONS: Final[frozenset[Permission]] = frozenset(Permission)

API_VERSIONS: Final[frozenset[str]] = frozenset({"2022-11-28", "2026-03-10"})
DEFAULT_API_VERSION: Final[str] = "2022-11-28"
DOCUMENTATION_URL: Final[str] = "https://docs.github.com/rest"

#: List price per seat and month, in cents.
SEAT_PRICE_CENTS: Final[dict[OrgPlan, int]] = {"business": 1900, "enterprise": 3900}
#: Premium requests beyond the allowance cost $0.04 each.
PREMIUM_REQUEST_CENTS: Final[int] = 4

#: The first day of org-level usage-metrics reports, and how far back they reach.
FIRST_ORG_REPORT_DAY: Final[int] = date(2025, 12, 12).toordinal()
REPORT_HISTORY_DAYS: Final[int] = 365
#: The latest reports span this many days.
LATEST_WINDOW_DAYS: Final[int] = 28
#: Teams with fewer seated users on a day are left out of ``user-teams-1-day``.
TEAM_REPORT_MIN_USERS: Final[int] = 5

#: Chat and agent models (completions are not attributed to a model).
MODELS: Final[tuple[str, ...]] = (
    "claude-sonnet-4.5",
    "gpt-5.3",
    "gpt-4.1",
    "claude-opus-4.5",
    "gemini-2.5-pro",
    "gpt-5-mini",
)
MODEL_WEIGHTS: Final[tuple[float, ...]] = (0.34, 0.22, 0.18, 0.08, 0.1, 0.08)
#: Models whose requests count as premium requests, with their multiplier.
PREMIUM_MULTIPLIER: Final[dict[str, int]] = {
    "claude-sonnet-4.5": 1,
    "gpt-5.3": 1,
    "claude-opus-4.5": 10,
    "gemini-2.5-pro": 1,
}
#: The name GitHub's billing usage gives each premium model.
BILLING_MODEL_NAME: Final[dict[str, str]] = {
    "claude-sonnet-4.5": "Claude Sonnet 4.5",
    "gpt-5.3": "GPT-5.3",
    "claude-opus-4.5": "Claude Opus 4.5",
    "gemini-2.5-pro": "Gemini 2.5 Pro",
}

#: The billing model a premium spike (``POST …/premium-spike``) is billed as.
SPIKE_BILLING_MODEL: Final[str] = "Claude Opus 4.5"

CODE_COMPLETION: Final[str] = "code_completion"
#: Features that carry a model, with weights.
MODEL_FEATURES: Final[tuple[str, ...]] = (
    "chat_panel_agent_mode",
    "chat_panel_ask_mode",
    "chat_panel_edit_mode",
    "agent_edit",
    "chat_inline",
)
MODEL_FEATURE_WEIGHTS: Final[tuple[float, ...]] = (0.4, 0.3, 0.1, 0.1, 0.1)
#: Interactions recorded without a model end up under this feature.
UNATTRIBUTED_FEATURE: Final[str] = "chat_panel_unknown_mode"

#: Editors: (name, share of users, IDE version, plugin, plugin version).
IDES: Final[tuple[tuple[str, float, str, str, str], ...]] = (
    ("vscode", 0.6, "1.107.1", "copilot-chat", "0.35.3"),
    ("intellij", 0.2, "2025.3.1", "copilot-intellij", "1.5.61"),
    ("visualstudio", 0.1, "17.14.9", "copilot-vs", "17.14.512"),
    ("neovim", 0.05, "0.11.4", "copilot.vim", "1.48.0"),
    ("xcode", 0.05, "26.1", "copilot-xcode", "0.44.0"),
)
LANGUAGES: Final[tuple[str, ...]] = (
    "python",
    "typescript",
    "go",
    "java",
    "rust",
    "csharp",
    "unknown",
)
CLI_VERSION: Final[str] = "1.0.8"
TEAM_WORDS: Final[tuple[str, ...]] = (
    "platform", "frontend", "backend", "data", "mobile", "infra", "payments", "search",
    "growth", "security", "ml", "design-systems", "api", "billing", "tooling", "docs",
)  # fmt: skip
