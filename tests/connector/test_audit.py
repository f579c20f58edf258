"""The connector's audit log, and platform tokens from a JWKS on the running service.

The connector here verifies HS256 tokens with its secret and RS256/EdDSA tokens with the keys of a
JWKS endpoint served over real HTTP, as a deployment with both configured would.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from koalr_devstack.databases import scratch_database
from koalr_sandbox.testing import SandboxClient
from tests.connector.conftest import (
    Stack,
    auth,
    make_settings,
    new_org,
    running_app,
    wait_until,
)
from tests.jwks_server import Platform, ed_jwk, rsa_jwk, serve_jwks

pytestmark = pytest.mark.integration

PLATFORM_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PLATFORM_ED = ed25519.Ed25519PrivateKey.generate()
ISSUER = "https://platform.example"


@pytest.fixture(scope="module")
async def platform() -> AsyncIterator[Platform]:
    async with serve_jwks([rsa_jwk(PLATFORM_RSA, "p-rsa"), ed_jwk(PLATFORM_ED, "p-ed")]) as p:
        yield p


@pytest.fixture(scope="module")
async def audited(
    kafka_bootstrap_servers: str, database_url: str, sandbox_url: str, platform: Platform
) -> AsyncIterator[Stack]:
    async with scratch_database(database_url) as dsn:
        settings = make_settings(
            kafka_bootstrap_servers=kafka_bootstrap_servers,
            database_url=dsn,
            topic_namespace=f"t{uuid.uuid4().hex[:12]}",
            cursor_api_base_url=sandbox_url,
            jwks_url=platform.url,
            jwt_issuer=ISSUER,
            jwks_refresh_min_interval_s=0,
        )
        async with running_app(settings) as running:
            await wait_until(lambda: running.kafka.is_started, timeout_s=60)
            yield running


def platform_token(
    org_id: str, *, role: str = "admin", key: Any = PLATFORM_RSA, **extra: Any
) -> str:
    alg, kid = ("RS256", "p-rsa") if isinstance(key, rsa.RSAPrivateKey) else ("EdDSA", "p-ed")
    claims = {
        "sub": "platform|ada",
        "email": "ada@example.com",
        "org_id": org_id,
        "role": role,
        "iss": ISSUER,
        "exp": int(time.time()) + 300,
        **extra,
    }
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def audit_rows(stack: Stack, org_id: str) -> list[dict[str, Any]]:
    conn = await stack.db()
    try:
        rows = await conn.fetch(
            "SELECT row_to_json(a)::text AS row FROM connector.audit_log a WHERE org_id = $1",
            org_id,
        )
    finally:
        await conn.close()
    return [json.loads(r["row"]) for r in rows]


async def test_every_admin_action_is_recorded_with_who_when_and_what(
    audited: Stack, sandbox: SandboxClient
) -> None:
    org = new_org()
    team = await sandbox.create_team(plan="business")
    admin = platform_token(org)
    base = f"/v1/orgs/{org}/integrations"

    connected = await audited.http.post(
        base,
        json={"provider": "cursor", "api_key": team.api_key, "team_id": team.team_id},
        headers=bearer(admin),
    )
    assert connected.status_code == 201, connected.text
    integration_id = connected.json()["id"]
    ed_admin = platform_token(org, key=PLATFORM_ED)
    rotated = await audited.http.put(
        f"{base}/{integration_id}/credentials",
        json={"api_key": team.api_key},
        headers=bearer(ed_admin),
    )
    assert rotated.status_code == 200, rotated.text
    synced = await audited.http.post(
        f"{base}/{integration_id}/sync", json={"days": 7}, headers=auth(org)
    )
    assert synced.status_code == 202
    gone = await audited.http.delete(
        f"{base}/{integration_id}", params={"purge": "true"}, headers=bearer(admin)
    )
    assert gone.status_code == 204

    listed = await audited.http.get(f"/v1/orgs/{org}/audit-log", headers=bearer(admin))
    assert listed.status_code == 200, listed.text
    page = listed.json()
    entries = page["entries"]
    assert page["next_before"] is None
    assert [e["action"] for e in entries] == [
        "integration.disconnect",
        "integration.resync",
        "integration.rotate_credentials",
        "integration.connect",
    ]
    assert {e["target"] for e in entries} == {integration_id}
    assert [e["actor"] for e in entries] == [
        {"sub": "platform|ada", "email": "ada@example.com"},
        {"sub": "user-1", "email": None},  # the local HS256 token has no email
        {"sub": "platform|ada", "email": "ada@example.com"},
        {"sub": "platform|ada", "email": "ada@example.com"},
    ]
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(seqs, reverse=True)
    assert len(set(seqs)) == 4
    times = [datetime.fromisoformat(e["occurred_at"]) for e in entries]
    assert times == sorted(times, reverse=True)
    disconnect, resync, rotate, connect = (e["details"] for e in entries)
    # The purge removed the provider's team id from the entries (the connect named it).
    assert connect == {"provider": "cursor", "plan": "business", "status": "active"}
    assert team.team_id not in listed.text
    assert rotate == {"provider": "cursor", "plan": "business", "status": "active"}
    assert resync["days"] == 7
    assert resync["job_id"] == synced.json()["job_id"]
    assert disconnect == {"provider": "cursor", "purge": True}

    # Never a secret: not the key, not a token, not the sealed credential.
    stored = json.dumps(await audit_rows(audited, org))
    for secret in (team.api_key, admin, ed_admin, "v1.k1."):
        assert secret not in stored
        assert secret not in listed.text


async def test_a_refused_action_records_nothing(audited: Stack, sandbox: SandboxClient) -> None:
    org = new_org()
    team = await sandbox.create_team(plan="business")
    refused = await audited.http.post(
        f"/v1/orgs/{org}/integrations",
        json={"provider": "cursor", "api_key": "crsr_" + "1" * 64, "team_id": team.team_id},
        headers=auth(org),
    )
    assert refused.status_code == 422
    assert await audit_rows(audited, org) == []


async def test_pages_run_newest_first_by_sequence(audited: Stack, sandbox: SandboxClient) -> None:
    org = new_org()
    team = await sandbox.create_team(plan="business")
    connected = await audited.http.post(
        f"/v1/orgs/{org}/integrations",
        json={"provider": "cursor", "api_key": team.api_key, "team_id": team.team_id},
        headers=auth(org),
    )
    integration_id = connected.json()["id"]
    for days in (1, 2, 3, 4):
        synced = await audited.http.post(
            f"/v1/orgs/{org}/integrations/{integration_id}/sync",
            json={"days": days},
            headers=auth(org),
        )
        assert synced.status_code == 202
    url = f"/v1/orgs/{org}/audit-log"
    first = (await audited.http.get(url, params={"limit": 2}, headers=auth(org))).json()
    assert [e["details"]["days"] for e in first["entries"]] == [4, 3]
    second = (
        await audited.http.get(
            url, params={"limit": 2, "before": first["next_before"]}, headers=auth(org)
        )
    ).json()
    assert [e["details"]["days"] for e in second["entries"]] == [2, 1]
    last = (
        await audited.http.get(
            url, params={"limit": 2, "before": second["next_before"]}, headers=auth(org)
        )
    ).json()
    assert [e["action"] for e in last["entries"]] == ["integration.connect"]
    assert last["next_before"] is None
    for bad in ({"limit": 0}, {"limit": 201}, {"before": 0}, {"limit": "many"}):
        refused = await audited.http.get(url, params=bad, headers=auth(org))
        assert refused.status_code == 422, bad
        assert refused.json()["error"]["code"] == "invalid_request"


async def test_only_the_orgs_admins_read_its_audit_log(audited: Stack) -> None:
    org = new_org()
    url = f"/v1/orgs/{org}/audit-log"
    member = await audited.http.get(url, headers=bearer(platform_token(org, role="member")))
    assert (member.status_code, member.json()["error"]["code"]) == (403, "admin_only")
    other = await audited.http.get(url, headers=bearer(platform_token(new_org())))
    assert (other.status_code, other.json()["error"]["code"]) == (403, "forbidden")
    anonymous = await audited.http.get(url)
    assert anonymous.status_code == 401
    empty = await audited.http.get(url, headers=bearer(platform_token(org)))
    assert empty.json() == {"entries": [], "next_before": None}


async def test_platform_tokens_are_checked_by_the_service(audited: Stack) -> None:
    org = new_org()
    url = f"/v1/orgs/{org}/integrations"
    assert (await audited.http.get(url, headers=bearer(platform_token(org)))).status_code == 200
    forged_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    refusals = {
        "forged": platform_token(org, key=forged_key),
        "wrong issuer": platform_token(org, iss="https://evil.example"),
        "numeric-string exp": platform_token(org, exp=str(int(time.time()) + 300)),
        "expired": platform_token(org, exp=int(time.time()) - 60),
    }
    for what, token in refusals.items():
        response = await audited.http.get(url, headers=bearer(token))
        assert response.status_code == 401, what
        assert response.json()["error"]["code"] in {"invalid_token", "token_expired"}, what
