"""The sandbox's ground truth against what the pipeline shows, for both providers.

Each ``*_differences`` function lists every way a summary entry differs from the truth over the
entry's own range (empty when they agree), so a failing test says what is wrong, not just that
something is.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from koalr_devstack import truth as truth_checks
from koalr_devstack.truth import range_start
from tests.e2e.client import Platform, today_utc, wait_for

Differences = Callable[[Platform, str, dict[str, Any]], list[str]]


def end_of_yesterday_ms() -> int:
    """Sandbox visibility frozen here keeps the truth still while the clock moves."""
    midnight = datetime.combine(today_utc(), datetime.min.time(), tzinfo=UTC)
    return int(midnight.timestamp() * 1000) - 1


def new_team(platform: Platform, **spec: Any) -> dict[str, str]:
    """A Cursor team whose visible data ends with yesterday."""
    return platform.create_team(
        **{"plan": "business", "days": 45, "visibility_delay_s": 0, **spec},
        visible_until_ms=end_of_yesterday_ms(),
    )


def new_github_org(platform: Platform, **spec: Any) -> dict[str, str]:
    """A GitHub organisation whose publication, premium usage and seat activity end with
    yesterday (so its ``data_through`` is the truth's, about four days back)."""
    return platform.create_github_org(
        **{"plan": "business", "days": 45, **spec}, visible_until_ms=end_of_yesterday_ms()
    )


def cursor_differences(platform: Platform, team_id: str, entry: dict[str, Any]) -> list[str]:
    """Every way a Cursor admin summary differs from the sandbox's truth over the same range."""
    truth = platform.truth(team_id, range_start(entry), today_utc())
    return truth_checks.cursor_differences(entry, truth)


def copilot_differences(platform: Platform, org: str, entry: dict[str, Any]) -> list[str]:
    """Every way a Copilot admin summary differs from the sandbox's truth (section 6b) over the
    same range, the billing month included."""
    today = today_utc()
    month_start = today.replace(day=1)
    truth = platform.github_truth(org, range_start(entry), today)
    month = platform.github_truth(org, month_start, today)
    return truth_checks.copilot_differences(entry, truth, month, month_start)


def assert_matches(
    platform: Platform, integration_id: str, external_id: str, differences: Differences
) -> Any:
    """Wait (briefly: the last records may still be in flight) until the admin summary of the
    integration equals the truth, else fail with every difference."""

    def probe() -> Any:
        entry = platform.provider_summary(integration_id)
        return entry if entry and not differences(platform, external_id, entry) else None

    try:
        return wait_for(probe, timeout_s=60, what="the summary to equal the truth", interval_s=1)
    except AssertionError:
        entry = platform.provider_summary(integration_id)
        problems = differences(platform, external_id, entry) if entry else ["no summary entry"]
        raise AssertionError("summary differs from the truth:\n" + "\n".join(problems)) from None


def walk(value: Any) -> list[tuple[str, Any]]:
    """Every (key, value) pair of a JSON document, at any depth."""
    found: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((key, item))
            found.extend(walk(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(walk(item))
    return found
