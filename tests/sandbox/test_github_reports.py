"""The usage-metrics reports: envelopes, signed links, file contents, publication and history."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

from koalr_sandbox.clock import ManualClock
from koalr_sandbox.testing import GithubSandboxClient

USER_ROW_FIELDS = {
    "user_id", "user_login", "day", "organization_id", "report_start_day", "report_end_day",
    "ai_credits_used", "ai_adoption_phase", "user_initiated_interaction_count",
    "code_generation_activity_count", "code_acceptance_activity_count",
    "loc_suggested_to_add_sum", "loc_suggested_to_delete_sum", "loc_added_sum", "loc_deleted_sum",
    "used_chat", "used_agent", "used_cli", "totals_by_ide", "totals_by_feature",
    "totals_by_language_feature", "totals_by_language_model", "totals_by_model_feature",
}  # fmt: skip


async def test_a_day_is_published_two_full_utc_days_after_it_ends(
    github: GithubSandboxClient, clock: ManualClock
) -> None:
    org = await github.create_org()
    # Now is 2026-03-18 15:00 UTC: 03-15 ended at 03-16 00:00, two full days ago.
    assert (await github.report(org, "users-1-day", "2026-03-15"))["download_links"]
    assert await github.report(org, "users-1-day", "2026-03-16") == {
        "download_links": [],
        "report_day": "2026-03-16",
    }
    clock.set(datetime(2026, 3, 18, 23, 59, 59, tzinfo=UTC))
    assert (await github.report(org, "users-1-day", "2026-03-16"))["download_links"] == []
    clock.set(datetime(2026, 3, 19, tzinfo=UTC))
    assert (await github.report(org, "users-1-day", "2026-03-16"))["download_links"]
    truth = await github.truth(org, "2026-03-16", "2026-03-17")
    assert truth["data_through"] == "2026-03-16"
    assert [d["reported"] for d in truth["days"].values()] == [True, False]


async def test_user_rows_are_ndjson_behind_signed_links_without_credentials(
    github: GithubSandboxClient,
) -> None:
    org = await github.create_org(rows_per_file=7)
    envelope = await github.report(org, "users-1-day", "2026-03-10")
    assert set(envelope) == {"download_links", "report_day"}
    assert envelope["report_day"] == "2026-03-10"
    links = envelope["download_links"]
    truth = await github.truth(org, "2026-03-10", "2026-03-10")
    dau = truth["days"]["2026-03-10"]["dau"]
    assert len(links) == -(-dau // 7) >= 2, "a big report comes as several links"
    base = str(github.http.base_url)
    assert all(link.startswith(base) for link in links), "links are absolute"
    response = await github.http.get(links[0])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert len(response.text.splitlines()) == 7
    rows = await github.report_rows(org, "users-1-day", "2026-03-10")
    assert len(rows) == len({r["user_id"] for r in rows}) == dau
    for row in rows:
        assert set(row) >= USER_ROW_FIELDS
        days = {row["day"], row["report_start_day"], row["report_end_day"]}
        assert days == {"2026-03-10"}
        assert isinstance(row["user_id"], int)
        assert isinstance(row["organization_id"], str)
        assert "etl_id" in row, "unknown extra fields are part of the rows"


async def test_a_link_refuses_the_github_credential_a_bad_signature_and_expiry(
    github: GithubSandboxClient, clock: ManualClock
) -> None:
    org = await github.create_org(link_ttl_s=300)
    link = (await github.report(org, "users-1-day", "2026-03-10"))["download_links"][0]
    with_auth = await github.http.get(link, headers={"Authorization": f"Bearer {org.token}"})
    assert with_auth.status_code == 400
    assert "<Code>InvalidAuthenticationInfo</Code>" in with_auth.text
    query = parse_qs(urlsplit(link).query)
    tampered = link.replace(query["sig"][0], "0" * len(query["sig"][0]))
    assert (await github.http.get(tampered)).status_code == 403
    clock.advance(300)
    assert (await github.http.get(link)).status_code == 200
    clock.advance(1)
    expired = await github.http.get(link)
    assert expired.status_code == 403
    assert "<Code>AuthenticationFailed</Code>" in expired.text
    fresh = (await github.report(org, "users-1-day", "2026-03-10"))["download_links"][0]
    assert (await github.http.get(fresh)).status_code == 200


async def test_rows_carry_cli_totals_unattributed_interactions_and_telemetry_only_users(
    github: GithubSandboxClient,
) -> None:
    org = await github.create_org(seats=120, days=30)
    rows = await github.report_rows(org, "users-28-day/latest")
    with_cli = [r for r in rows if "totals_by_cli" in r]
    assert with_cli
    assert len(with_cli) < len(rows), "totals_by_cli only on rows with CLI use"
    for row in with_cli:
        cli = row["totals_by_cli"]
        assert cli["request_count"] >= cli["session_count"] >= 1
        assert row["used_cli"] is True
    telemetry_only = [r for r in rows if r["user_initiated_interaction_count"] == 0]
    assert telemetry_only, "some users are seen only through telemetry"
    for row in telemetry_only:
        for name in ("totals_by_ide", "totals_by_feature", "totals_by_model_feature"):
            assert row[name] == []
    no_model = [
        r
        for r in rows
        if r["user_initiated_interaction_count"]
        > sum(e["user_initiated_interaction_count"] for e in r["totals_by_model_feature"])
    ]
    assert no_model, "some interactions carry no model"
    for row in no_model:
        features = {e["feature"] for e in row["totals_by_feature"]}
        assert "chat_panel_unknown_mode" in features


async def test_aggregate_reports_are_one_json_object(github: GithubSandboxClient) -> None:
    org = await github.create_org()
    [body] = await github.report_rows(org, "organization-1-day", "2026-03-10")
    assert body["report_start_day"] == body["report_end_day"] == "2026-03-10"
    assert [d["day"] for d in body["day_totals"]] == ["2026-03-10"]
    envelope = await github.report(org, "organization-28-day/latest")
    assert envelope["report_start_day"] == "2026-02-16"
    assert envelope["report_end_day"] == "2026-03-15"
    [latest] = await github.report_rows(org, "organization-28-day/latest")
    days = [d["day"] for d in latest["day_totals"]]
    assert days[0] == "2026-02-16"
    assert days[-1] == "2026-03-15"
    assert len(days) == 28
    users = await github.report_rows(org, "users-28-day/latest")
    assert {r["report_start_day"] for r in users} == {"2026-02-16"}
    assert {r["day"] for r in users} <= set(days)


async def test_history_limits_and_the_204_variant(github: GithubSandboxClient) -> None:
    org = await github.create_org(days=10)  # history starts 2026-03-08
    assert (await github.report(org, "users-1-day", "2026-03-07"))["download_links"] == []
    assert (await github.report(org, "users-1-day", "2026-03-08"))["download_links"]
    old = await github.create_org(days=120)  # would reach 2025-11-18; reports start 2025-12-12
    assert (await github.report(old, "users-1-day", "2025-12-11"))["download_links"] == []
    assert (await github.report(old, "users-1-day", "2025-12-12"))["download_links"]
    await github.configure(org, empty_as_204=True)
    for name in ("users-1-day", "organization-1-day", "user-teams-1-day"):
        path = f"/orgs/{org.org}/copilot/metrics/reports/{name}"
        response = await github.call(org, path, params={"day": "2026-03-17"})
        assert response.status_code == 204
        assert response.content == b""
    latest = await github.report(org, "users-28-day/latest")
    assert latest["download_links"]


async def test_day_is_required_and_must_be_a_date(github: GithubSandboxClient) -> None:
    org = await github.create_org()
    path = f"/orgs/{org.org}/copilot/metrics/reports/users-1-day"
    missing = await github.call(org, path)
    assert missing.status_code == 422
    assert missing.json()["message"] == 'Invalid request.\n\n"day" wasn\'t supplied.'
    for bad in ("2026-3-10", "yesterday", "2026-02-30"):
        response = await github.call(org, path, params={"day": bad})
        assert response.status_code == 422, bad
    team_28 = await github.call(org, f"/orgs/{org.org}/copilot/metrics/reports/user-teams-28-day")
    assert team_28.status_code == 404


async def test_user_teams_leave_out_teams_under_five_seated_users(
    github: GithubSandboxClient,
) -> None:
    org = await github.create_org(seats=60)
    rows = await github.report_rows(org, "user-teams-1-day", "2026-03-10")
    per_team: dict[int, set[int]] = {}
    for row in rows:
        assert set(row) == {"user_id", "user_login", "day", "organization_id", "team_id", "slug"}
        per_team.setdefault(row["team_id"], set()).add(row["user_id"])
    assert per_team
    assert min(len(users) for users in per_team.values()) >= 5
    described = (await github.http.get(f"/_sandbox/github/orgs/{org.org}")).json()
    assert len(described["teams"]) > len(per_team), "small teams are left out"
