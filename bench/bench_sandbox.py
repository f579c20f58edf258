"""Sandbox speed over real HTTP: team creation and usage-event pages for a 1,000-member Cursor
team; report envelopes and report-file downloads for a 1,000-seat, 90-day GitHub org.

Run with ``uv run python -m bench.bench_sandbox`` (or ``make bench``).
"""

from __future__ import annotations

import random
import resource
import statistics
import time
from collections.abc import Callable
from datetime import date, timedelta
from functools import partial

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
        results.extend(_github(http))
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        results.append(
            Measurement(
                BENCHMARK, "peak RSS of the process", peak_mib, "MiB",
                notes="sandbox and benchmark client in one process",
            )
        )  # fmt: skip
    return results


GITHUB_REPORT_DAYS = 30


def _github(http: httpx.Client) -> list[Measurement]:
    """Envelopes (cold) and file downloads (warm) of the 1-day reports of the last 30 days."""
    spec = {"seats": MEMBERS, "days": DAYS, "seed": 7, "rate_limits_enabled": False}
    creation, created = _timed(lambda: http.post("/_sandbox/github/orgs", json=spec))
    org, token = created.json()["org"], created.json()["token"]
    headers = {"Authorization": f"Bearer {token}", "X-GitHub-Api-Version": "2026-03-10"}
    data_through = http.get(f"/_sandbox/github/orgs/{org}").json()["data_through"]
    last = date.fromisoformat(data_through)
    envelopes: list[float] = []
    links: list[str] = []
    for offset in range(GITHUB_REPORT_DAYS):
        day = (last - timedelta(days=offset)).isoformat()
        for name in ("users-1-day", "organization-1-day"):
            elapsed, response = _timed(
                partial(
                    http.get,
                    f"/orgs/{org}/copilot/metrics/reports/{name}",
                    params={"day": day},
                    headers=headers,
                )
            )
            if name == "users-1-day":
                envelopes.append(elapsed)
            links.extend(response.json()["download_links"])
    sizes = [len(_timed(partial(http.get, link))[1].content) for link in links]
    rng = random.Random(2)
    warm = [_timed(lambda: http.get(rng.choice(links)))[0] for _ in range(WARM_REQUESTS)]
    p50, p99 = _percentile(warm, 0.50), _percentile(warm, 0.99)
    start = (last - timedelta(days=DAYS)).isoformat()
    truth, response = _timed(
        partial(http.get, f"/_sandbox/github/orgs/{org}/truth", params={"start": start})
    )
    notes = (
        f"{WARM_REQUESTS} random links of {len(links)} (users-1-day NDJSON and "
        f"organization-1-day JSON, {GITHUB_REPORT_DAYS} days); files up to "
        f"{max(sizes) / 1e6:.2f} MB"
    )
    return [
        Measurement(
            BENCHMARK, "create 1000-seat 90-day GitHub org", creation, "ms",
        ),
        Measurement(
            BENCHMARK, "users-1-day envelope, 1000 seats, cold, p50",
            _percentile(envelopes, 0.5), "ms",
            notes=f"generates and renders the day; {GITHUB_REPORT_DAYS} days",
        ),
        Measurement(
            BENCHMARK, "report link, 1000 seats, warm, p50", p50, "ms",
            target="< 100", meets_target=p50 < 100, notes=notes,
        ),
        Measurement(
            BENCHMARK, "report link, 1000 seats, warm, p99", p99, "ms",
            target="< 100", meets_target=p99 < 100, notes=notes,
        ),
        Measurement(
            BENCHMARK, "GitHub truth, 90 days x 1000 seats", truth, "ms",
            notes=f"{len(response.content) / 1e6:.1f} MB of JSON",
        ),
    ]  # fmt: skip


if __name__ == "__main__":
    report(run())
