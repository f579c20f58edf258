"""The authorization matrix of the connector's API: every route, every kind of bad token."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from koalr_sandbox.testing import SandboxClient
from tests.connector.conftest import Stack, auth, connect_cursor, new_org

pytestmark = pytest.mark.integration


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned_token(org_id: str) -> str:
    """A token with ``alg: none`` and an empty signature."""
    claims = {"sub": "u", "org_id": org_id, "role": "admin", "exp": int(time.time()) + 300}
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


BadHeader = Callable[[str], dict[str, str]]

#: (case, headers for the path's org, expected status, expected code)
CASES: list[tuple[str, BadHeader, int, str]] = [
    ("no token", lambda _org: {}, 401, "unauthorized"),
    ("not bearer", lambda _org: {"Authorization": "Basic dXNlcjpwYXNz"}, 401, "unauthorized"),
    ("malformed", lambda _org: {"Authorization": "Bearer not.a.jwt"}, 401, "invalid_token"),
    ("expired", lambda org: auth(org, expires_in_s=-60), 401, "token_expired"),
    (
        "wrong signature",
        lambda org: auth(org, secret="another-secret-that-is-long-enough-for-hs256"),
        401,
        "invalid_token",
    ),
    (
        "alg none",
        lambda org: {"Authorization": f"Bearer {unsigned_token(org)}"},
        401,
        "invalid_token",
    ),
    ("another org's admin", lambda _org: auth(new_org()), 403, "forbidden"),
    ("a member", lambda org: auth(org, role="member"), 403, "admin_only"),
]


def routes(org: str, integration_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    base = f"/v1/orgs/{org}/integrations"
    one = f"{base}/{integration_id}"
    return [
        ("POST", base, {"json": {"provider": "cursor", "api_key": "crsr_x", "team_id": "t"}}),
        ("POST", base, {"content": b"{not json", "headers": {"Content-Type": "application/json"}}),
        ("GET", base, {}),
        ("GET", one, {}),
        ("PUT", f"{one}/credentials", {"json": {"api_key": "crsr_x"}}),
        ("POST", f"{one}/sync", {"json": {"days": 3}}),
        ("DELETE", one, {}),
        ("DELETE", f"{one}?purge=true", {}),
    ]


async def _request(
    http: httpx.AsyncClient, method: str, url: str, options: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    merged = {**options.get("headers", {}), **headers}
    rest = {k: v for k, v in options.items() if k != "headers"}
    return await http.request(method, url, headers=merged, **rest)


async def _state(stack: Stack) -> tuple[Any, ...]:
    db = await stack.db()
    try:
        rows = await db.fetch(
            "SELECT id, status, sealed_credential, disconnected_at FROM connector.integrations "
            "ORDER BY id"
        )
        outbox = await db.fetchval("SELECT count(*) FROM connector.outbox")
    finally:
        await db.close()
    return tuple(tuple(r) for r in rows), outbox


@pytest.mark.parametrize(
    ("case", "headers_for", "status", "code"), CASES, ids=[c[0] for c in CASES]
)
async def test_every_route_refuses_a_bad_token(
    *,
    stack: Stack,
    sandbox: SandboxClient,
    case: str,
    headers_for: BadHeader,
    status: int,
    code: str,
) -> None:
    org = new_org()
    team = await sandbox.create_team(plan="business")
    connected = await connect_cursor(stack, org, team)
    assert connected.status_code == 201
    before = await _state(stack)

    for method, url, options in routes(org, connected.json()["id"]):
        response = await _request(stack.http, method, url, options, headers_for(org))
        assert response.status_code == status, f"{case}: {method} {url}: {response.text}"
        assert response.json()["error"]["code"] == code, f"{case}: {method} {url}"
        assert team.team_id not in response.text

    assert await _state(stack) == before


async def test_no_route_reveals_another_orgs_integration(
    stack: Stack, sandbox: SandboxClient
) -> None:
    victim, intruder = new_org(), new_org()
    team = await sandbox.create_team(plan="business")
    victim_integration = (await connect_cursor(stack, victim, team)).json()
    own_team = await sandbox.create_team(plan="business")
    own = (await connect_cursor(stack, intruder, own_team)).json()
    before = await _state(stack)

    for method, url, options in routes(intruder, victim_integration["id"])[3:]:
        response = await _request(stack.http, method, url, options, auth(intruder))
        assert response.status_code == 404, f"{method} {url}: {response.text}"
        body = response.json()
        assert body["error"]["code"] == "not_found"
        assert team.team_id not in response.text
        assert victim not in response.text
    listed = await stack.http.get(f"/v1/orgs/{intruder}/integrations", headers=auth(intruder))
    assert listed.json() == {"integrations": [own]}

    assert await _state(stack) == before
    still_there = await stack.http.get(
        f"/v1/orgs/{victim}/integrations/{victim_integration['id']}", headers=auth(victim)
    )
    assert still_there.json() == victim_integration


async def test_a_valid_admin_token_with_extra_claims_is_accepted(stack: Stack) -> None:
    org = new_org()
    response = await stack.http.get(
        f"/v1/orgs/{org}/integrations", headers=auth(org, email="admin@example.com")
    )
    assert response.status_code == 200
    assert response.json() == {"integrations": []}
