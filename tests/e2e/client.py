"""What the platform and the dashboard do over HTTP, plus the sandbox's admin routes."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from koalr_devstack.stack import Stack
from koalr_devstack.tokens import make_token
from koalr_sandbox.testing import decimal_json
from koalr_syncer.settings import newest_final_day

T = TypeVar("T")


def today_utc() -> date:
    return datetime.now(UTC).date()


def final_day() -> date:
    """The newest day the syncer reports complete (``data_through``) with its default settings."""
    return newest_final_day(today_utc())


def wait_for(
    probe: Callable[[], T | None], *, timeout_s: float, what: str, interval_s: float = 0.5
) -> T:
    """Poll ``probe`` until it returns something other than None (or False)."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}; last: {last!r}")


class Platform:
    def __init__(self, stack: Stack, org_id: str) -> None:
        self.stack = stack
        self.org_id = org_id
        secret = stack.config.jwt_secret
        self.admin = make_token(secret, org_id=org_id, role="admin", sub="admin-1")
        self.member = make_token(secret, org_id=org_id, role="member", sub="member-1")
        self.http = httpx.Client(timeout=30.0)

    def __enter__(self) -> Platform:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.http.close()

    @staticmethod
    def _auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    # --- sandbox (the provider) ------------------------------------------------------------
    @property
    def sandbox_url(self) -> str:
        if self.stack.sandbox is None:
            raise RuntimeError("these tests need the sandbox")
        return self.stack.sandbox.base_url

    def create_team(self, **spec: Any) -> dict[str, str]:
        response = self.http.post(f"{self.sandbox_url}/_sandbox/teams", json=spec)
        assert response.status_code == 201, response.text
        team: dict[str, str] = response.json()
        return team

    def configure_team(self, team_id: str, **changes: Any) -> None:
        response = self.http.patch(f"{self.sandbox_url}/_sandbox/teams/{team_id}", json=changes)
        assert response.status_code == 200, response.text

    def rotate_team_key(self, team_id: str) -> str:
        response = self.http.post(f"{self.sandbox_url}/_sandbox/teams/{team_id}/rotate-key")
        assert response.status_code == 200, response.text
        key: str = response.json()["api_key"]
        return key

    def create_github_org(self, **spec: Any) -> dict[str, str]:
        """A GitHub organisation with Copilot: ``{"org", "token"}``."""
        response = self.http.post(f"{self.sandbox_url}/_sandbox/github/orgs", json=spec)
        assert response.status_code == 201, response.text
        org: dict[str, str] = response.json()
        return org

    def configure_github_org(self, org: str, **changes: Any) -> None:
        response = self.http.patch(f"{self.sandbox_url}/_sandbox/github/orgs/{org}", json=changes)
        assert response.status_code == 200, response.text

    def revoke_github_token(self, org: str) -> None:
        response = self.http.post(f"{self.sandbox_url}/_sandbox/github/orgs/{org}/revoke-token")
        assert response.status_code == 204, response.text

    def rotate_github_token(self, org: str) -> str:
        response = self.http.post(f"{self.sandbox_url}/_sandbox/github/orgs/{org}/rotate-token")
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        return token

    def github_truth(self, org: str, start: date, end: date) -> Any:
        response = self.http.get(
            f"{self.sandbox_url}/_sandbox/github/orgs/{org}/truth",
            params={"start": start.isoformat(), "end": end.isoformat()},
        )
        assert response.status_code == 200, response.text
        return decimal_json(response)

    def truth(self, team_id: str, start: date, end: date) -> Any:
        response = self.http.get(
            f"{self.sandbox_url}/_sandbox/teams/{team_id}/truth",
            params={"start": start.isoformat(), "end": end.isoformat()},
        )
        assert response.status_code == 200, response.text
        return decimal_json(response)

    # --- connector ----------------------------------------------------------------------------
    @property
    def integrations_url(self) -> str:
        return f"{self.stack.connector.base_url}/v1/orgs/{self.org_id}/integrations"

    def connect(self, team: dict[str, str]) -> httpx.Response:
        return self.http.post(
            self.integrations_url,
            headers=self._auth(self.admin),
            json={"provider": "cursor", "api_key": team["api_key"], "team_id": team["team_id"]},
        )

    def connect_copilot(self, org: dict[str, str]) -> httpx.Response:
        return self.http.post(
            self.integrations_url,
            headers=self._auth(self.admin),
            json={"provider": "github_copilot", "token": org["token"], "github_org": org["org"]},
        )

    def integration(self, integration_id: str) -> dict[str, Any]:
        response = self.http.get(
            f"{self.integrations_url}/{integration_id}", headers=self._auth(self.admin)
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def rotate(self, integration_id: str, api_key: str) -> httpx.Response:
        return self.http.put(
            f"{self.integrations_url}/{integration_id}/credentials",
            headers=self._auth(self.admin),
            json={"api_key": api_key},
        )

    def rotate_token(self, integration_id: str, token: str) -> httpx.Response:
        return self.http.put(
            f"{self.integrations_url}/{integration_id}/credentials",
            headers=self._auth(self.admin),
            json={"token": token},
        )

    def resync(self, integration_id: str, days: int) -> httpx.Response:
        return self.http.post(
            f"{self.integrations_url}/{integration_id}/sync",
            headers=self._auth(self.admin),
            json={"days": days},
        )

    # --- metrics ------------------------------------------------------------------------------
    def summary(self, token: str, days: int = 30, provider: str | None = None) -> tuple[int, Any]:
        params: dict[str, str | int] = {"days": days}
        if provider is not None:
            params["provider"] = provider
        response = self.http.get(
            f"{self.stack.metrics.base_url}/v1/orgs/{self.org_id}/ai-analytics/summary",
            headers=self._auth(token),
            params=params,
        )
        return response.status_code, decimal_json(response)

    def provider_summary(self, integration_id: str, token: str | None = None) -> Any:
        status, body = self.summary(token or self.admin)
        assert status == 200, body
        for entry in body["providers"]:
            if entry["integration_id"] == integration_id:
                return entry
        return None

    def members(self, token: str, days: int = 30, provider: str | None = None) -> tuple[int, Any]:
        params: dict[str, str | int] = {"days": days}
        if provider is not None:
            params["provider"] = provider
        response = self.http.get(
            f"{self.stack.metrics.base_url}/v1/orgs/{self.org_id}/ai-analytics/members",
            headers=self._auth(token),
            params=params,
        )
        return response.status_code, decimal_json(response)

    def set_settings(self, **settings: Any) -> None:
        response = self.http.put(
            f"{self.stack.metrics.base_url}/v1/orgs/{self.org_id}/ai-analytics/settings",
            headers=self._auth(self.admin),
            json=settings,
        )
        assert response.status_code == 200, response.text

    # --- waiting ------------------------------------------------------------------------------
    def wait_synced(
        self, integration_id: str, timeout_s: float = 240.0, data_through: date | None = None
    ) -> dict[str, Any]:
        """Until the connector shows the sync idle through ``data_through`` (by default Cursor's
        newest final day) and metrics agrees."""
        final = (data_through or final_day()).isoformat()

        def probe() -> dict[str, Any] | None:
            integration = self.integration(integration_id)
            sync = integration["sync"]
            if sync["state"] != "idle" or sync["data_through"] != final:
                return None
            entry = self.provider_summary(integration_id)
            if not entry or entry["freshness"]["data_through"] != final:
                return None
            if entry["freshness"]["state"] != "idle":
                return None
            return integration

        return wait_for(probe, timeout_s=timeout_s, what=f"{integration_id} synced to {final}")
