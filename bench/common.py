"""Shared pieces of the benchmarks: measurements, the printed table, the results file.

Every benchmark returns a list of :class:`Measurement`. ``report`` prints them as one table and
appends them to ``bench/results.csv`` together with a description of the machine, so figures from
different runs and machines can be compared later.
"""

from __future__ import annotations

import csv
import os
import platform
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil

RESULTS_FILE = Path(__file__).resolve().parent / "results.csv"
FIELDS = (
    "run_at",
    "machine",
    "benchmark",
    "metric",
    "value",
    "unit",
    "baseline_metric",
    "baseline_value",
    "ratio",
    "target",
    "meets_target",
    "notes",
)


@dataclass(frozen=True, slots=True)
class Measurement:
    """One figure measured by a benchmark.

    ``baseline_value`` is a figure measured in the same run that the value is compared with (for
    example a raw ``COPY`` beside the full ingest path); ``ratio`` is ``value / baseline_value``.
    ``target`` is a human-readable goal such as ``">= 0.9"``; ``meets_target`` is computed by the
    benchmark itself, which knows the direction of the comparison.
    """

    benchmark: str
    metric: str
    value: float
    unit: str
    baseline_metric: str = ""
    baseline_value: float | None = None
    target: str = ""
    meets_target: bool | None = None
    notes: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline_value in (None, 0):
            return None
        assert self.baseline_value is not None
        return self.value / self.baseline_value


def machine_description() -> str:
    """CPU model, core count, memory and Python version of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
                break
    except OSError:
        pass
    return f"{cpu}; {os.cpu_count()} cores; {mem_gib}; Python {platform.python_version()}"


def _git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def format_table(measurements: Sequence[Measurement]) -> str:
    headers = ("benchmark", "metric", "value", "unit", "baseline", "ratio", "target", "ok")
    rows = []
    for m in measurements:
        baseline = f"{m.baseline_metric} {_fmt(m.baseline_value)}".strip()
        ok = "" if m.meets_target is None else ("yes" if m.meets_target else "NO")
        rows.append(
            (m.benchmark, m.metric, _fmt(m.value), m.unit, baseline, _fmt(m.ratio), m.target, ok)
        )
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join([line, sep, *body])


def report(measurements: Sequence[Measurement], results_file: Path = RESULTS_FILE) -> None:
    """Print the table and append every measurement to the results file."""
    machine = machine_description()
    print(f"machine: {machine}; revision {_git_revision()}")
    print(format_table(measurements))
    # What each figure rests on (truth checks, API calls/s, CPU and peak RSS per service...).
    for m in measurements:
        if m.notes:
            print(f"- {m.benchmark} / {m.metric}: {m.notes}")
    new_file = not results_file.exists()
    run_at = datetime.now(UTC).isoformat(timespec="seconds")
    with results_file.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        if new_file:
            writer.writeheader()
        for m in measurements:
            writer.writerow(
                {
                    "run_at": run_at,
                    "machine": machine,
                    "benchmark": m.benchmark,
                    "metric": m.metric,
                    "value": f"{m.value:.6g}",
                    "unit": m.unit,
                    "baseline_metric": m.baseline_metric,
                    "baseline_value": "" if m.baseline_value is None else f"{m.baseline_value:.6g}",
                    "ratio": "" if m.ratio is None else f"{m.ratio:.4g}",
                    "target": m.target,
                    "meets_target": "" if m.meets_target is None else str(m.meets_target).lower(),
                    "notes": m.notes,
                }
            )
    print(f"appended {len(measurements)} rows to {results_file.name}")


@dataclass(frozen=True, slots=True)
class ProcessSample:
    """CPU seconds (user + system) a process has used so far, read from ``/proc``."""

    pid: int
    cpu_s: float


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time ``pid`` has used so far."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def peak_rss_mib(pid: int) -> float:
    """Peak resident set size of ``pid`` (``VmHWM`` of ``/proc/<pid>/status``) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class ServiceCost:
    """CPU seconds and peak RSS per service over one measured phase.

    ``services`` maps a service name to the pids of its processes (two syncer workers count as one
    service). CPU is read before and after the phase; the peak RSS is the largest ``VmHWM`` of the
    service's processes (a high-water mark since the process started).
    """

    def __init__(self, services: dict[str, list[int]]) -> None:
        self._services = services
        self._before = {name: sum(cpu_seconds(p) for p in pids) for name, pids in services.items()}

    def summary(self, records: float) -> str:
        """``name: x CPU s per 1,000 records, peak RSS y MiB`` for each service."""
        parts = []
        for name, pids in self._services.items():
            used = sum(cpu_seconds(p) for p in pids) - self._before[name]
            per_k = used / records * 1000 if records else float("nan")
            rss = max(peak_rss_mib(p) for p in pids)
            parts.append(
                f"{name} {per_k:.3f} CPU s/1k records ({used:.1f} s), peak RSS {rss:.0f} MiB"
            )
        return "; ".join(parts)


def load_average() -> str:
    """The 1-minute load average, to say how busy the shared machine was."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


class Profiler:
    """``py-spy record`` attached to service processes while ``BENCH_PROFILE_DIR`` is set.

    Writes collapsed stacks (``--format raw``, one ``stack count`` line each) per process, which
    any flame-graph tool reads. Without the variable it does nothing, so the figures of a normal
    run are not taken under a sampler.
    """

    def __init__(self, label: str, pids: dict[str, int]) -> None:
        directory = os.environ.get("BENCH_PROFILE_DIR")
        self._running: list[subprocess.Popen[bytes]] = []
        if not directory:
            return
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        spy = Path(sys.executable).with_name("py-spy")
        for name, pid in pids.items():
            self._running.append(
                subprocess.Popen(
                    [
                        str(spy),
                        "record",
                        "--pid",
                        str(pid),
                        "--format",
                        "raw",
                        "--rate",
                        "50",
                        "--idle",
                        "--output",
                        str(out / f"{label}-{name}.txt"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    def stop(self) -> None:
        for process in self._running:
            process.send_signal(signal.SIGINT)
        for process in self._running:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self._running = []
