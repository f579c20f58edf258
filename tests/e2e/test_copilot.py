"""GitHub Copilot from connect to dashboard numbers, side by side with a Cursor team in the same
org, with every service as its own process.

The sandbox's GitHub organisations freeze publication, premium usage and seat activity at the end
of yesterday (``visible_until_ms``), so the pipeline's numbers can be compared exactly with the
truth (architecture section 6b) while the clock moves.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.e2e.checks import (
    assert_matches,
    copilot_differences,
    cursor_differences,
    new_github_org,
    new_team,
    walk,
)
from tests.e2e.client import Platform, today_utc, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(600)]

MIN_GROUP_SIZE = 5
"""The metrics service's default ``min_group_size``."""


def _range(days: int = 30) -> tuple[date, date]:
    return today_utc() - timedelta(days=days - 1), today_utc()


def _published_through(platform: Platform, org: str) -> date:
    """The last day GitHub (the sandbox) published, by the truth."""
    start, end = _range()
    through = platform.github_truth(org, start, end)["data_through"]
    assert through is not None, "the organisation should have published days in the range"
    return date.fromisoformat(through)


def _connect_copilot(platform: Platform, org: dict[str, str]) -> dict[str, Any]:
    response = platform.connect_copilot(org)
    assert response.status_code == 201, response.text
    assert org["token"] not in response.text
    assert "token" not in response.json()
    integration: dict[str, Any] = response.json()
    return integration


@pytest.fixture(scope="module")
def cursor(platform: Platform) -> dict[str, Any]:
    """A Business-plan Cursor team of 12, connected and backfilled."""
    team = new_team(platform, members=12, seed=21)
    response = platform.connect(team)
    assert response.status_code == 201, response.text
    integration = response.json()
    platform.wait_synced(integration["id"])
    return {"team": team, "integration": integration}


@pytest.fixture(scope="module")
def copilot(platform: Platform, cursor: dict[str, Any]) -> dict[str, Any]:
    """A 40-seat Copilot Business organisation in the same Koalr org, connected and backfilled."""
    org = new_github_org(platform, seats=40, seed=12)
    integration = _connect_copilot(platform, org)
    assert integration["provider"] == "github_copilot"
    assert (integration["plan"], integration["status"]) == ("business", "active")
    assert integration["external_id"] == org["org"]
    platform.wait_synced(integration["id"], data_through=_published_through(platform, org["org"]))
    return {"org": org, "integration": integration}


def test_copilot_equals_the_truth_for_every_day_beside_cursor(
    platform: Platform, cursor: dict[str, Any], copilot: dict[str, Any]
) -> None:
    integration_id, org = copilot["integration"]["id"], copilot["org"]["org"]
    entry = assert_matches(platform, integration_id, org, copilot_differences)
    assert entry["provider"] == "github_copilot"
    assert len(entry["dau"]) == 30
    through = _published_through(platform, org)
    # A day is published at 00:00 UTC two full days after it ends; publication stops at the end
    # of yesterday here, so the last published day is four days back.
    assert through == today_utc() - timedelta(days=4)
    assert entry["freshness"]["data_through"] == through.isoformat()
    assert all(p["active_users"] == 0 for p in entry["dau"] if p["date"] > through.isoformat())
    assert sum(m["requests"] for m in entry["models"]) == sum(
        p["requests"] for p in entry["requests"]
    )
    assert "unattributed" in {m["model"] for m in entry["models"]}
    assert entry["spend"]["seats"]["total"] == 40
    # Days not yet published still cost their seats.
    last_day = entry["spend"]["daily"][-1]
    assert last_day["date"] == today_utc().isoformat()
    assert Decimal(str(last_day["cents"])) > 0

    assert_matches(
        platform, cursor["integration"]["id"], cursor["team"]["team_id"], cursor_differences
    )


