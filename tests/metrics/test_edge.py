"""The metrics API behind the shared HTTP edge: identifiers breaking the org-id rule or holding
control characters are refused before any route, and nothing is stored for them; big bodies
get 413 and tight limits 429, each as documented."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from koalr_devstack.databases import scratch_database
from tests.metrics.support import auth, make_settings, running_app, token

pytestmark = pytest.mark.integration

POLICY = {"members_can_see_spend": True, "min_group_size": 3}


@pytest.fixture(scope="module")
async def metrics(
    kafka_bootstrap_servers: str, database_url: str
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    async with scratch_database(database_url) as dsn:
        settings = make_settings(
            kafka_bootstrap_servers,
            dsn,
            f"t{uuid.uuid4().hex[:12]}",
            ingest_decode_workers=0,
            http_max_body_bytes=4096,
            http_rate_limit_per_s=0.2,
            http_rate_limit_burst=20,
        )
        async with running_app(settings) as (_, client):
            yield client, dsn


def _code(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/json"
    code: str = response.json()["error"]["code"]
    return code


async def _settings_rows(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        rows: int = await conn.fetchval("SELECT count(*) FROM metrics.org_settings")
    finally:
        await conn.close()
    return rows


@pytest.mark.parametrize(
    "org", ["o" * 5000, "ac%00me", "%C3%BCn%C3%AF", "a%3Bb", "org%0A", "a%27%20OR%201%3D1"]
)
async def test_org_ids_breaking_the_rule_are_422_and_store_nothing(
    metrics: tuple[httpx.AsyncClient, str], org: str
) -> None:
    client, dsn = metrics
    before = await _settings_rows(dsn)
    headers = auth("acme")
    for method, route, body in (
        ("GET", "summary", None),
        ("GET", "members", None),
        ("GET", "settings", None),
        ("PUT", "settings", POLICY),
    ):
        response = await client.request(
            method, f"/v1/orgs/{org}/ai-analytics/{route}", headers=headers, json=body
        )
        assert (response.status_code, _code(response)) == (422, "invalid_request"), (method, route)
    assert await _settings_rows(dsn) == before


async def test_a_token_org_id_with_a_nul_is_401(metrics: tuple[httpx.AsyncClient, str]) -> None:
    client, _ = metrics
    bad = token("ac\x00me")
    headers = {"Authorization": f"Bearer {bad}"}
    response = await client.get("/v1/orgs/acme/ai-analytics/summary", headers=headers)
    assert (response.status_code, _code(response)) == (401, "invalid_token")


async def test_whole_number_days_are_accepted(metrics: tuple[httpx.AsyncClient, str]) -> None:
    client, _ = metrics
    headers = auth("org-days")
    response = await client.get(
        "/v1/orgs/org-days/ai-analytics/summary", headers=headers, params={"days": "86.0"}
    )
    assert response.status_code == 200
    assert response.json()["range"]["start"] < response.json()["range"]["end"]
    response = await client.get(
        "/v1/orgs/org-days/ai-analytics/summary", headers=headers, params={"days": "86.5"}
    )
    assert (response.status_code, _code(response)) == (422, "invalid_request")


async def test_a_body_over_the_limit_is_413_and_stores_nothing(
    metrics: tuple[httpx.AsyncClient, str],
) -> None:
    client, dsn = metrics
    before = await _settings_rows(dsn)
    body: dict[str, Any] = {**POLICY, "padding": "x" * 8000}
    response = await client.put(
        "/v1/orgs/org-big/ai-analytics/settings", headers=auth("org-big"), json=body
    )
    assert (response.status_code, _code(response)) == (413, "payload_too_large")
    assert await _settings_rows(dsn) == before


async def test_one_token_is_limited_another_is_not(metrics: tuple[httpx.AsyncClient, str]) -> None:
    client, _ = metrics
    busy, calm = auth("org-busy"), auth("org-calm")
    url = "/v1/orgs/org-busy/ai-analytics/summary"
    statuses = [(await client.get(url, headers=busy)).status_code for _ in range(25)]
    assert statuses.count(200) in range(20, 22)  # the burst, plus what refilled meanwhile
    limited = await client.get(url, headers=busy)
    assert (limited.status_code, _code(limited)) == (429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1
    calm_response = await client.get("/v1/orgs/org-calm/ai-analytics/summary", headers=calm)
    assert calm_response.status_code == 200


async def test_trace_and_trailing_slashes(metrics: tuple[httpx.AsyncClient, str]) -> None:
    client, _ = metrics
    headers = {**auth("org-m"), "host": "evil.example"}
    trace = await client.request("TRACE", "/v1/orgs/org-m/ai-analytics/settings", headers=headers)
    assert (trace.status_code, _code(trace)) == (405, "method_not_allowed")
    assert trace.headers["allow"] == "GET, PUT"
    redirect = await client.get("/v1/orgs/org-m/ai-analytics/summary/", headers=headers)
    assert redirect.status_code == 307
    assert redirect.headers["location"] == "/v1/orgs/org-m/ai-analytics/summary"
