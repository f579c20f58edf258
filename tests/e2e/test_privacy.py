"""Privacy guarantees with every service as its own process, against the sandbox's truth.

- Erasure (GDPR article 17): after ``DELETE .../members/{email}`` completes, every figure equals
  the sandbox's truth minus that member exactly, the syncer's member directory no longer holds
  them, and a full re-sync does not bring the member back (the records come again and are
  dropped at ingest, counted; the directory keeps them out).
- ``DELETE .../integrations/{id}?purge=true`` leaves no row: every table of every service schema,
  enumerated from ``information_schema`` (so a new table is covered without touching this test),
  is searched for the integration id, the org id and the team id. The only rows allowed are the
  tombstones listed in :data:`PURGE_TOMBSTONES`, which name no person and no team.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from koalr_devstack.stack import Stack
from tests.e2e.checks import cursor_differences, new_team
from tests.e2e.client import Platform, today_utc, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(600)]

SCHEMAS = ("connector", "syncer", "metrics")
#: (schema, table): rows that may outlive a purge, and why. Neither names a person or a team.
PURGE_TOMBSTONES = {
    # The metrics projection keeps the integration id, its org and provider with status
    # 'purged' (external_id nulled), so records still in flight are dropped, not stored again.
    ("metrics", "integrations"),
    # The syncer keeps the integration id and the purge event's sequence, so a redelivered
    # event cannot register the integration again.
    ("syncer", "purged_integrations"),
    # The connector's audit log keeps who connected and who purged the integration (two rows),
    # with the provider's team id removed from their details by the purge.
    ("connector", "audit_log"),
    # The org's data version (the summary cache's counter): the org id and a number.
    ("metrics", "data_versions"),
}
#: How many rows each of them keeps.
TOMBSTONE_ROWS = {
    ("metrics", "integrations"): 1,
    ("syncer", "purged_integrations"): 1,
    ("connector", "audit_log"): 2,
    ("metrics", "data_versions"): 1,
}


def _metric(platform: Platform, name: str, **labels: str) -> float:
    text = platform.http.get(f"{platform.stack.metrics.base_url}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def _erased_dropped(platform: Platform) -> float:
    return _metric(platform, "koalr_metrics_records_total", stream="usage", outcome="erased_member")


def _fetch(stack: Stack, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(stack.config.database_url)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


def _expected_without(truth: dict[str, Any], email: str) -> dict[str, Any]:
    """The truth's daily figures and model totals with one member's days taken out."""
    days = {d["date"]: d for d in truth["days"]}
    active = {day: int(d["active_users"]) for day, d in days.items()}
    requests = {day: int(d["requests"]) for day, d in days.items()}
    cents = {day: Decimal(d["charged_cents"]) for day, d in days.items()}
    models: Counter[str] = Counter(
        {m["model"]: int(m["requests"]) for m in truth["models"] if m["requests"]}
    )
    for row in truth["member_days"]:
        if row["email"] != email:
            continue
        active[row["date"]] -= int(bool(row["is_active"]))
        requests[row["date"]] -= int(row["requests"])
        cents[row["date"]] -= Decimal(row["charged_cents"])
        for model, usage in row["models"].items():
            models[model] -= int(usage["requests"])
    return {
        "dau": active,
        "requests": requests,
        "cents": cents,
        "models": {m: n for m, n in models.items() if n},
    }


def _shown(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "dau": {p["date"]: p["active_users"] for p in entry["dau"]},
        "requests": {p["date"]: p["requests"] for p in entry["requests"]},
        "cents": {p["date"]: Decimal(p["cents"]) for p in entry["spend"]["daily"]},
        "models": {m["model"]: m["requests"] for m in entry["models"]},
    }


@pytest.fixture(scope="module")
def erasing(platform: Platform) -> dict[str, Any]:
    """A Business-plan team of 8, connected and backfilled."""
    team = new_team(platform, members=8, seed=47)
    response = platform.connect(team)
    assert response.status_code == 201, response.text
    integration = response.json()
    platform.wait_synced(integration["id"])
    return {"team": team, "integration": integration}


def test_erasure_leaves_the_truth_minus_the_member_and_a_resync_does_not_undo_it(
    platform: Platform, erasing: dict[str, Any]
) -> None:
    integration_id, team_id = erasing["integration"]["id"], erasing["team"]["team_id"]
    entry = wait_for(
        lambda: (
            (e := platform.provider_summary(integration_id))
            and not cursor_differences(platform, team_id, e)
            and e
        ),
        timeout_s=60,
        what="the summary equal to the truth",
    )
    start = entry["dau"][0]["date"]
    truth = platform.truth(team_id, today_utc() - timedelta(days=29), today_utc())
    assert truth["days"][0]["date"] == start
    active_days: Counter[str] = Counter(r["email"] for r in truth["member_days"])
    email, _ = active_days.most_common(1)[0]
    stored = _fetch(
        platform.stack,
        "SELECT count(*) AS n FROM metrics.member_days WHERE email = $1",
        email,
    )[0]["n"]
    assert stored >= active_days[email]
    directory = "SELECT count(*) AS n FROM syncer.members WHERE lower(email) = $1"
    assert _fetch(platform.stack, directory, email)[0]["n"] == 1

    response = platform.http.delete(
        f"{platform.stack.metrics.base_url}/v1/orgs/{platform.org_id}/ai-analytics/members/"
        f"{email.upper()}",
        headers=platform._auth(platform.admin),
    )
    assert response.status_code == 202, response.text
    erasure_url = (
        f"{platform.stack.metrics.base_url}/v1/orgs/{platform.org_id}/ai-analytics/erasures/"
        f"{response.json()['erasure_id']}"
    )

    def erasure_done() -> dict[str, Any] | None:
        status = platform.http.get(erasure_url, headers=platform._auth(platform.admin))
        assert status.status_code == 200, status.text
        body: dict[str, Any] = status.json()
        return body if body["status"] == "done" else None

    done = wait_for(erasure_done, timeout_s=60, what="the erasure done")
    assert done["rows_removed"] >= stored
    assert email not in str(done)

    # The syncer's copy of the provider's member directory is erased too (MemberErased).
    wait_for(
        lambda: _fetch(platform.stack, directory, email)[0]["n"] == 0,
        timeout_s=60,
        what="the member gone from the syncer's directory",
    )
    expected = _expected_without(truth, email)
    assert _shown(platform.provider_summary(integration_id)) == expected
    status, members = platform.members(platform.admin)
    assert status == 200
    emails = {m["email"] for m in members["members"]}
    assert email not in emails
    assert emails == {m["email"] for m in truth["members"]} - {email}

    # A full re-sync fetches the member's days again: they are dropped at ingest, counted.
    dropped_before = _erased_dropped(platform)
    before = platform.integration(integration_id)["sync"]["last_success_at"]
    assert platform.resync(integration_id, 30).status_code == 202
    wait_for(
        lambda: (
            (sync := platform.integration(integration_id)["sync"])["last_success_at"] != before
            and sync["state"] == "idle"
        ),
        timeout_s=240,
        what="the re-sync done",
    )
    wait_for(
        lambda: _erased_dropped(platform) - dropped_before >= stored,
        timeout_s=60,
        what="the member's records of the re-sync dropped at ingest",
    )
    assert _shown(platform.provider_summary(integration_id)) == expected
    left = _fetch(
        platform.stack, "SELECT count(*) AS n FROM metrics.member_days WHERE email = $1", email
    )[0]["n"]
    assert left == 0
    # The re-sync listed the member again at the provider: the tombstone kept them out.
    assert _fetch(platform.stack, directory, email)[0]["n"] == 0


def _columns(stack: Stack) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """Every column of every table in the service schemas, as (name, data type)."""
    rows = _fetch(
        stack,
        "SELECT c.table_schema, c.table_name, c.column_name, c.data_type "
        "FROM information_schema.columns c JOIN information_schema.tables t "
        "  ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
        "WHERE c.table_schema = ANY($1::text[]) AND t.table_type = 'BASE TABLE' "
        "ORDER BY 1, 2, c.ordinal_position",
        list(SCHEMAS),
    )
    tables: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for r in rows:
        tables[r["table_schema"], r["table_name"]].append((r["column_name"], r["data_type"]))
    return tables


def _rows_naming(stack: Stack, needles: list[str]) -> dict[tuple[str, str], int]:
    """Per table, the rows where any column holds any of ``needles`` (as text, or inside the
    JSON, arrays and bytes it stores)."""
    found: dict[tuple[str, str], int] = {}
    for (schema, table), columns in _columns(stack).items():
        tests = []
        for name, data_type in columns:
            value = f"encode(\"{name}\", 'escape')" if data_type == "bytea" else f'"{name}"::text'
            tests.append(f"position(n IN lower({value})) > 0")
        count = _fetch(
            stack,
            f'SELECT count(*) AS n FROM "{schema}"."{table}" '  # noqa: S608 - catalog names
            f"WHERE EXISTS (SELECT 1 FROM unnest($1::text[]) AS n WHERE {' OR '.join(tests)})",
            [n.lower() for n in needles],
        )[0]["n"]
        if count:
            found[schema, table] = count
    return found


@pytest.fixture(scope="module")
def purging(stack: Stack) -> Iterator[Platform]:
    """An org of its own, so that a search for its id finds only the purged integration."""
    with Platform(stack, org_id=f"org-purge-{uuid.uuid4().hex[:8]}") as client:
        yield client


def test_a_purge_leaves_no_row_in_any_service(purging: Platform) -> None:
    team = new_team(purging, members=5, seed=53)
    response = purging.connect(team)
    assert response.status_code == 201, response.text
    integration_id = response.json()["id"]
    purging.wait_synced(integration_id)
    needles = [integration_id, purging.org_id, team["team_id"]]
    before = _rows_naming(purging.stack, needles)
    # Every service holds rows about it before: the search finds what it is meant to find.
    assert {schema for schema, _ in before} == set(SCHEMAS), before
    assert ("metrics", "member_days") in before

    gone = purging.http.delete(
        f"{purging.integrations_url}/{integration_id}?purge=true",
        headers=purging._auth(purging.admin),
    )
    assert gone.status_code == 204

    last: dict[str, dict[tuple[str, str], int]] = {}

    def only_tombstones() -> dict[tuple[str, str], int] | None:
        last["left"] = left = _rows_naming(purging.stack, needles)
        return left if set(left) <= PURGE_TOMBSTONES else None

    try:
        left = wait_for(only_tombstones, timeout_s=90, what="no row but the tombstones")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; rows left: {last.get('left')}") from exc
    # Exactly those rows, and none holds the team id (the tombstones name no team).
    assert left == TOMBSTONE_ROWS
    assert _rows_naming(purging.stack, [team["team_id"]]) == {}
    status, summary = purging.summary(purging.admin)
    assert status == 200
    assert summary["providers"] == []
