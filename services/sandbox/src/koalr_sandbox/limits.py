"""Per-team, per-endpoint rate limits over rolling windows.

A bucket accepts at most ``limit`` requests in any span of ``window_s`` seconds. Only accepted
requests are remembered, so rejected ones do not use up the budget. When a request is refused the
limiter says how long until the oldest accepted request leaves the window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Final, Generic, Literal, TypeVar

Bucket = Literal[
    "members", "daily_usage", "spend", "usage_events", "analytics_dau", "analytics_models"
]
LimitName = Literal["default", "usage_events", "analytics"]

LIMIT_OF_BUCKET: Final[dict[Bucket, LimitName]] = {
    "members": "default",
    "daily_usage": "default",
    "spend": "default",
    "usage_events": "usage_events",
    "analytics_dau": "analytics",
    "analytics_models": "analytics",
}


K = TypeVar("K", bound=Hashable)


class RateLimiter(Generic[K]):
    """Rolling-window buckets, keyed by ``K`` (a Cursor endpoint kind, a GitHub route, …)."""

    def __init__(self) -> None:
        self._accepted: dict[K, deque[float]] = {}

    def acquire(self, bucket: K, limit: int, window_s: float, now: float) -> float | None:
        """Take a slot at ``now``; None when accepted, else the seconds until a slot frees."""
        accepted = self._accepted.setdefault(bucket, deque())
        while accepted and accepted[0] + window_s <= now:
            accepted.popleft()
        if len(accepted) < limit:
            accepted.append(now)
            return None
        # With a lowered limit more than ``limit`` entries may be held; the slot that frees
        # first for the new limit is the one at position len - limit.
        return accepted[len(accepted) - limit] + window_s - now

    def used(self, bucket: K, window_s: float, now: float) -> int:
        return sum(1 for t in self._accepted.get(bucket, ()) if t + window_s > now)
