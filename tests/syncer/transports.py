"""HTTP transports between the syncer and the sandbox that change what one team's API answers,
as a provider sometimes does: a member name PostgreSQL cannot store, usage events whose total
moves while they are paged."""

from __future__ import annotations

import base64
import json
import re

import httpx

from koalr_sandbox.testing import SandboxTeam


def _is_for(request: httpx.Request, team: SandboxTeam) -> bool:
    token = base64.b64encode(f"{team.api_key}:".encode()).decode()
    header: str | None = request.headers.get("authorization")
    return header == f"Basic {token}"


def _rewritten(response: httpx.Response, content: bytes) -> httpx.Response:
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return httpx.Response(response.status_code, headers=headers, content=content)


class Rewriting(httpx.AsyncBaseTransport):
    """Forwards every call to the network; subclasses change one team's answers."""

    def __init__(self, team: SandboxTeam) -> None:
        self._team = team
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if response.status_code != 200 or not _is_for(request, self._team):
            return response
        content = await response.aread()
        changed = self.rewrite(request, content)
        return response if changed is None else _rewritten(response, changed)

    def rewrite(self, request: httpx.Request, content: bytes) -> bytes | None:
        """The new body of a 200 answer to the team, or None to keep it."""
        raise NotImplementedError

    async def aclose(self) -> None:
        await self._inner.aclose()


class NulInMemberName(Rewriting):
    """The team's first member has a NUL byte in their name (PostgreSQL text refuses it)."""

    def rewrite(self, request: httpx.Request, content: bytes) -> bytes | None:
        if request.url.path != "/teams/members":
            return None
        body = json.loads(content)
        body["teamMembers"][0]["name"] += "\u0000"
        return json.dumps(body).encode()


class MovingEventTotal(Rewriting):
    """The first ``times`` usage-event pages after the first one of a read report one event
    more than the first page did, as if late events landed while the pages were read."""

    def __init__(self, team: SandboxTeam, times: int) -> None:
        super().__init__(team)
        self.left = times

    def rewrite(self, request: httpx.Request, content: bytes) -> bytes | None:
        if request.url.path != "/teams/filtered-usage-events" or self.left <= 0:
            return None
        if json.loads(request.content).get("page", 1) == 1:
            return None
        self.left -= 1
        # Only the count changes; the events and their decimal cents stay byte for byte.
        return re.sub(
            rb'"totalUsageEventsCount":\s*(\d+)',
            lambda m: b'"totalUsageEventsCount": %d' % (int(m.group(1)) + 1),
            content,
            count=1,
        )
