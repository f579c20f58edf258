"""The metrics service's audit log (settings changes), read by the org's admins only, with
platform tokens from a JWKS served over real HTTP beside the HS256 secret."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from koalr_devstack.databases import scratch_database
from koalr_runtime import audit
from koalr_runtime.auth import Principal
from tests.jwks_server import Platform, ed_jwk, serve_jwks
from tests.metrics.support import auth, make_settings, running_app

pytestmark = pytest.mark.integration

PLATFORM_ED = ed25519.Ed25519PrivateKey.generate()
AUDIENCE = "koalr-metrics"


@pytest.fixture(scope="module")
async def platform() -> AsyncIterator[Platform]:
    async with serve_jwks([ed_jwk(PLATFORM_ED, "p-ed")]) as p:
        yield p


@pytest.fixture(scope="module")
async def metrics(
    kafka_bootstrap_servers: str, database_url: str, platform: Platform
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    async with scratch_database(database_url) as dsn:
        settings = make_settings(
            kafka_bootstrap_servers,
            dsn,
            f"t{uuid.uuid4().hex[:12]}",
            jwks_url=platform.url,
            jwt_audience=AUDIENCE,
        )
        async with running_app(settings) as (_, client):
            yield client, dsn


def platform_token(org_id: str, role: str = "admin", **extra: Any) -> dict[str, str]:
    claims = {
        "sub": "platform|grace",
        "email": "grace@example.com",
        "org_id": org_id,
        "role": role,
        "aud": AUDIENCE,
        "exp": int(time.time()) + 300,
        **extra,
    }
    token = jwt.encode(claims, PLATFORM_ED, algorithm="EdDSA", headers={"kid": "p-ed"})
    return {"Authorization": f"Bearer {token}"}


def new_org() -> str:
    return f"org-{uuid.uuid4().hex[:10]}"


async def test_settings_changes_are_recorded_and_listed_newest_first(
    metrics: tuple[httpx.AsyncClient, str],
) -> None:
    client, _ = metrics
    org = new_org()
    settings_url = f"/v1/orgs/{org}/ai-analytics/settings"
    first = {"members_can_see_spend": True, "min_group_size": 3}
    second = {"members_can_see_spend": False, "min_group_size": 8}
    put = await client.put(settings_url, json=first, headers=platform_token(org))
    assert put.status_code == 200, put.text
    put = await client.put(settings_url, json=second, headers=auth(org))
    assert put.status_code == 200, put.text
    # A refused change (a member) records nothing.
    refused = await client.put(settings_url, json=first, headers=platform_token(org, "member"))
    assert refused.status_code == 403

    listed = await client.get(f"/v1/orgs/{org}/audit-log", headers=platform_token(org))
    assert listed.status_code == 200, listed.text
    newest, oldest = listed.json()["entries"]
    assert listed.json()["next_before"] is None
    assert (newest["action"], oldest["action"]) == ("settings.update", "settings.update")
    assert newest["seq"] > oldest["seq"]
    assert (newest["target"], oldest["target"]) == (org, org)
    assert oldest["actor"] == {"sub": "platform|grace", "email": "grace@example.com"}
    assert newest["actor"] == {"sub": "user-1", "email": None}
    # The seat price and retention were not sent, so both changes kept their defaults.
    price = {"cursor_seat_price_cents": 4000, "retention_days": 400}
    assert oldest["details"] == {**first, **price, "previous": None}
    assert newest["details"] == {**second, **price, "previous": {**first, **price}}

    paged = await client.get(
        f"/v1/orgs/{org}/audit-log", params={"limit": 1}, headers=platform_token(org)
    )
    assert paged.json()["entries"] == [newest]
    rest = await client.get(
        f"/v1/orgs/{org}/audit-log",
        params={"limit": 1, "before": paged.json()["next_before"]},
        headers=platform_token(org),
    )
    assert rest.json() == {"entries": [oldest], "next_before": None}


async def test_only_the_orgs_admins_read_its_audit_log(
    metrics: tuple[httpx.AsyncClient, str],
) -> None:
    client, _ = metrics
    org = new_org()
    url = f"/v1/orgs/{org}/audit-log"
    member = await client.get(url, headers=platform_token(org, "member"))
    assert (member.status_code, member.json()["error"]["code"]) == (403, "admin_only")
    other = await client.get(url, headers=platform_token(new_org()))
    assert (other.status_code, other.json()["error"]["code"]) == (403, "forbidden")
    assert (await client.get(url)).status_code == 401
    wrong_audience = await client.get(url, headers=platform_token(org, aud="someone-else"))
    assert wrong_audience.status_code == 401
    as_string = await client.get(url, headers=platform_token(org, exp=str(int(time.time()) + 60)))
    assert as_string.status_code == 401


async def test_the_shared_record_call_writes_in_the_callers_transaction(
    metrics: tuple[httpx.AsyncClient, str],
) -> None:
    """What the identities and erasure routes call: one line, rolled back with the action."""
    _, dsn = metrics
    org = new_org()
    actor = Principal(sub="admin-9", org_id=org, role="admin", email=None)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "metrics"})
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    try:
        async with conn.transaction():
            seq = await audit.record(
                conn,
                org_id=org,
                actor=actor,
                action="identities.replace",
                target=org,
                details={"identities": 12},
            )
        assert seq > 0

        class RolledBackError(Exception):
            pass

        async def erase_then_fail() -> None:
            async with conn.transaction():
                await audit.record(
                    conn, org_id=org, actor=actor, action="member.erase", target="a@example.com"
                )
                raise RolledBackError

        with pytest.raises(RolledBackError):
            await erase_then_fail()

        with pytest.raises(ValueError, match="api_key"):
            await audit.record(
                conn,
                org_id=org,
                actor=actor,
                action="settings.update",
                details={"nested": {"api_key": "crsr_x"}},
            )
        page = await audit.page(conn, org_id=org)
    finally:
        await conn.close()
    assert [(e.seq, e.action, e.details) for e in page.entries] == [
        (seq, "identities.replace", {"identities": 12})
    ]


async def test_an_identities_replacement_is_recorded_without_the_rows(
    metrics: tuple[httpx.AsyncClient, str],
) -> None:
    client, _ = metrics
    org = new_org()
    url = f"/v1/orgs/{org}/ai-analytics/identities"
    first = [{"email": "ada@example.com", "github_login": "ada-l"}]
    second = [
        {"email": "ada@example.com", "github_login": "ada-l"},
        {"email": "bob@example.com", "github_login": "bob-b"},
    ]
    for rows in (first, second):
        put = await client.put(url, json={"identities": rows}, headers=platform_token(org))
        assert put.status_code == 200, put.text
    refused = await client.put(url, json={"identities": [{"email": "x"}]}, headers=auth(org))
    assert refused.status_code == 422

    listed = await client.get(f"/v1/orgs/{org}/audit-log", headers=platform_token(org))
    assert listed.status_code == 200, listed.text
    newest, oldest = listed.json()["entries"]
    assert (newest["action"], oldest["action"]) == ("identities.replace", "identities.replace")
    assert oldest["details"] == {"identities": 1, "replaced": 0}
    assert newest["details"] == {"identities": 2, "replaced": 1}
    assert "ada@example.com" not in listed.text  # counts only, not the people
