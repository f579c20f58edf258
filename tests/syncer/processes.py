"""Syncer worker processes for the tests that need real processes (several workers, SIGKILL)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
from aiokafka.admin import AIOKafkaAdminClient

from koalr_syncer.settings import SyncerSettings

READY_TIMEOUT_S = 45.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def worker_env(settings: SyncerSettings, port: int) -> dict[str, str]:
    """The environment of ``koalr-syncer serve`` for these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCER_")}
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "DATABASE_URL": settings.database_url,
            "KOALR_TOPIC_NAMESPACE": settings.topic_namespace,
            "KOALR_TOPIC_PARTITIONS": str(settings.topic_partitions),
            "KOALR_SEALING_KEYS": settings.sealing_keys.get_secret_value(),
            "CURSOR_API_BASE_URL": settings.cursor_api_base_url,
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
            "SYNCER_PORT": str(port),
        }
    )
    for name in (
        "http_read_timeout_s",
        "retry_base_s",
        "retry_max_s",
        "scheduler_poll_s",
        "consumer_session_timeout_ms",
        "consumer_heartbeat_interval_ms",
        "worker_concurrency",
        "chunk_days",
        "incremental_interval_s",
        "rate_limit_default",
        "rate_limit_usage_events",
        "rate_window_s",
        "db_pool_size",
    ):
        env[f"SYNCER_{name.upper()}"] = str(getattr(settings, name))
    return env


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    _log: IO[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def jobs_handled(self) -> float:
        """Jobs this process handled, from its Prometheus ``/metrics``."""
        async with httpx.AsyncClient(timeout=5) as http:
            text = (await http.get(f"{self.url}/metrics")).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("koalr_syncer_jobs_total{")
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown, no commit, no goodbye to the consumer group."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def spawn_worker(settings: SyncerSettings, log_path: Path) -> WorkerProcess:
    """Start ``python -m koalr_syncer serve`` with the settings as environment variables."""
    port = free_port()
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "koalr_syncer", "serve"],
        env=worker_env(settings, port),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return WorkerProcess(process, port, log_path, log)


async def start_worker(settings: SyncerSettings, log_path: Path) -> WorkerProcess:
    """Start a worker process and wait until its ``/readyz`` answers 200."""
    worker = spawn_worker(settings, log_path)
    process = worker.process
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with httpx.AsyncClient(timeout=3) as http:
        while True:
            if process.poll() is not None:
                worker.stop()
                raise AssertionError(f"the worker exited early:\n{worker.tail()}")
            try:
                if (await http.get(f"{worker.url}/readyz")).status_code == 200:
                    return worker
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                worker.stop()
                raise AssertionError(f"the worker was not ready in time:\n{worker.tail()}")
            await asyncio.sleep(0.2)


async def wait_for_group(bootstrap: str, group: str, members: int, timeout_s: float) -> None:
    """Wait until the consumer group is stable with ``members`` members."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            state, count = "", -1
            for response in await admin.describe_consumer_groups([group]):
                for description in response.groups:
                    state, count = description[2], len(description[5])
            if state == "Stable" and count == members:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"group {group}: {state} with {count} members, not {members}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
