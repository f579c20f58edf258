"""Credentials and JWTs never appear in a log line (at DEBUG), a response or a stored row."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from koalr_runtime.logs import configure_logging
from koalr_runtime.sealing import Sealer
from koalr_sandbox.testing import GithubSandboxClient, SandboxClient
from tests.connector.conftest import (
    SEALING_KEYS,
    Stack,
    make_settings,
    new_org,
    running_app,
    token,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Every log line of the process (structlog and standard library), JSON at DEBUG."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_config = structlog.get_config()
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        configure_logging("DEBUG", "json", service="connector")
    # Module-level loggers used while caching is on would keep this configuration after the
    # test (and escape later tests' log capture): configure the same, without the cache.
    structlog.configure(cache_logger_on_first_use=False)
    try:
        yield buffer
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        structlog.configure(**saved_config)


async def _dump_rows(stack: Stack) -> str:
    db = await stack.db()
    try:
        integrations = await db.fetch(
            "SELECT row_to_json(i)::text AS t FROM connector.integrations i"
        )
        outbox = await db.fetch(
            "SELECT row_to_json(o)::text AS t, convert_from(payload, 'UTF8') AS p "
            "FROM connector.outbox o"
        )
    finally:
        await db.close()
    return "\n".join([r["t"] for r in integrations] + [f"{r['t']}\n{r['p']}" for r in outbox])


async def _all_published(stack: Stack) -> bool:
    db = await stack.db()
    try:
        pending = await db.fetchval(
            "SELECT count(*) FROM connector.outbox WHERE published_at IS NULL"
        )
    finally:
        await db.close()
    return bool(pending == 0)


async def test_no_secret_reaches_logs_responses_or_rows(
    *,
    captured_logs: io.StringIO,
    kafka_bootstrap_servers: str,
    fresh_database_url: str,
    topic_namespace: str,
    sandbox_url: str,
    sandbox: SandboxClient,
) -> None:
    settings = make_settings(
        kafka_bootstrap_servers=kafka_bootstrap_servers,
        database_url=fresh_database_url,
        topic_namespace=topic_namespace,
        cursor_api_base_url=sandbox_url,
    )
    org = new_org()
    jwt = token(org)
    headers = {"Authorization": f"Bearer {jwt}"}
    team = await sandbox.create_team(plan="enterprise")
    wrong_key = "crsr_" + "5" * 64
    base = f"/v1/orgs/{org}/integrations"
    async with running_app(settings) as stack:
        await wait_until(lambda: stack.kafka.is_started, timeout_s=60)
        responses = []
        connect = {"provider": "cursor", "api_key": team.api_key, "team_id": team.team_id}
        created = await stack.http.post(base, json=connect, headers=headers)
        assert created.status_code == 201
        one = f"{base}/{created.json()['id']}"
        responses.append(created)
        responses.append(await stack.http.post(base, json=connect, headers=headers))
        responses.append(
            await stack.http.post(
                base, json={**connect, "api_key": wrong_key, "team_id": "t2"}, headers=headers
            )
        )
        responses.append(
            await stack.http.post(base, json={**connect, "extra": team.api_key}, headers=headers)
        )
        rotated = await sandbox.rotate_key(team)
        responses.append(
            await stack.http.put(
                f"{one}/credentials", json={"api_key": team.api_key}, headers=headers
            )
        )
        responses.append(
            await stack.http.put(
                f"{one}/credentials", json={"api_key": rotated.api_key}, headers=headers
            )
        )
        responses.append(await stack.http.get(one, headers=headers))
        responses.append(await stack.http.get(base, headers=headers))
        responses.append(await stack.http.post(f"{one}/sync", json={"days": 2}, headers=headers))
        wrong_signature = token(org, secret="x" * 40)
        responses.append(
            await stack.http.get(base, headers={"Authorization": f"Bearer {wrong_signature}"})
        )
        await wait_until(lambda: _all_published(stack), timeout_s=30)
        rows = await _dump_rows(stack)
        sealed = json.loads(rows.splitlines()[0])["sealed_credential"]

    assert [r.status_code for r in responses] == [201, 409, 422, 422, 422, 200, 200, 200, 202, 401]
    logs = captured_logs.getvalue()
    lines: list[dict[str, Any]] = [json.loads(line) for line in logs.splitlines() if line]
    events = {line["event"] for line in lines}
    assert {
        "integration.connected",
        "integration.credentials_rotated",
        "provider.response",
    } <= events
    assert {"outbox.published", "integration.sync_requested"} <= events
    assert any(line["level"] == "debug" for line in lines)

    secrets = [team.api_key, rotated.api_key, wrong_key, jwt, wrong_signature]
    for secret in secrets:
        assert secret not in logs
        assert secret.rsplit(".", 1)[-1] not in logs
        assert secret not in rows
        for response in responses:
            assert secret not in response.text
    assert "[REDACTED]" not in logs, "something tried to log a secret"
    assert sealed.startswith("v1.k1.")
    opened = Sealer.from_config(SEALING_KEYS).open(sealed, context=created.json()["id"])
    assert opened == rotated.api_key


async def test_no_github_token_reaches_logs_responses_or_rows(
    *,
    captured_logs: io.StringIO,
    kafka_bootstrap_servers: str,
    fresh_database_url: str,
    topic_namespace: str,
    sandbox_url: str,
    github: GithubSandboxClient,
) -> None:
    settings = make_settings(
        kafka_bootstrap_servers=kafka_bootstrap_servers,
        database_url=fresh_database_url,
        topic_namespace=topic_namespace,
        cursor_api_base_url=sandbox_url,
    )
    org = new_org()
    headers = {"Authorization": f"Bearer {token(org)}"}
    github_org = await github.create_org()
    quiet = await github.create_org(metrics_policy=False)
    other = await github.create_org()
    seats_less = await github.token_with(other, "copilot_metrics")
    wrong_token = "ghp_" + "7" * 36
    base = f"/v1/orgs/{org}/integrations"
    async with running_app(settings) as stack:
        await wait_until(lambda: stack.kafka.is_started, timeout_s=60)
        connect = {"provider": "github_copilot", "token": github_org.token}
        responses = [
            await stack.http.post(
                base, json={**connect, "github_org": github_org.org}, headers=headers
            )
        ]
        one = f"{base}/{responses[0].json()['id']}"
        responses += [
            await stack.http.post(base, json=body, headers=headers)
            for body in (
                {**connect, "github_org": github_org.org},
                {"provider": "github_copilot", "token": wrong_token, "github_org": other.org},
                {"provider": "github_copilot", "token": seats_less, "github_org": other.org},
                {"provider": "github_copilot", "token": quiet.token, "github_org": quiet.org},
            )
        ]
        rotated = await github.rotate_token(github_org)
        responses += [
            await stack.http.put(f"{one}/credentials", json={"token": new_token}, headers=headers)
            for new_token in (github_org.token, rotated.token)
        ]
        responses.append(await stack.http.get(base, headers=headers))
        await wait_until(lambda: _all_published(stack), timeout_s=30)
        rows = await _dump_rows(stack)

    assert [r.status_code for r in responses] == [201, 409, 422, 422, 201, 422, 200, 200]
    logs = captured_logs.getvalue()
    events = {json.loads(line)["event"] for line in logs.splitlines() if line}
    assert {"integration.connected", "github.token_validated", "provider.response"} <= events
    for secret in (github_org.token, rotated.token, wrong_token, seats_less, quiet.token):
        assert secret not in logs
        assert secret not in rows
        for response in responses:
            assert secret not in response.text
    assert "[REDACTED]" not in logs, "something tried to log a secret"
