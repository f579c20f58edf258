"""Time as the sandbox sees it.

Everything that depends on "now" (what is visible, today's date, the billing cycle, rate-limit
windows, the request log) asks a :class:`Clock`, so tests can freeze or move time with
:class:`ManualClock` instead of waiting. Injected latency and stalls are real waits.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that only moves when told to."""

    def __init__(self, start: float | datetime) -> None:
        self._lock = threading.Lock()
        self._now = start.timestamp() if isinstance(start, datetime) else float(start)

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def set(self, moment: float | datetime) -> None:
        with self._lock:
            self._now = moment.timestamp() if isinstance(moment, datetime) else float(moment)
