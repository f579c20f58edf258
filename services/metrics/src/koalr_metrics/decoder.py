"""Where usage records are decoded: in worker processes, so decoding runs beside the writes.

Contract validation of every record is the largest CPU cost of the ingest (docs/metrics.md,
"Throughput and latency"). In the consumer's own process it would compete with everything
else on its event loop: while a chunk is decoded, the pending PostgreSQL write of the previous
chunk cannot take its next step, and the HTTP API waits too. :class:`ProcessDecoder` hands each
chunk to a worker process instead (values in, ``COPY`` text out; see :func:`prepare_usage`), so
the event loop only moves bytes between Kafka, the workers and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

from koalr_metrics.ingest import PreparedUsage, prepare_usage
from koalr_runtime.logs import get_logger

log = get_logger(__name__)


class DecoderUnavailable(Exception):  # noqa: N818 - a state, like StoreUnavailable
    """A decoding worker died; the pool was replaced and the batch must be retried."""


class UsageDecoder(Protocol):
    """Turns chunks of usage-topic record values into :class:`PreparedUsage`."""

    async def start(self) -> None: ...

    def submit(self, topic: str, values: Sequence[bytes | None]) -> asyncio.Future[PreparedUsage]:
        """Queue a chunk; chunks submitted together are decoded in parallel where possible."""
        ...

    async def close(self) -> None: ...


class InlineDecoder:
    """Decodes in the calling process, at submit time (for a single core, or to profile)."""

    async def start(self) -> None:
        return None

    def submit(self, topic: str, values: Sequence[bytes | None]) -> asyncio.Future[PreparedUsage]:
        future: asyncio.Future[PreparedUsage] = asyncio.get_running_loop().create_future()
        future.set_result(prepare_usage(topic, values))
        return future

    async def close(self) -> None:
        return None


WORKER_GC_THRESHOLD = 20_000
"""Allocations between two young-generation collections in a worker (Python's default: 700).
A worker allocates some 30 objects per record and keeps none of them beyond its chunk;
collecting less often saved a tenth of its time (docs/metrics.md)."""


def _start_worker() -> None:
    # Everything imported so far lives as long as the worker: keep it out of the collector's
    # full passes, which would otherwise rescan it every few thousand decoded records.
    gc.collect()
    gc.freeze()
    gc.set_threshold(WORKER_GC_THRESHOLD)


def _ready() -> bool:
    return True


class ProcessDecoder:
    """A pool of worker processes (``spawn``: nothing of the consumer's state is inherited)."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("a process decoder needs at least one worker")
        self._workers = workers
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
        )

    async def start(self) -> None:
        """Start every worker now, so the first batch does not wait for interpreters."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self._pool, _ready) for _ in range(self._workers))
        )

    def submit(self, topic: str, values: Sequence[bytes | None]) -> asyncio.Future[PreparedUsage]:
        return asyncio.ensure_future(self._prepare(self._pool, topic, list(values)))

    async def _prepare(
        self, pool: ProcessPoolExecutor, topic: str, values: list[bytes | None]
    ) -> PreparedUsage:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(pool, prepare_usage, topic, values)
        except BrokenProcessPool as exc:
            if pool is self._pool:
                log.warning("decoder.worker_died", workers=self._workers)
                self._pool = self._new_pool()
                pool.shutdown(wait=False, cancel_futures=True)
            raise DecoderUnavailable("a decoding worker died; the batch comes again") from exc

    async def close(self) -> None:
        pool = self._pool
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: pool.shutdown(wait=True, cancel_futures=True)
        )


def create_decoder(workers: int) -> UsageDecoder:
    """``workers`` processes, or decoding in this process when ``workers`` is 0."""
    return ProcessDecoder(workers) if workers > 0 else InlineDecoder()
