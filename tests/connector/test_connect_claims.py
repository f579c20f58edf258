"""Concurrent first connects of one team or GitHub organisation: the claim taken before the
provider is asked lets exactly one request validate the key (one 201, the rest 409), a refused
key gives the claim back, and a claim left by a crashed process lapses."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest

from koalr_sandbox.testing import GithubSandboxClient, SandboxClient, SandboxOrg, SandboxTeam
from tests.connector.conftest import Stack, connect_copilot, connect_cursor, new_org
from tests.connector.test_api import error_of

pytestmark = pytest.mark.integration

CONCURRENT = 50
#: Provider latency that keeps the first validation in flight while the others arrive.
LATENCY_MS = 400


async def cursor_calls(sandbox: SandboxClient, team: SandboxTeam) -> list[dict[str, Any]]:
    return await sandbox.request_log(team)


async def github_calls(github: GithubSandboxClient, org: SandboxOrg) -> list[dict[str, Any]]:
    response = await github.http.get(f"/_sandbox/github/orgs/{org.org}/requests")
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["requests"]
    return entries


def statuses_and_codes(responses: list[httpx.Response]) -> Counter[tuple[int, str]]:
    return Counter(
        (r.status_code, "created" if r.status_code == 201 else error_of(r.json())[0])
        for r in responses
    )


async def live_rows(stack: Stack, org: str) -> tuple[int, int]:
    db = await stack.db()
    try:
        integrations = await db.fetchval(
            "SELECT count(*) FROM connector.integrations "
            "WHERE org_id = $1 AND disconnected_at IS NULL",
            org,
        )
        claims = await db.fetchval(
            "SELECT count(*) FROM connector.connect_claims WHERE org_id = $1", org
        )
    finally:
        await db.close()
    return integrations, claims


async def test_fifty_concurrent_cursor_connects_ask_cursor_once(
    stack: Stack, sandbox: SandboxClient
) -> None:
    # What one validation costs at Cursor, measured on a team of the same shape.
    solo = await sandbox.create_team(plan="business", latency_ms=LATENCY_MS)
    assert (await connect_cursor(stack, new_org(), solo)).status_code == 201
    one_validation = [(c["method"], c["path"]) for c in await cursor_calls(sandbox, solo)]
    assert one_validation

    org = new_org()
    team = await sandbox.create_team(plan="business", latency_ms=LATENCY_MS)
    responses = await asyncio.gather(*(connect_cursor(stack, org, team) for _ in range(CONCURRENT)))

    assert statuses_and_codes(responses) == Counter(
        {(201, "created"): 1, (409, "already_connected"): CONCURRENT - 1}
    )
    calls = [(c["method"], c["path"]) for c in await cursor_calls(sandbox, team)]
    assert calls == one_validation
    assert await live_rows(stack, org) == (1, 0)
    # Once connected, a later duplicate names the integration.
    again = await connect_cursor(stack, org, team)
    assert again.status_code == 409
    assert (
        next(r for r in responses if r.status_code == 201).json()["id"] in error_of(again.json())[1]
    )


async def test_fifty_concurrent_copilot_connects_ask_github_once(
    stack: Stack, github: GithubSandboxClient
) -> None:
    solo = await github.create_org(latency_ms=LATENCY_MS)
    assert (await connect_copilot(stack, new_org(), solo)).status_code == 201
    one_validation = [(c["method"], c["path"]) for c in await github_calls(github, solo)]
    assert one_validation

    org = new_org()
    github_org = await github.create_org(latency_ms=LATENCY_MS)
    # Half of them spell the login in capitals: the claim compares it lower-cased.
    responses = await asyncio.gather(
        *(
            connect_copilot(stack, org, github_org, login=github_org.org.upper() if i % 2 else None)
            for i in range(CONCURRENT)
        )
    )

    assert statuses_and_codes(responses) == Counter(
        {(201, "created"): 1, (409, "already_connected"): CONCURRENT - 1}
    )
    calls = [c["path"].lower() for c in await github_calls(github, github_org)]
    assert calls == [path.replace(solo.org, github_org.org).lower() for _, path in one_validation]
    assert await live_rows(stack, org) == (1, 0)


async def test_a_refused_key_gives_the_claim_back(stack: Stack, sandbox: SandboxClient) -> None:
    org = new_org()
    team = await sandbox.create_team(plan="business")

    refused = await connect_cursor(stack, org, team, api_key="key_wrong")
    assert refused.status_code == 422
    assert await live_rows(stack, org) == (0, 0)

    assert (await connect_cursor(stack, org, team)).status_code == 201
    assert await live_rows(stack, org) == (1, 0)


async def test_a_live_claim_refuses_without_asking_and_a_lapsed_one_is_taken_over(
    stack: Stack, sandbox: SandboxClient
) -> None:
    org = new_org()
    team = await sandbox.create_team(plan="business")
    db = await stack.db()
    try:
        # A connect of another process, still in flight.
        await db.execute(
            "INSERT INTO connector.connect_claims VALUES "
            "($1, 'cursor', $2, gen_random_uuid(), now() + interval '1 hour')",
            org,
            team.team_id.lower(),
        )
        blocked = await connect_cursor(stack, org, team)
        assert blocked.status_code == 409
        assert error_of(blocked.json())[0] == "already_connected"
        assert await cursor_calls(sandbox, team) == []

        # That process died: its claim lapsed (by PostgreSQL's clock) and is taken over.
        await db.execute(
            "UPDATE connector.connect_claims SET expires_at = now() - interval '1 second' "
            "WHERE org_id = $1",
            org,
        )
        assert (await connect_cursor(stack, org, team)).status_code == 201
    finally:
        await db.close()
    assert await live_rows(stack, org) == (1, 0)
