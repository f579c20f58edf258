"""Start, watch and stop service processes, each with its own log file."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int) -> bool:
    """Whether something already accepts connections on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class ProcessFailedError(RuntimeError):
    """A service process exited or did not become ready; the message ends with its last log lines."""


@dataclass
class ServiceProcess:
    """One service run as ``python -m <module> ...`` with its own environment and log file."""

    name: str
    module: str
    args: list[str]
    env: dict[str, str]
    port: int
    log_dir: Path
    ready_path: str = "/readyz"
    drop_env_prefixes: tuple[str, ...] = ()
    """Inherited variables with these prefixes are left out (only ``env`` configures them)."""
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _log: IO[bytes] | None = field(default=None, init=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def start(self) -> None:
        if self.running:
            return
        if port_in_use(self.port):
            # Another process would answer the readiness probe in this one's place.
            raise ProcessFailedError(
                f"port {self.port} for {self.name} is already in use (a service left running by "
                "`make up` or another demo?); stop it (`make down`) or free the port, then retry"
            )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        inherited = {
            k: v for k, v in os.environ.items() if not k.startswith(self.drop_env_prefixes)
        }
        env = {**inherited, **self.env}
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", self.module, *self.args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        last_error = "no answer yet"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if not self.running:
                    raise ProcessFailedError(
                        f"{self.name} exited with code {self.process and self.process.returncode} "
                        f"during start-up; last log lines:\n{self.tail()}"
                    )
                try:
                    response = client.get(self.base_url + self.ready_path)
                    if response.status_code == 200:
                        return
                    last_error = f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    last_error = type(exc).__name__
                time.sleep(0.2)
        raise ProcessFailedError(
            f"{self.name} was not ready on {self.base_url}{self.ready_path} within "
            f"{timeout_s:.0f} s ({last_error}); last log lines:\n{self.tail()}"
        )

    async def wait_ready_async(self, timeout_s: float = 60.0) -> None:
        await asyncio.to_thread(self.wait_ready, timeout_s)

    async def metric_total(self, name: str) -> float:
        """Sum of a Prometheus counter (all label sets) from the process's ``/metrics``."""
        async with httpx.AsyncClient(timeout=5.0) as http:
            text = (await http.get(self.base_url + "/metrics")).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith((f"{name}{{", f"{name} "))
        )

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up (crash simulation)."""
        if self.process is not None and self.running:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self._close_log()

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.process is not None and self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
