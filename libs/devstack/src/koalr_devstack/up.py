"""``make up`` / ``make down``: run the services for real use on this machine, in the background.

Configuration comes from the environment (see docs/configuration.md): the secrets
``KOALR_JWT_SECRET`` and ``KOALR_SEALING_KEYS`` are required; ``CURSOR_API_BASE_URL`` and
``GITHUB_API_BASE_URL`` default to Cursor's and GitHub's real APIs; ``SYNCER_WORKERS`` (default 2)
sets the number of syncer processes. Process ids and logs live in ``.infra/run`` and ``.infra/logs``.

    python -m koalr_devstack.up start|stop|status
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import httpx

from koalr_devstack.processes import ProcessFailedError, ServiceProcess

RUN_DIR = Path(".infra/run")
LOG_DIR = Path(".infra/logs")
REQUIRED = ("KOALR_JWT_SECRET", "KOALR_SEALING_KEYS", "KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")


def _say(text: str) -> None:
    print(text, flush=True)  # noqa: T201 - a command-line tool


def _services() -> list[ServiceProcess]:
    workers = int(os.environ.get("SYNCER_WORKERS", "2"))
    base_env = {
        "CURSOR_API_BASE_URL": os.environ.get("CURSOR_API_BASE_URL", "https://api.cursor.com"),
        "GITHUB_API_BASE_URL": os.environ.get("GITHUB_API_BASE_URL", "https://api.github.com"),
    }
    connector_port = int(os.environ.get("CONNECTOR_PORT", "8001"))
    metrics_port = int(os.environ.get("METRICS_PORT", "8003"))
    syncer_port = int(os.environ.get("SYNCER_PORT", "8002"))
    services = [
        ServiceProcess(
            "connector",
            "koalr_connector",
            ["serve"],
            {**base_env, "CONNECTOR_PORT": str(connector_port)},
            connector_port,
            LOG_DIR,
        ),
    ]
    for i in range(workers):
        port = syncer_port + 100 * i
        services.append(
            ServiceProcess(
                f"syncer-{i + 1}",
                "koalr_syncer",
                ["serve"],
                {**base_env, "SYNCER_PORT": str(port)},
                port,
                LOG_DIR,
            )
        )
    services.append(
        ServiceProcess(
            "metrics",
            "koalr_metrics",
            ["serve"],
            {"METRICS_PORT": str(metrics_port)},
            metrics_port,
            LOG_DIR,
        )
    )
    return services


def _pid_file(name: str) -> Path:
    return RUN_DIR / f"{name}.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(name: str) -> int | None:
    try:
        pid = int(_pid_file(name).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def start() -> int:
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if missing:
        _say(
            f"missing configuration: {', '.join(missing)}. Set KOALR_JWT_SECRET (at least 32 "
            "bytes) and KOALR_SEALING_KEYS (`.venv/bin/python -m koalr_runtime.sealing generate k1`); "
            "`make up` sets the Kafka and PostgreSQL variables itself."
        )
        return 2
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    started = []
    for service in _services():
        if _read_pid(service.name) is not None:
            _say(f"{service.name:<10} already running (pid {_read_pid(service.name)})")
            continue
        service.start()
        _pid_file(service.name).write_text(str(service.pid))
        started.append(service)
    try:
        for service in started:
            service.wait_ready(90)
            _say(
                f"{service.name:<10} ready on {service.base_url} (pid {service.pid}, log {service.log_path})"
            )
    except ProcessFailedError as exc:
        _say(str(exc))
        stop()
        return 1
    return 0


def stop() -> int:
    for service in reversed(_services()):
        pid = _read_pid(service.name)
        if pid is None:
            _pid_file(service.name).unlink(missing_ok=True)
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        _pid_file(service.name).unlink(missing_ok=True)
        _say(f"{service.name:<10} stopped")
    return 0


def status() -> int:
    healthy = True
    with httpx.Client(timeout=3) as client:
        for service in _services():
            pid = _read_pid(service.name)
            if pid is None:
                _say(f"{service.name:<10} stopped")
                healthy = False
                continue
            try:
                ready = client.get(service.base_url + "/readyz").status_code == 200
            except httpx.HTTPError:
                ready = False
            healthy &= ready
            _say(
                f"{service.name:<10} pid {pid:<8} {'ready' if ready else 'NOT ready'}  {service.base_url}"
            )
    return 0 if healthy else 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "status"
    commands = {"start": start, "stop": stop, "status": status}
    if command not in commands:
        _say("usage: python -m koalr_devstack.up start|stop|status")
        return 2
    return commands[command]()


if __name__ == "__main__":
    raise SystemExit(main())
