"""``python -m bench``: run every benchmark, print one table, append to bench/results.csv."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from bench.common import Measurement, report


def main() -> int:
    selected = set(sys.argv[1:])
    measurements: list[Measurement] = []
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if not module.name.startswith("bench_"):
            continue
        if selected and module.name.removeprefix("bench_") not in selected:
            continue
        print(f"[bench] running {module.name}", flush=True)
        run = importlib.import_module(f"bench.{module.name}").run
        measurements.extend(run())
    if not measurements:
        print("no benchmark ran", file=sys.stderr)
        return 1
    report(measurements)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
