"""A Kafka broker and a PostgreSQL cluster of one's own, that one may kill and restart.

The chaos run restarts Kafka and PostgreSQL on purpose. The machine's usual pair (started by
``make services-up``) may serve other runs at the same time, so the chaos run starts its own with
``deploy/local/infra.sh`` on free ports, a separate data directory and a separate PostgreSQL
cluster, and every stop or kill first proves that its target is this private pair: the Kafka pid's
command line names this run's ``server.properties`` and the cluster is this run's name and port,
never one of the ports in ``protected_ports``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from koalr_devstack.processes import free_port

SHARED_PORTS = frozenset({19092, 19093, 55432})
"""The documented default ports of the usual pair (``deploy/local/infra.sh``)."""


class InfraError(RuntimeError):
    """The private infrastructure could not be started, or a stop would hit something else."""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise InfraError(f"{name} is missing (Debian's postgresql-common provides it)")
    return path


def ports_in_environment() -> set[int]:
    """Ports of the Kafka and PostgreSQL the environment points at: never ours to touch."""
    ports: set[int] = set()
    for server in os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").split(","):
        _, _, port = server.strip().rpartition(":")
        if port.isdigit():
            ports.add(int(port))
    url = os.environ.get("DATABASE_URL")
    if url:
        try:
            port_number = urlsplit(url).port
        except ValueError:
            port_number = None
        if port_number is not None:
            ports.add(port_number)
    return ports


@dataclass
class PrivateInfra:
    """One Kafka broker and one PostgreSQL cluster for one run, on free loopback ports."""

    root: Path
    """The repository (holds ``deploy/local/infra.sh``)."""
    infra_dir: Path
    """This run's Kafka directory (configuration, data, logs), removed by :meth:`destroy`."""
    jars_dir: Path
    """Kafka's jars, resolved once from Maven Central and linked into every run's directory."""
    cluster: str
    """The PostgreSQL cluster's name (created at start, dropped at the end)."""
    kafka_port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    pg_port: int = field(default_factory=free_port)
    protected_ports: frozenset[int] = field(
        default_factory=lambda: SHARED_PORTS | frozenset(ports_in_environment())
    )

    def __post_init__(self) -> None:
        mine = {self.kafka_port, self.controller_port, self.pg_port}
        if mine & self.protected_ports or len(mine) != 3:
            raise InfraError(
                f"refusing ports {sorted(mine)}: they overlap the shared Kafka/PostgreSQL ports "
                f"{sorted(self.protected_ports)} or each other"
            )
        if self.cluster in {"koalr", "main"}:
            raise InfraError(f"refusing PostgreSQL cluster name {self.cluster!r}: it is shared")

    # --- addresses ----------------------------------------------------------------------------
    @property
    def kafka_bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def database_url(self) -> str:
        return f"postgresql://koalr:koalr@127.0.0.1:{self.pg_port}/koalr"

    @property
    def kafka_dir(self) -> Path:
        return self.infra_dir / "kafka"

    # --- the script -----------------------------------------------------------------------------
    def _script(self, command: str, what: str) -> None:
        env = {
            **os.environ,
            "KOALR_INFRA_DIR": str(self.infra_dir),
            "KOALR_KAFKA_PORT": str(self.kafka_port),
            "KOALR_KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "KOALR_PG_PORT": str(self.pg_port),
            "KOALR_PG_CLUSTER": self.cluster,
            "KOALR_KAFKA_HEAP": os.environ.get("KOALR_CHAOS_KAFKA_HEAP", "384m"),
        }
        result = subprocess.run(  # noqa: S603 - the repository's own script
            [str(self.root / "deploy/local/infra.sh"), command, what],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise InfraError(f"infra.sh {command} {what} failed:\n{result.stderr[-2000:]}")

    def start(self) -> None:
        """Fresh data: a new Kafka directory (jars linked) and a new PostgreSQL cluster."""
        shutil.rmtree(self.infra_dir, ignore_errors=True)
        self.kafka_dir.mkdir(parents=True)
        if self.jars_dir.is_dir():
            (self.kafka_dir / "lib").symlink_to(self.jars_dir.resolve(), target_is_directory=True)
        self._drop_cluster()
        self._script("start", "postgres")
        self._script("start", "kafka")
        if not self.jars_dir.is_dir():
            shutil.copytree(self.kafka_dir / "lib", self.jars_dir)

    def start_kafka(self) -> None:
        self._script("start", "kafka")

    def start_postgres(self) -> None:
        self._script("start", "postgres")

    # --- faults ---------------------------------------------------------------------------------
    def kafka_pid(self) -> int | None:
        """The broker's pid, only if its command line names this run's configuration."""
        try:
            pid = int((self.kafka_dir / "kafka.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            return None
        return pid if str(self.kafka_dir / "server.properties") in cmdline else None

    def kill_kafka(self) -> None:
        """SIGKILL the private broker (a crash: no controlled shutdown)."""
        pid = self.kafka_pid()
        if pid is None:
            raise InfraError("the private Kafka broker is not running; nothing to kill")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)

    def _pg_version(self) -> str:
        versions = sorted(
            (
                p.name
                for p in Path("/usr/lib/postgresql").glob("*")
                if (p / "bin/postgres").exists()
            ),
            key=lambda v: [int(x) for x in v.split(".") if x.isdigit()],
        )
        if not versions:
            raise InfraError("no PostgreSQL server is installed")
        return versions[-1]

    def _cluster_port(self) -> int | None:
        listing = subprocess.run(  # noqa: S603 - Debian's cluster listing
            [_tool("pg_lsclusters"), "-h"], capture_output=True, text=True, check=False
        ).stdout
        for line in listing.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1] == self.cluster and parts[2].isdigit():
                return int(parts[2])
        return None

    def crash_postgres(self) -> None:
        """Stop the private cluster in immediate mode (as a crash: no checkpoint, clients cut)."""
        port = self._cluster_port()
        if port != self.pg_port or port in self.protected_ports:
            raise InfraError(f"cluster {self.cluster} is on port {port}, not ours ({self.pg_port})")
        subprocess.run(  # noqa: S603 - Debian's cluster tool, on our own cluster only
            [_tool("pg_ctlcluster"), self._pg_version(), self.cluster, "stop", "-m", "immediate"],
            capture_output=True,
            check=True,
        )

    # --- the end --------------------------------------------------------------------------------
    def _drop_cluster(self) -> None:
        port = self._cluster_port()
        if port is None:
            return
        if port in self.protected_ports:
            raise InfraError(f"cluster {self.cluster} is on a protected port {port}")
        subprocess.run(  # noqa: S603 - Debian's cluster tool, on our own cluster only
            [_tool("pg_dropcluster"), "--stop", self._pg_version(), self.cluster],
            capture_output=True,
            check=False,
        )

    def destroy(self) -> None:
        """Stop both and remove this run's data (Kafka's jars stay for the next run)."""
        pid = self.kafka_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
        self._drop_cluster()
        shutil.rmtree(self.infra_dir, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def reap_stale_runs(base: Path, cluster_prefix: str) -> list[str]:
    """Remove what runs killed before their clean-up left behind: a run directory
    ``run-<seed>-<pid>`` (and its broker) or a cluster ``<prefix><seed>_<pid>`` whose run
    process is gone. Only names of this pattern are touched; returns what was removed."""
    removed: list[str] = []
    for run_dir in sorted(base.glob("run-*-*")):
        owner = run_dir.name.rsplit("-", 1)[-1]
        if not owner.isdigit() or _pid_alive(int(owner)):
            continue
        stale = PrivateInfra(base.parent, run_dir, base / "kafka-lib", f"{cluster_prefix}stale")
        pid = stale.kafka_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(run_dir, ignore_errors=True)
        removed.append(str(run_dir))
    if shutil.which("pg_lsclusters") is None:
        return removed
    listing = subprocess.run(  # noqa: S603 - Debian's cluster listing
        [_tool("pg_lsclusters"), "-h"], capture_output=True, text=True, check=False
    ).stdout
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) < 3 or not parts[1].startswith(cluster_prefix):
            continue
        owner = parts[1].rsplit("_", 1)[-1]
        if not owner.isdigit() or _pid_alive(int(owner)):
            continue
        if parts[2].isdigit() and int(parts[2]) in SHARED_PORTS | ports_in_environment():
            continue
        subprocess.run(  # noqa: S603 - Debian's cluster tool, on a stale run's cluster only
            [_tool("pg_dropcluster"), "--stop", parts[0], parts[1]],
            capture_output=True,
            check=False,
        )
        removed.append(f"cluster {parts[1]}")
    return removed