def test_the_summary_without_provider_holds_both_cursor_first(
    platform: Platform, cursor: dict[str, Any], copilot: dict[str, Any]
) -> None:
    assert_matches(
        platform, copilot["integration"]["id"], copilot["org"]["org"], copilot_differences
    )
    status, body = platform.summary(platform.admin)
    assert status == 200, body
    providers = [p["provider"] for p in body["providers"]]
    assert providers == sorted(providers, key=lambda p: p != "cursor"), "Cursor first"
    ids = {p["integration_id"] for p in body["providers"]}
    assert {cursor["integration"]["id"], copilot["integration"]["id"]} <= ids

    status, only = platform.summary(platform.admin, provider="github_copilot")
    assert status == 200, only
    assert {p["provider"] for p in only["providers"]} == {"github_copilot"}
    both = {p["integration_id"]: p for p in body["providers"]}
    figures = ("provider", "dau", "requests", "models", "spend")
    for entry in only["providers"]:
        side_by_side = both[entry["integration_id"]]
        assert {k: entry[k] for k in figures} == {k: side_by_side[k] for k in figures}
    status, only = platform.summary(platform.admin, provider="cursor")
    assert status == 200, only
    assert [p["integration_id"] for p in only["providers"]] == [
        p["integration_id"] for p in body["providers"] if p["provider"] == "cursor"
    ]


def test_copilot_members_by_login_equal_the_truth(
    platform: Platform, copilot: dict[str, Any]
) -> None:
    org = copilot["org"]["org"]
    assert_matches(platform, copilot["integration"]["id"], org, copilot_differences)
    truth = platform.github_truth(org, *_range())
    status, body = platform.members(platform.admin, provider="github_copilot")
    assert status == 200, body
    got = {m["login"]: m for m in body["members"]}
    expected: dict[str, Any] = truth["members"]
    assert {m["provider"] for m in body["members"]} == {"github_copilot"}
    assert set(got) == set(expected), "every seat holder, idle ones included"
    assert any(m["active_days"] == 0 for m in expected.values()), "the org should have idle seats"
    for login, member in expected.items():
        assert got[login]["active_days"] == member["active_days"], login
        assert got[login]["requests"] == member["requests"], login
        assert got[login]["top_model"] == member["top_model"], login
        assert Decimal(str(got[login]["spend_cents"])) == Decimal(member["spend_cents"]), login
    requests = [m["requests"] for m in body["members"]]
    assert requests == sorted(requests, reverse=True)


def test_the_member_view_of_copilot_is_private(platform: Platform, copilot: dict[str, Any]) -> None:
    integration_id, org = copilot["integration"]["id"], copilot["org"]["org"]
    assert_matches(platform, integration_id, org, copilot_differences)
    truth = platform.github_truth(org, *_range())
    logins = set(truth["members"])
    status, summary = platform.summary(platform.member, provider="github_copilot")
    assert status == 200, summary
    assert summary["viewer_role"] == "member"
    for key, value in walk(summary):
        assert key not in {"email", "login", "name", "spend", "spend_cents", "seats"}, key
        assert not (isinstance(value, str) and (value in logins or "@" in value)), value

    entry = next(p for p in summary["providers"] if p["integration_id"] == integration_id)
    days: dict[str, Any] = truth["days"]
    visible: Counter[str] = Counter()
    for point, requests in zip(entry["dau"], entry["requests"], strict=True):
        day = days[point["date"]]
        if day["dau"] < MIN_GROUP_SIZE:
            assert point == {"date": point["date"], "active_users": None, "suppressed": True}
            assert requests == {"date": point["date"], "requests": None, "suppressed": True}
        else:
            assert point == {"date": point["date"], "active_users": day["dau"], "suppressed": False}
            assert requests["requests"] == day["requests"]
            visible.update(day["models"])
    assert any(p.get("suppressed") for p in entry["dau"]), "unpublished days have no one active"
    assert {m["model"]: m["requests"] for m in entry["models"]} == {
        m: n for m, n in visible.items() if n
    }

    status, body = platform.members(platform.member, provider="github_copilot")
    assert status == 403
    assert body["error"]["code"] == "admin_only"

    platform.set_settings(members_can_see_spend=True, min_group_size=MIN_GROUP_SIZE)
    try:
        status, summary = platform.summary(platform.member, provider="github_copilot")
        assert status == 200, summary
        entry = next(p for p in summary["providers"] if p["integration_id"] == integration_id)
        assert "spend" in entry
        assert "seats" not in entry["spend"], "the seats block counts people: admins only"
    finally:
        platform.set_settings(members_can_see_spend=False, min_group_size=MIN_GROUP_SIZE)


