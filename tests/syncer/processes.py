"""Syncer worker processes for the tests that need real processes (several workers, SIGKILL)."""

from __future__ import annotations

from pathlib import Path

from koalr_devstack.processes import ProcessFailedError, ServiceProcess, free_port
from koalr_syncer.settings import SyncerSettings

READY_TIMEOUT_S = 45.0


def worker_env(settings: SyncerSettings, port: int) -> dict[str, str]:
    """The environment of ``koalr-syncer serve`` for these settings."""
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DATABASE_URL": settings.database_url,
        "KOALR_TOPIC_NAMESPACE": settings.topic_namespace,
        "KOALR_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "KOALR_SEALING_KEYS": settings.sealing_keys.get_secret_value(),
        "CURSOR_API_BASE_URL": settings.cursor_api_base_url,
        "GITHUB_API_BASE_URL": settings.github_api_base_url,
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
        "SYNCER_PORT": str(port),
    }
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
        "github_throttle_base_s",
        "db_pool_size",
    ):
        env[f"SYNCER_{name.upper()}"] = str(getattr(settings, name))
    return env


class WorkerProcess(ServiceProcess):
    """``python -m koalr_syncer serve`` configured from test settings."""

    async def jobs_handled(self) -> float:
        """Jobs this process handled, from its Prometheus ``/metrics``."""
        return await self.metric_total("koalr_syncer_jobs_total")


async def start_worker(settings: SyncerSettings, log_path: Path) -> WorkerProcess:
    """Start a worker process and wait until its ``/readyz`` answers 200."""
    port = free_port()
    worker = WorkerProcess(
        name=log_path.stem,
        module="koalr_syncer",
        args=["serve"],
        env=worker_env(settings, port),
        port=port,
        log_dir=log_path.parent,
        drop_env_prefixes=("SYNCER_",),
    )
    worker.start()
    try:
        await worker.wait_ready_async(READY_TIMEOUT_S)
    except ProcessFailedError:
        worker.stop()
        raise
    return worker
