"""The connector behind the shared HTTP edge: identifiers with control characters or breaking the
org-id rule are 4xx before they reach PostgreSQL, and the document says what the routes take."""

from __future__ import annotations

from typing import Any

import pytest

from koalr_sandbox.testing import SandboxClient
from tests.connector.conftest import Stack, auth, connect_cursor, new_org, token

pytestmark = pytest.mark.integration


def _code(body: dict[str, Any]) -> str:
    assert set(body["error"]) == {"code", "message"}
    code: str = body["error"]["code"]
    return code


@pytest.mark.parametrize(
    "body",
    [
        {"provider": "cursor", "api_key": "key", "team_id": "team\x00one"},
        {"provider": "cursor", "api_key": "k\x00ey", "team_id": "team"},
        {"provider": "github_copilot", "token": "t", "github_org": "a\x00b"},
        {"provider": "github_copilot", "token": "t\x07", "github_org": "ab"},
    ],
)
async def test_control_characters_in_connect_bodies_are_422(
    stack: Stack, body: dict[str, str]
) -> None:
    org = new_org()
    response = await stack.http.post(f"/v1/orgs/{org}/integrations", json=body, headers=auth(org))
    assert (response.status_code, _code(response.json())) == (422, "invalid_request")


@pytest.mark.parametrize("org", ["ac\x00me", "x" * 129, "ünï", "a b"])
async def test_a_token_org_id_breaking_the_rule_is_401(stack: Stack, org: str) -> None:
    headers = {"Authorization": f"Bearer {token(org)}"}
    response = await stack.http.get("/v1/orgs/acme/integrations", headers=headers)
    assert (response.status_code, _code(response.json())) == (401, "invalid_token")


@pytest.mark.parametrize(
    "path", ["/v1/orgs/ac%00me/integrations", "/v1/orgs/" + "o" * 129 + "/integrations"]
)
async def test_a_path_org_id_breaking_the_rule_is_422_on_every_route(
    stack: Stack, path: str
) -> None:
    for method in ("GET", "POST"):
        response = await stack.http.request(method, path, headers=auth("acme"), json={})
        assert (response.status_code, _code(response.json())) == (422, "invalid_request")


async def test_empty_credentials_are_invalid_in_the_document_and_the_api(
    stack: Stack, sandbox: SandboxClient
) -> None:
    spec = (await stack.http.get("/openapi.json")).json()
    assert spec["components"]["schemas"]["CredentialsUpdate"]["oneOf"] == [
        {"required": ["api_key"], "not": {"required": ["token"]}},
        {"required": ["token"], "not": {"required": ["api_key"]}},
    ]
    org = new_org()
    team = await sandbox.create_team(plan="business")
    integration = (await connect_cursor(stack, org, team)).json()
    response = await stack.http.put(
        f"/v1/orgs/{org}/integrations/{integration['id']}/credentials", json={}, headers=auth(org)
    )
    assert (response.status_code, _code(response.json())) == (422, "invalid_request")


async def test_every_operation_documents_the_edge_statuses(stack: Stack) -> None:
    spec = (await stack.http.get("/openapi.json")).json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            statuses = set(operation["responses"])
            assert {"401", "403", "405", "413", "422", "429", "503"} <= statuses, (path, method)
            assert ("400" in statuses) == ("requestBody" in operation), (path, method)
            (org_id,) = [p for p in operation["parameters"] if p["name"] == "org_id"]
            assert org_id["schema"]["maxLength"] == 128


async def test_trace_is_405_with_allow(stack: Stack) -> None:
    response = await stack.http.request("TRACE", "/v1/orgs/acme/integrations", headers=auth("acme"))
    assert (response.status_code, _code(response.json())) == (405, "method_not_allowed")
    assert response.headers["allow"] == "GET, POST"