def test_policy_off_connects_degraded_while_seats_and_spend_sync(platform: Platform) -> None:
    org = new_github_org(platform, seats=12, seed=31, metrics_policy=False)
    integration = _connect_copilot(platform, org)
    assert (integration["plan"], integration["status"]) == ("business", "degraded")
    error = integration["sync"]["last_error"]
    assert error["code"] == "metrics_disabled"
    assert "Copilot usage metrics" in error["message"], "names the policy an owner must enable"

    def seats_and_spend_synced() -> dict[str, Any] | None:
        entry = platform.provider_summary(integration["id"])
        if not entry or "seats" not in entry["spend"]:
            return None
        problems = copilot_differences(platform, org["org"], entry)
        spend_problems = [p for p in problems if p.startswith(("spend", "total", "cycle", "seats"))]
        return entry if not spend_problems else None

    entry = wait_for(
        seats_and_spend_synced, timeout_s=240, what="the seats and spend of a policy-off org"
    )
    assert all(p["active_users"] == 0 for p in entry["dau"]), "no report was readable"
    assert all(p["requests"] == 0 for p in entry["requests"])
    assert entry["spend"]["seats"]["total"] == 12
    current = platform.integration(integration["id"])
    assert current["status"] == "degraded"
    assert current["sync"]["last_error"]["code"] == "metrics_disabled"


def test_a_revoked_token_fails_then_a_new_one_recovers(platform: Platform) -> None:
    org = new_github_org(platform, seats=6, seed=41)
    integration_id = _connect_copilot(platform, org)["id"]
    through = _published_through(platform, org["org"])
    platform.wait_synced(integration_id, data_through=through)

    platform.revoke_github_token(org["org"])
    assert platform.resync(integration_id, days=2).status_code == 202

    def failed() -> dict[str, Any] | None:
        current = platform.integration(integration_id)
        error = current["sync"]["last_error"] or {}
        return (
            current
            if current["status"] == "failed" and error.get("code") == "invalid_api_key"
            else None
        )

    wait_for(failed, timeout_s=120, what="the integration to fail with invalid_api_key")
    response = platform.rotate_token(integration_id, org["token"])
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_api_key"

    new_token = platform.rotate_github_token(org["org"])
    response = platform.rotate_token(integration_id, new_token)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "active"
    assert new_token not in response.text
    assert platform.resync(integration_id, days=5).status_code == 202
    platform.wait_synced(integration_id, data_through=through)
    assert_matches(platform, integration_id, org["org"], copilot_differences)


def test_killing_a_worker_and_metrics_mid_copilot_backfill_loses_nothing(
    platform: Platform, cursor: dict[str, Any], copilot: dict[str, Any]
) -> None:
    stack = platform.stack
    first, second = stack.syncers[0], stack.syncers[1]
    second.stop()
    try:
        # Slow answers make the backfill last long enough to be killed in the middle.
        org = new_github_org(platform, seats=60, seed=51, latency_ms=150)
        integration_id = _connect_copilot(platform, org)["id"]

        def some_progress() -> dict[str, Any] | None:
            sync = platform.integration(integration_id)["sync"]
            progress = sync.get("progress") or {}
            started = sync["state"] == "syncing" and (progress.get("done") or 0) >= 1
            return sync if started else None

        sync = wait_for(
            some_progress, timeout_s=120, what="the backfill to make progress", interval_s=0.2
        )
        assert sync["progress"]["done"] < sync["progress"]["total"], "killed too late to matter"
        first.kill()
        stack.metrics.kill()
        second.start()
        stack.metrics.start()
        second.wait_ready()
        stack.metrics.wait_ready()
        platform.wait_synced(
            integration_id, timeout_s=300, data_through=_published_through(platform, org["org"])
        )
        assert_matches(platform, integration_id, org["org"], copilot_differences)
        assert_matches(
            platform, copilot["integration"]["id"], copilot["org"]["org"], copilot_differences
        )
        assert_matches(
            platform, cursor["integration"]["id"], cursor["team"]["team_id"], cursor_differences
        )
    finally:
        for syncer in (first, second):
            if not syncer.running:
                syncer.start()
                syncer.wait_ready()
