"""Background jobs of the metrics service (erasure, retention): each runs on an interval and can
be woken early; a failed round is logged and retried on the next one, never ends the loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from koalr_runtime.logs import get_logger

log = get_logger(__name__)


class PeriodicJob:
    """Runs ``step`` now, then every ``interval_s`` seconds or as soon as :meth:`wake` is called."""

    def __init__(self, name: str, step: Callable[[], Awaitable[Any]], interval_s: float) -> None:
        self._name = name
        self._step = step
        self._interval_s = interval_s
        self._woken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._woken.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"job:{self._name}")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _loop(self) -> None:
        while True:
            self._woken.clear()
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the next round retries
                log.warning(
                    "job.failed",
                    job=self._name,
                    error_type=type(exc).__name__,
                    error=str(exc)[:300],
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), timeout=self._interval_s)
