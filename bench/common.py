"""Shared pieces of the benchmarks: measurements, the printed table, the results file.

Every benchmark returns a list of :class:`Measurement`. ``report`` prints them as one table and
appends them to ``bench/results.csv`` together with a description of the machine, so figures from
different runs and machines can be compared later.
"""

from __future__ import annotations

import csv
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

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
