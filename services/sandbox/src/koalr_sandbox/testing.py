"""Helpers for tests: a real sandbox server in a background thread, and an async client."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import uvicorn

from koalr_sandbox.app import create_app
from koalr_sandbox.clock import Clock
from koalr_sandbox.settings import SandboxSettings

STARTUP_TIMEOUT_S = 10.0


@contextmanager
def run_sandbox(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    settings: SandboxSettings | None = None,
    clock: Clock | None = None,
) -> Iterator[str]:
    """Serve a fresh sandbox over HTTP and yield its base URL, e.g. ``http://127.0.0.1:43121``.

    ``port=0`` picks a free port. The server stops (and the thread ends) when the block exits.
    """
    # An explicit IPPROTO_TCP lets asyncio set TCP_NODELAY on accepted connections; without it
    # every keep-alive response waits for the client's delayed ACK (about 40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    app = create_app(settings or SandboxSettings(host=host, port=bound_port), clock=clock)
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="koalr-sandbox", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.005)
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_TIMEOUT_S)
        sock.close()


def decimal_json(response: httpx.Response) -> Any:
    """A response body with every JSON number that has a fraction parsed as an exact Decimal."""
    return json.loads(response.content, parse_float=Decimal)


@dataclass(frozen=True, slots=True)
class SandboxTeam:
    team_id: str
    api_key: str


class SandboxClient:
    """Async helpers over a sandbox's HTTP API (its ``/_sandbox`` routes and the Cursor API).

    ``defaults`` are merged into every :meth:`create_team` body, so a test suite can fix the
    shape of its teams once.
    """

    def __init__(self, http: httpx.AsyncClient, defaults: Mapping[str, Any] | None = None) -> None:
        self.http = http
        self.defaults = dict(defaults or {})

    async def create_team(self, **spec: Any) -> SandboxTeam:
        response = await self.http.post("/_sandbox/teams", json=self.defaults | spec)
        _expect(response, 201)
        created = response.json()
        return SandboxTeam(created["team_id"], created["api_key"])

    async def configure(self, team: SandboxTeam, **changes: Any) -> dict[str, Any]:
        response = await self.http.patch(f"/_sandbox/teams/{team.team_id}", json=changes)
        _expect(response, 200)
        config: dict[str, Any] = response.json()
        return config

    async def rotate_key(self, team: SandboxTeam) -> SandboxTeam:
        response = await self.http.post(f"/_sandbox/teams/{team.team_id}/rotate-key")
        _expect(response, 200)
        return SandboxTeam(team.team_id, response.json()["api_key"])

    async def truth(self, team: SandboxTeam, start: str, end: str) -> Any:
        response = await self.http.get(
            f"/_sandbox/teams/{team.team_id}/truth", params={"start": start, "end": end}
        )
        _expect(response, 200)
        return response.json()

    async def request_log(self, team: SandboxTeam, since: int = 0) -> list[dict[str, Any]]:
        response = await self.http.get(
            f"/_sandbox/teams/{team.team_id}/requests", params={"since": since}
        )
        _expect(response, 200)
        entries: list[dict[str, Any]] = response.json()["requests"]
        return entries

    async def cursor(
        self,
        team: SandboxTeam,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        api_key: str | None = None,
    ) -> httpx.Response:
        """Call a Cursor endpoint with the team's key (or ``api_key``) as Basic user name."""
        auth = (team.api_key if api_key is None else api_key, "")
        if body is None:
            return await self.http.request(method, path, params=params, auth=auth)
        return await self.http.request(method, path, params=params, json=body, auth=auth)

    async def cursor_ok(self, team: SandboxTeam, method: str, path: str, **kwargs: Any) -> Any:
        """Like :meth:`cursor`, expecting 200; the body is parsed with exact decimals."""
        response = await self.cursor(team, method, path, **kwargs)
        _expect(response, 200)
        return decimal_json(response)

    async def usage_events(
        self, team: SandboxTeam, start_ms: int, end_ms: int, **filters: Any
    ) -> list[Any]:
        """Every usage event in ``[start_ms, end_ms]``, following pages of 1000."""
        page, rows = 1, []
        while True:
            body = {"startDate": start_ms, "endDate": end_ms, "page": page, "pageSize": 1000}
            result = await self.cursor_ok(
                team, "POST", "/teams/filtered-usage-events", body=body | filters
            )
            rows.extend(result["usageEvents"])
            if not result["pagination"]["hasNextPage"]:
                return rows
            page += 1


@dataclass(frozen=True, slots=True)
class SandboxOrg:
    org: str
    token: str


