"""Pacing of provider calls: at most N requests per team and endpoint in any rolling window.

:class:`Pacer` is what a client needs from pacing: a slot before each request, a hold-off after a
429, and a look at each response's headers. :class:`RateLimiter` implements it for documented
fixed limits (Cursor: per team, per endpoint, per minute); :class:`HeaderPacer` implements it for a
provider that announces its budget in response headers (GitHub's ``x-ratelimit-*``), through
:meth:`Pacer.observe`.

Cursor counts a request when it arrives. The limiter
keeps, per ``(team, bucket)``, a log of the requests it let through. A slot is taken before a
request is sent and stamped with the time its response came back: the provider received the
request before it answered, so "response time + window" is never earlier than the moment the
provider forgets the request. The next request waits only when ``limit`` requests are inside the
window, so a burst up to the limit goes out at once and the rest follows the window, which is
the shortest schedule the limit allows.

One worker owns an integration's jobs at a time (jobs are keyed by integration id), so this
in-process state is enough; after a partition moves to another process the first window may be
shared with the previous owner, and the rare 429 that follows is honoured like any other.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

PENDING: Final[float] = math.inf
_POLL_S: Final[float] = 0.05


@dataclass(slots=True)
class _Bucket:
    log: deque[list[float]] = field(default_factory=deque)
    blocked_until: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Slot:
    """One request's place in its bucket; :meth:`done` stamps it when the response arrived."""

    __slots__ = ("_clock", "_entry")

    def __init__(self, entry: list[float], clock: Clock) -> None:
        self._entry = entry
        self._clock = clock

    def done(self) -> None:
        if self._entry[0] == PENDING:
            self._entry[0] = self._clock()


class Pacer(Protocol):
    """Pacing as a client uses it; ``team`` is the credential's scope, ``bucket`` the endpoint's."""

    async def acquire(self, team: str, bucket: str) -> Slot:
        """Wait until a request may go out, then take a slot for it."""
        ...

    def hold_off(self, team: str, bucket: str, seconds: float) -> None:
        """Send nothing to this bucket for ``seconds`` (the provider said 429)."""
        ...

    def observe(self, team: str, bucket: str, headers: Mapping[str, str]) -> None:
        """Learn from a response's headers (remaining budget, reset time) when a provider sends them."""
        ...


class RateLimiter:
    """Per ``(team, bucket)`` sliding-log limiter; ``limits`` maps a bucket to its limit.

    Implements :class:`Pacer` for providers with documented, fixed limits.
    """

    def __init__(
        self,
        limits: Mapping[str, int],
        window_s: float,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        for bucket, limit in limits.items():
            if limit < 1:
                raise ValueError(f"the limit of {bucket!r} must be at least 1")
        self._limits = dict(limits)
        self._window_s = window_s
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self.waited_s = 0.0

    @property
    def window_s(self) -> float:
        return self._window_s

    def limit(self, bucket: str) -> int:
        try:
            return self._limits[bucket]
        except KeyError:
            raise ValueError(f"unknown pacing bucket {bucket!r}") from None

    def _bucket(self, team: str, bucket: str) -> _Bucket:
        key = (team, bucket)
        state = self._buckets.get(key)
        if state is None:
            state = self._buckets[key] = _Bucket()
        return state

    async def acquire(self, team: str, bucket: str) -> Slot:
        """Wait until a request may go out, then take a slot for it."""
        limit = self.limit(bucket)
        state = self._bucket(team, bucket)
        async with state.lock:
            while True:
                now = self._clock()
                log = state.log
                while log and log[0][0] + self._window_s <= now:
                    log.popleft()
                wait = state.blocked_until - now
                if wait <= 0 and len(log) >= limit:
                    oldest = log[len(log) - limit][0]
                    wait = _POLL_S if oldest == PENDING else oldest + self._window_s - now
                if wait <= 0:
                    entry = [PENDING]
                    log.append(entry)
                    return Slot(entry, self._clock)
                self.waited_s += wait
                await self._sleep(wait)

    def hold_off(self, team: str, bucket: str, seconds: float) -> None:
        """Send nothing to this bucket for ``seconds`` (the provider said 429)."""
        state = self._bucket(team, bucket)
        state.blocked_until = max(state.blocked_until, self._clock() + max(0.0, seconds))

    def observe(self, team: str, bucket: str, headers: Mapping[str, str]) -> None:
        """Fixed documented limits: response headers carry nothing to learn."""

    def in_window(self, team: str, bucket: str) -> int:
        """Requests of the bucket still inside the window (pending ones included)."""
        state = self._buckets.get((team, bucket))
        if state is None:
            return 0
        now = self._clock()
        return sum(1 for entry in state.log if entry[0] + self._window_s > now)


class HeaderPacer:
    """Pacing by the budget a provider announces in its responses (GitHub's ``x-ratelimit-*``).

    Implements :class:`Pacer`. Requests go out at once while the budget lasts; when a response
    says ``x-ratelimit-remaining: 0``, nothing more goes to that ``(team, bucket)`` until
    ``x-ratelimit-reset`` (epoch seconds, read against ``wall``) plus ``margin_s``, since the
    reset is given to the second. A throttle's hint (:meth:`hold_off`) blocks the same way.
    """

    def __init__(
        self,
        *,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        margin_s: float = 1.0,
    ) -> None:
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self._margin_s = margin_s
        self._blocked_until: dict[tuple[str, str], float] = {}
        self.waited_s = 0.0

    async def acquire(self, team: str, bucket: str) -> Slot:
        """Wait while the bucket is blocked, then let the request go."""
        while (wait := self._blocked_until.get((team, bucket), 0.0) - self._clock()) > 0:
            self.waited_s += wait
            await self._sleep(wait)
        return Slot([self._clock()], self._clock)

    def hold_off(self, team: str, bucket: str, seconds: float) -> None:
        """Send nothing to this bucket for ``seconds``."""
        key = (team, bucket)
        until = self._clock() + max(0.0, seconds)
        self._blocked_until[key] = max(self._blocked_until.get(key, 0.0), until)

    def observe(self, team: str, bucket: str, headers: Mapping[str, str]) -> None:
        """Block the bucket until the announced reset once the remaining budget is 0."""
        wait = spent_budget_wait_s(headers, self._wall())
        if wait is not None:
            self.hold_off(team, bucket, wait + self._margin_s)


def spent_budget_wait_s(headers: Mapping[str, str], now_epoch_s: float) -> float | None:
    """Seconds until ``x-ratelimit-reset`` when ``x-ratelimit-remaining`` is 0, else ``None``."""
    remaining = headers.get("x-ratelimit-remaining")
    reset = headers.get("x-ratelimit-reset")
    if remaining is None or reset is None:
        return None
    try:
        if int(remaining) > 0:
            return None
        return max(0.0, float(reset) - now_epoch_s)
    except ValueError:
        return None
