"""The whole system on one machine: sandbox, connector, syncer workers and metrics, each its own
process, sharing one Kafka broker and one PostgreSQL database."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from koalr_contracts import topics
from koalr_devstack.processes import ServiceProcess, free_port
from koalr_runtime.kafka import ensure_topics
from koalr_runtime.sealing import generate_key_entry


@dataclass
class StackConfig:
    kafka_bootstrap_servers: str
    database_url: str
    log_dir: Path
    topic_namespace: str = ""
    syncer_workers: int = 2
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    sealing_keys: str = field(default_factory=lambda: generate_key_entry("k1"))
    cursor_api_base_url: str | None = None
    """Point the connector and syncers at a real Cursor; None runs and uses the sandbox."""
    github_api_base_url: str | None = None
    """Point the connector and syncers at a real GitHub; None runs and uses the sandbox (the same
    process serves both providers)."""
    fixed_ports: bool = False
    """Use the documented default ports (demo) instead of free ones (tests)."""
    extra_env: dict[str, str] = field(default_factory=dict)
    sandbox_env: dict[str, str] = field(default_factory=dict)
    """Settings of the sandbox process (``SANDBOX_*``), e.g. ``SANDBOX_MAX_TEAMS`` for a fleet."""
    topic_partitions: int = 6


class Stack:
    """Starts the services in dependency order and stops them all on exit."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config

        def port(default: int) -> int:
            return default if config.fixed_ports else free_port()

        self.sandbox: ServiceProcess | None = None
        if config.cursor_api_base_url is None or config.github_api_base_url is None:
            sandbox_port = port(8010)
            self.sandbox = ServiceProcess(
                name="sandbox",
                module="koalr_sandbox",
                args=[],
                env={
                    "SANDBOX_PORT": str(sandbox_port),
                    "SANDBOX_LOG_LEVEL": "warning",
                    **config.sandbox_env,
                },
                port=sandbox_port,
                log_dir=config.log_dir,
                ready_path="/healthz",
            )
        sandbox_url = self.sandbox.base_url if self.sandbox else ""
        self.cursor_api_base_url = config.cursor_api_base_url or sandbox_url
        self.github_api_base_url = config.github_api_base_url or sandbox_url
        connector_port = port(8001)
        self.connector = self._service(
            "connector", "koalr_connector", "CONNECTOR_PORT", connector_port
        )
        self.syncers = [
            self._service(
                f"syncer-{i + 1}",
                "koalr_syncer",
                "SYNCER_PORT",
                port(8002) if i == 0 else free_port(),
            )
            for i in range(config.syncer_workers)
        ]
        self.metrics = self._service("metrics", "koalr_metrics", "METRICS_PORT", port(8003))

    def _service(self, name: str, module: str, port_var: str, port: int) -> ServiceProcess:
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.config.kafka_bootstrap_servers,
            "DATABASE_URL": self.config.database_url,
            "KOALR_TOPIC_NAMESPACE": self.config.topic_namespace,
            "KOALR_JWT_SECRET": self.config.jwt_secret,
            "KOALR_SEALING_KEYS": self.config.sealing_keys,
            "CURSOR_API_BASE_URL": self.cursor_api_base_url,
            "GITHUB_API_BASE_URL": self.github_api_base_url,
            "LOG_FORMAT": "json",
            port_var: str(port),
            **self.config.extra_env,
        }
        return ServiceProcess(
            name=name,
            module=module,
            args=["serve"],
            env=env,
            port=port,
            log_dir=self.config.log_dir,
        )

    @property
    def processes(self) -> list[ServiceProcess]:
        services = [self.connector, *self.syncers, self.metrics]
        return [self.sandbox, *services] if self.sandbox else services

    def topic(self, name: str) -> str:
        ns = self.config.topic_namespace
        return f"{ns}.{name}" if ns else name

    def start(self, timeout_s: float = 90.0) -> None:
        asyncio.run(
            ensure_topics(
                self.config.kafka_bootstrap_servers,
                [self.topic(t) for t in topics.ALL_TOPICS],
                partitions=self.config.topic_partitions,
            )
        )
        for process in self.processes:
            process.start()
        for process in self.processes:
            process.wait_ready(timeout_s)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
