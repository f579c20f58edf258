"""In-memory stand-ins for unit tests: a fake clock and a scripted Cursor API on httpx."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import httpx

from koalr_providers.cursor import CursorClient, RetryPolicy
from koalr_providers.cursor.shapes import DAY_MS, day_start_ms
from koalr_providers.pacing import RateLimiter

LIMITS = {"default": 20, "usage_events": 60, "analytics": 100}


class FakeTime:
    """A monotonic clock that only moves when something sleeps (or a test advances it)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def event(day: date, ms_in_day: int, email: str, model: str, cents: str) -> dict[str, Any]:
    return {
        "timestamp": str(day_start_ms(day) + ms_in_day),
        "userEmail": email,
        "model": model,
        "kind": "Usage-based",
        "isTokenBasedCall": True,
        "chargedCents": Decimal(cents),
    }


def _dumps(body: Any) -> bytes:
    def default(value: Any) -> Any:
        if isinstance(value, Decimal):
            return float(value)
        raise TypeError(type(value).__name__)

    return json.dumps(body, default=default).encode()


@dataclass
class FakeCursor:
    """Serves ``/teams/filtered-usage-events`` (newest first) from ``events``; ``before_page``
    may change the data between calls, as a live provider does."""

    events: list[dict[str, Any]] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    before_page: Callable[[FakeCursor, int], None] | None = None

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        if self.before_page is not None:
            self.before_page(self, body["page"])
        start, end = body["startDate"], body["endDate"]
        chosen = sorted(
            (e for e in self.events if start <= int(e["timestamp"]) <= end),
            key=lambda e: -int(e["timestamp"]),
        )
        size, page = body["pageSize"], body["page"]
        pages = -(-len(chosen) // size)
        return httpx.Response(
            200,
            content=_dumps(
                {
                    "totalUsageEventsCount": len(chosen),
                    "pagination": {
                        "numPages": pages,
                        "currentPage": page,
                        "pageSize": size,
                        "hasNextPage": page < pages,
                        "hasPreviousPage": page > 1,
                    },
                    "usageEvents": chosen[(page - 1) * size : page * size],
                }
            ),
        )


def client_for(
    handler: Callable[[httpx.Request], httpx.Response],
    fake_time: FakeTime,
    *,
    policy: RetryPolicy | None = None,
    limits: dict[str, int] | None = None,
    api_key: str = "crsr_" + "a" * 64,
) -> tuple[CursorClient, httpx.AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://cursor")
    limiter = RateLimiter(limits or LIMITS, 60.0, clock=fake_time.clock, sleep=fake_time.sleep)
    client = CursorClient(
        http,
        api_key,
        team="team-1",
        limiter=limiter,
        policy=policy or RetryPolicy(max_retries=3, rate_limit_retries=3, base_s=1.0, max_s=16.0),
    )
    return client, http


def day_end(day: date) -> int:
    return day_start_ms(day) + DAY_MS - 1
