"""The connector's HTTP API as the operator uses it, with a short-lived admin token for one org.

The command line goes through the API rather than the connector's tables: the connector stays the
only reader of its schema, and a resync takes the same path (outbox, job id) as the platform's.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt

from koalr_cli.errors import EXIT_USAGE, CliError

TOKEN_TTL_S = 300


def admin_token(secret: str, org_id: str, *, now_s: float | None = None) -> str:
    """An HS256 admin JWT for ``org_id``, valid for five minutes."""
    issued = int(time.time() if now_s is None else now_s)
    claims = {"sub": "koalr-cli", "org_id": org_id, "role": "admin", "exp": issued + TOKEN_TTL_S}
    return jwt.encode(claims, secret, algorithm="HS256")


class ConnectorClient:
    """List, show and resync integrations of one org."""

    def __init__(self, http: httpx.AsyncClient, *, org_id: str, jwt_secret: str | None) -> None:
        if not jwt_secret:
            raise CliError(
                "missing_jwt_secret",
                "Set KOALR_JWT_SECRET to the platform's HS256 secret (the connector's); the CLI "
                "signs a five-minute admin token for --org with it.",
                exit_code=EXIT_USAGE,
            )
        self._http = http
        self._org_id = org_id
        self._headers = {"Authorization": f"Bearer {admin_token(jwt_secret, org_id)}"}

    async def list_integrations(self) -> list[dict[str, Any]]:
        body = await self._call("GET", "")
        integrations: list[dict[str, Any]] = body["integrations"]
        return integrations

    async def get_integration(self, integration_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/{integration_id}")

    async def resync(self, integration_id: str, *, days: int | None) -> dict[str, Any]:
        payload = {"days": days} if days is not None else None
        return await self._call("POST", f"/{integration_id}/sync", json=payload)

    async def _call(self, method: str, path: str, json: Any = None) -> dict[str, Any]:
        url = f"/v1/orgs/{self._org_id}/integrations{path}"
        try:
            response = await self._http.request(method, url, headers=self._headers, json=json)
        except httpx.HTTPError as exc:
            raise CliError(
                "connector_unreachable",
                f"The connector at {self._http.base_url} did not answer ({type(exc).__name__}); "
                "check KOALR_CONNECTOR_URL and `koalr status`.",
            ) from exc
        body: Any
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and isinstance(body, dict):
            return body
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and "code" in error:
            raise CliError(str(error["code"]), str(error.get("message", "")))
        raise CliError(
            "connector_error",
            f"The connector answered {response.status_code} to {method} {url} without an error body.",
        )