class GithubSandboxClient:
    """Async helpers over the GitHub half: ``/_sandbox/github`` and GitHub's Copilot routes.

    ``defaults`` are merged into every :meth:`create_org` body.
    """

    def __init__(self, http: httpx.AsyncClient, defaults: Mapping[str, Any] | None = None) -> None:
        self.http = http
        self.defaults = dict(defaults or {})

    async def create_org(self, **spec: Any) -> SandboxOrg:
        response = await self.http.post("/_sandbox/github/orgs", json=self.defaults | spec)
        _expect(response, 201)
        created = response.json()
        return SandboxOrg(created["org"], created["token"])

    async def configure(self, org: SandboxOrg, **changes: Any) -> dict[str, Any]:
        response = await self.http.patch(f"/_sandbox/github/orgs/{org.org}", json=changes)
        _expect(response, 200)
        config: dict[str, Any] = response.json()
        return config

    async def rotate_token(self, org: SandboxOrg) -> SandboxOrg:
        response = await self.http.post(f"/_sandbox/github/orgs/{org.org}/rotate-token")
        _expect(response, 200)
        return SandboxOrg(org.org, response.json()["token"])

    async def token_with(self, org: SandboxOrg, *permissions: str) -> str:
        response = await self.http.post(
            f"/_sandbox/github/orgs/{org.org}/tokens", json={"permissions": list(permissions)}
        )
        _expect(response, 201)
        token: str = response.json()["token"]
        return token

    async def add_late_rows(self, org: SandboxOrg, day: str, count: int) -> list[str]:
        response = await self.http.post(
            f"/_sandbox/github/orgs/{org.org}/late-rows", json={"day": day, "count": count}
        )
        _expect(response, 200)
        logins: list[str] = response.json()["logins"]
        return logins

    async def add_premium_spike(self, org: SandboxOrg, day: str, requests: int) -> int:
        """Bill ``requests`` more premium requests to the org on ``day``; returns the day's
        total spike."""
        response = await self.http.post(
            f"/_sandbox/github/orgs/{org.org}/premium-spike",
            json={"day": day, "requests": requests},
        )
        _expect(response, 200)
        total: int = response.json()["requests"]
        return total

    async def truth(self, org: SandboxOrg, start: str, end: str) -> Any:
        response = await self.http.get(
            f"/_sandbox/github/orgs/{org.org}/truth", params={"start": start, "end": end}
        )
        _expect(response, 200)
        return decimal_json(response)

    async def call(
        self,
        org: SandboxOrg,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        token: str | None = None,
        version: str | None = "2026-03-10",
    ) -> httpx.Response:
        """GET a GitHub route with the org's token (or ``token``) as a Bearer credential."""
        headers = {
            "Authorization": f"Bearer {org.token if token is None else token}",
            "Accept": "application/vnd.github+json",
        }
        if version is not None:
            headers["X-GitHub-Api-Version"] = version
        return await self.http.get(path, params=params, headers=headers)

    async def call_ok(self, org: SandboxOrg, path: str, **kwargs: Any) -> Any:
        response = await self.call(org, path, **kwargs)
        _expect(response, 200)
        return decimal_json(response)

    async def report(self, org: SandboxOrg, name: str, day: str | None = None) -> Any:
        """A report envelope: ``name`` is e.g. ``users-1-day`` or ``users-28-day/latest``."""
        params = {} if day is None else {"day": day}
        return await self.call_ok(
            org, f"/orgs/{org.org}/copilot/metrics/reports/{name}", params=params
        )

    async def download(self, link: str) -> list[Any]:
        """Fetch a report file without credentials: NDJSON lines, or one JSON object in a list."""
        response = await self.http.get(link)
        _expect(response, 200)
        if response.headers["content-type"].startswith("application/x-ndjson"):
            return [json.loads(line, parse_float=Decimal) for line in response.text.splitlines()]
        return [decimal_json(response)]

    async def report_rows(self, org: SandboxOrg, name: str, day: str | None = None) -> list[Any]:
        """Every row of every file of a report."""
        envelope = await self.report(org, name, day)
        rows: list[Any] = []
        for link in envelope["download_links"]:
            rows.extend(await self.download(link))
        return rows

    async def seats(self, org: SandboxOrg, per_page: int = 100) -> list[Any]:
        """Every seat, following the Link header."""
        seats: list[Any] = []
        url: str | None = f"/orgs/{org.org}/copilot/billing/seats?per_page={per_page}"
        while url is not None:
            response = await self.call(org, url)
            _expect(response, 200)
            seats.extend(response.json()["seats"])
            url = response.links.get("next", {}).get("url")
        return seats


def _expect(response: httpx.Response, status: int) -> None:
    if response.status_code != status:
        raise AssertionError(
            f"{response.request.method} {response.request.url.path}: expected {status}, "
            f"got {response.status_code}: {response.text}"
        )
