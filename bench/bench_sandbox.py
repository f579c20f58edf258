"""Sandbox speed: team creation and usage-event pages for a 1,000-member team, over real HTTP.

Run with ``uv run python -m bench.bench_sandbox`` (or ``make bench``).
"""

from __future__ import annotations

import random
import resource
import statistics
import time
from collections.abc import Callable

import httpx

from bench.common import Measurement, report
from koalr_sandbox.testing import run_sandbox

BENCHMARK = "sandbox"
MEMBERS = 1000
DAYS = 90
DAY_MS = 86_400_000
WARM_REQUESTS = 200


def _timed(call: Callable[[], httpx.Response]) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = call()
    elapsed_ms = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed_ms, response


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run() -> list[Measurement]:
    results: list[Measurement] = []
    with run_sandbox() as base_url, httpx.Client(base_url=base_url, timeout=120) as http:
        spec = {"plan": "enterprise", "members": MEMBERS, "days": DAYS, "seed": 7}
        spec["rate_limits_enabled"] = False
        creations = []
        for _ in range(5):
            elapsed, response = _timed(lambda: http.post("/_sandbox/teams", json=spec))
            creations.append(elapsed)
            http.delete(f"/_sandbox/teams/{response.json()['team_id']}")
        creation = statistics.median(creations)
        results.append(
            Measurement(
                BENCHMARK, "create 1000-member 90-day team (median of 5)", creation, "ms",
                target="< 100", meets_target=creation < 100,
            )
        )  # fmt: skip

        _, created = _timed(lambda: http.post("/_sandbox/teams", json=spec))
        auth = (created.json()["api_key"], "")
        now_ms = int(time.time() * 1000)
        window = {"startDate": now_ms - 7 * DAY_MS, "endDate": now_ms, "pageSize": 1000}

        def page(number: int) -> httpx.Response:
            body = window | {"page": number}
            return http.post("/teams/filtered-usage-events", json=body, auth=auth)

        cold, first = _timed(lambda: page(1))
        pages = first.json()["pagination"]["numPages"]
        total = first.json()["totalUsageEventsCount"]
        results.append(
            Measurement(
                BENCHMARK, "events page of 1000, 7-day window, cold", cold, "ms",
                target="< 250", meets_target=cold < 250,
                notes=f"generates 8 days: {total} events in the window",
            )
        )  # fmt: skip

        rng = random.Random(1)
        warm = [_timed(lambda: page(rng.randint(1, pages)))[0] for _ in range(WARM_REQUESTS)]
        p50, p99 = _percentile(warm, 0.50), _percentile(warm, 0.99)
        results.append(
            Measurement(
                BENCHMARK, "events page of 1000, warm, p50", p50, "ms",
                target="< 100", meets_target=p50 < 100, notes=f"{WARM_REQUESTS} random pages",
            )
        )  # fmt: skip
        results.append(
            Measurement(
                BENCHMARK, "events page of 1000, warm, p99", p99, "ms",
                target="< 100", meets_target=p99 < 100, notes=f"{WARM_REQUESTS} random pages",
            )
        )  # fmt: skip

        month = {"startDate": now_ms - 30 * DAY_MS, "endDate": now_ms}
        daily, response = _timed(
            lambda: http.post(
                "/teams/daily-usage-data", json=month | {"page": 1, "pageSize": 1000}, auth=auth
            )
        )
        results.append(
            Measurement(
                BENCHMARK, "daily-usage, 30 days x 1000 users, cold", daily, "ms",
                notes=f"{len(response.json()['data'])} rows",
            )
        )  # fmt: skip
        truth, response = _timed(
            lambda: http.get(f"/_sandbox/teams/{created.json()['team_id']}/truth")
        )
        results.append(
            Measurement(
                BENCHMARK, "truth, 30 days x 1000 members", truth, "ms",
                notes=f"{len(response.content) / 1e6:.1f} MB of JSON",
            )
        )  # fmt: skip
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        results.append(
            Measurement(
                BENCHMARK, "peak RSS of the process", peak_mib, "MiB",
                notes="sandbox and benchmark client in one process",
            )
        )  # fmt: skip
    return results


if __name__ == "__main__":
    report(run())
