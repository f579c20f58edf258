"""``make demo``: the whole pipeline, end to end, on this machine.

Starts the sandbox, the connector, two syncer workers and the metrics service as separate processes
on the local Kafka and PostgreSQL; connects a demo org's Cursor team (Business plan) and a second team
on the Team plan; shows the backfill's progress; prints the AI Analytics summary as an admin and as a
member sees it, checks it against the sandbox's ground truth, and prints ready-to-paste curl commands.
On a terminal the services stay up until Ctrl-C; otherwise (CI) the demo stops them and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from koalr_devstack.databases import create_database
from koalr_devstack.processes import ProcessFailedError
from koalr_devstack.stack import Stack, StackConfig
from koalr_devstack.tokens import make_token

ORG_ID = "demo-org"
DEMO_DATABASE = "koalr_demo"
BACKFILL_TIMEOUT_S = float(os.environ.get("DEMO_TIMEOUT_S", "600"))
BAR = "█"


def say(text: str = "") -> None:
    print(text, flush=True)  # noqa: T201 - the demo talks to its user


def heading(text: str) -> None:
    say()
    say(text)
    say("=" * len(text))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str = "") -> str:
    cells = [[str(c) for c in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    align = align or "l" * len(headers)

    def fmt(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if a == "r" else v.ljust(w)
            for v, w, a in zip(values, widths, align, strict=True)
        ).rstrip()

    return "\n".join([fmt(headers), fmt(["-" * w for w in widths]), *(fmt(r) for r in cells)])


def dollars(cents: Any) -> str:
    if cents is None:
        return "-"
    value = Decimal(str(cents)) / 100
    return f"${value:,.2f}"


def bar(value: int | None, maximum: int, width: int = 30) -> str:
    if value is None:
        return "(suppressed)"
    if maximum <= 0:
        return ""
    return BAR * max(1 if value else 0, round(width * value / maximum))


@dataclass
class DemoTeam:
    team_id: str
    api_key: str
    plan: str
    members: int


class Demo:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        secret = stack.config.jwt_secret
        self.admin_token = make_token(secret, org_id=ORG_ID, role="admin", sub="demo-admin")
        self.member_token = make_token(secret, org_id=ORG_ID, role="member", sub="demo-member")
        self.http = httpx.Client(timeout=30.0)

    # --- sandbox --------------------------------------------------------------------------
    @property
    def sandbox_url(self) -> str:
        if self.stack.sandbox is None:
            raise RuntimeError("the demo needs the sandbox")
        return self.stack.sandbox.base_url

    def create_team(self, plan: str, members: int, seed: int) -> DemoTeam:
        response = self.http.post(
            f"{self.sandbox_url}/_sandbox/teams",
            json={"plan": plan, "members": members, "days": 60, "seed": seed},
        )
        response.raise_for_status()
        body = response.json()
        return DemoTeam(body["team_id"], body["api_key"], plan, members)

    def truth(self, team: DemoTeam, start: date, end: date) -> dict[str, Any]:
        response = self.http.get(
            f"{self.sandbox_url}/_sandbox/teams/{team.team_id}/truth",
            params={"start": start.isoformat(), "end": end.isoformat()},
        )
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    # --- connector ------------------------------------------------------------------------
    def connect(self, team: DemoTeam) -> dict[str, Any]:
        response = self.http.post(
            f"{self.stack.connector.base_url}/v1/orgs/{ORG_ID}/integrations",
            headers={"Authorization": f"Bearer {self.admin_token}"},
            json={"provider": "cursor", "api_key": team.api_key, "team_id": team.team_id},
        )
        if response.status_code != 201:
            raise RuntimeError(f"connect failed: {response.status_code} {response.text}")
        result: dict[str, Any] = response.json()
        return result

    def integration(self, integration_id: str) -> dict[str, Any]:
        response = self.http.get(
            f"{self.stack.connector.base_url}/v1/orgs/{ORG_ID}/integrations/{integration_id}",
            headers={"Authorization": f"Bearer {self.admin_token}"},
        )
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    # --- metrics --------------------------------------------------------------------------
    def summary(self, token: str, days: int = 30) -> dict[str, Any]:
        response = self.http.get(
            f"{self.stack.metrics.base_url}/v1/orgs/{ORG_ID}/ai-analytics/summary",
            headers={"Authorization": f"Bearer {token}"},
            params={"days": days},
        )
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def members(self) -> dict[str, Any]:
        response = self.http.get(
            f"{self.stack.metrics.base_url}/v1/orgs/{ORG_ID}/ai-analytics/members",
            headers={"Authorization": f"Bearer {self.admin_token}"},
            params={"days": 30},
        )
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


def _provider_entry(summary: dict[str, Any], integration_id: str) -> dict[str, Any] | None:
    for entry in summary.get("providers", []):
        if entry.get("integration_id") == integration_id:
            return dict(entry)
    return None


def _require_entry(summary: dict[str, Any], integration_id: str) -> dict[str, Any]:
    entry = _provider_entry(summary, integration_id)
    if entry is None:
        raise RuntimeError(f"the summary has no entry for integration {integration_id}")
    return entry


def wait_for_backfill(demo: Demo, business_id: str, team_id: str, started: float) -> float:
    """Show progress until the business integration is idle and its data is queryable."""
    heading("Backfilling the past 30 days")
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    deadline = time.monotonic() + BACKFILL_TIMEOUT_S
    last_line = ""
    while time.monotonic() < deadline:
        business = demo.integration(business_id)
        team = demo.integration(team_id)
        sync = business["sync"]
        progress = sync.get("progress") or {}
        done, total = progress.get("done"), progress.get("total")
        share = f"{done}/{total} {progress.get('unit', '')}".strip() if total else "-"
        entry = _provider_entry(demo.summary(demo.admin_token), business_id)
        freshness = (entry or {}).get("freshness") or {}
        line = (
            f"  {time.monotonic() - started:5.1f}s  business: {sync['state']:<8} progress {share:<14}"
            f" data through {sync.get('data_through') or '-':<10}  |  metrics sees "
            f"{freshness.get('days_with_data', 0)} days  |  team plan: {team['status']}"
        )
        if line != last_line:
            say(line)
            last_line = line
        if (
            sync["state"] == "idle"
            and sync.get("data_through") == yesterday.isoformat()
            and freshness.get("data_through") == yesterday.isoformat()
            and freshness.get("state") == "idle"
        ):
            return time.monotonic() - started
        time.sleep(0.2)
    raise TimeoutError(f"the backfill did not finish within {BACKFILL_TIMEOUT_S:.0f} s")


def print_admin_view(demo: Demo, business_id: str) -> dict[str, Any]:
    summary = demo.summary(demo.admin_token)
    entry = _require_entry(summary, business_id)
    heading(
        f"AI Analytics as an admin sees it ({summary['range']['start']} to {summary['range']['end']})"
    )
    spend_daily = {d["date"]: d["cents"] for d in entry["spend"]["daily"]}
    requests = {d["date"]: d["requests"] for d in entry["requests"]}
    peak = max((d["active_users"] for d in entry["dau"]), default=0)
    rows = [
        (
            d["date"],
            d["active_users"],
            bar(d["active_users"], peak),
            requests[d["date"]],
            dollars(spend_daily.get(d["date"])),
        )
        for d in entry["dau"]
    ]
    say(table(("day", "DAU", "trend", "requests", "spend"), rows, "lrlrr"))
    say()
    total_requests = sum(requests.values())
    model_rows = [
        (m["model"], m["requests"], f"{m['share'] * 100:.1f}%") for m in entry["models"][:8]
    ]
    say(table(("top models", "requests", "share"), model_rows, "lrr"))
    say()
    spend = entry["spend"]
    cycle = spend.get("cycle") or {}
    say(f"requests in range: {total_requests:,}")
    say(f"spend in range:    {dollars(spend['total_cents'])}")
    say(f"current cycle:     {dollars(cycle.get('total_cents'))} since {cycle.get('start', '-')}")
    say(
        f"freshness:         data through {entry['freshness']['data_through']}, "
        f"{entry['freshness']['days_with_data']}/{entry['freshness']['days_in_range']} days with data"
    )
    members = demo.members()["members"]
    say()
    member_rows = [
        (
            m["name"] or "-",
            m["email"],
            m["active_days"],
            m["requests"],
            m["top_model"] or "-",
            dollars(m["spend_cents"]),
        )
        for m in members[:10]
    ]
    say(
        table(
            ("top members", "email", "active days", "requests", "top model", "spend"),
            member_rows,
            "llrrlr",
        )
    )
    return entry


def print_member_view(demo: Demo, business_id: str) -> None:
    summary = demo.summary(demo.member_token)
    entry = _require_entry(summary, business_id)
    heading("The same page as a member sees it (no per-member rows, no spend, small days hidden)")
    requests = {d["date"]: d for d in entry["requests"]}
    rows = []
    for d in entry["dau"][-10:]:
        req = requests[d["date"]]
        rows.append(
            (
                d["date"],
                "suppressed" if d.get("suppressed") else d["active_users"],
                "suppressed" if req.get("suppressed") else req["requests"],
            )
        )
    say(table(("day (last 10)", "DAU", "requests"), rows, "lrr"))
    say(f"spend visible to members: {'yes' if 'spend' in entry else 'no'}")
    say(f"top models: {', '.join(m['model'] for m in entry['models'][:3])}")


def check_against_truth(demo: Demo, team: DemoTeam, entry: dict[str, Any]) -> bool:
    start = date.fromisoformat(entry["dau"][0]["date"])
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    truth = demo.truth(team, start, yesterday)
    truth_days = {d["date"]: d for d in truth["days"]}
    dau_ok = all(
        d["active_users"] == truth_days[d["date"]]["active_users"]
        for d in entry["dau"]
        if d["date"] in truth_days
    )
    req_ok = all(
        d["requests"] == truth_days[d["date"]]["requests"]
        for d in entry["requests"]
        if d["date"] in truth_days
    )
    spend_ok = all(
        Decimal(str(d["cents"])) == Decimal(truth_days[d["date"]]["charged_cents"])
        for d in entry["spend"]["daily"]
        if d["date"] in truth_days
    )
    heading("Checked against the sandbox's ground truth (every complete day)")
    say(f"daily active users: {'exact' if dau_ok else 'MISMATCH'}")
    say(f"requests per day:   {'exact' if req_ok else 'MISMATCH'}")
    say(f"spend per day:      {'exact to the cent' if spend_ok else 'MISMATCH'}")
    return dau_ok and req_ok and spend_ok


def print_degraded(demo: Demo, team_integration_id: str) -> None:
    integration = demo.integration(team_integration_id)
    heading("The Team-plan integration")
    error = integration["sync"].get("last_error") or {}
    say(f"status: {integration['status']}  plan: {integration['plan']}")
    say(f"reason: {error.get('code', '-')}: {error.get('message', '-')}")


def print_curl(demo: Demo, business_id: str) -> None:
    heading("Try the APIs (the demo token is valid for 12 hours)")
    c, m = demo.stack.connector.base_url, demo.stack.metrics.base_url
    say(f"export ADMIN_TOKEN={demo.admin_token}")
    say(f"export MEMBER_TOKEN={demo.member_token}")
    say(f"dashboard (open in a browser): {m}/dashboard/?org={ORG_ID}#token={demo.admin_token}")
    say(f'curl -s -H "Authorization: Bearer $ADMIN_TOKEN" {c}/v1/orgs/{ORG_ID}/integrations')
    say(
        f'curl -s -H "Authorization: Bearer $ADMIN_TOKEN" "{m}/v1/orgs/{ORG_ID}/ai-analytics/summary?days=30"'
    )
    say(
        f'curl -s -H "Authorization: Bearer $MEMBER_TOKEN" "{m}/v1/orgs/{ORG_ID}/ai-analytics/summary?days=30"'
    )
    say(
        f'curl -s -H "Authorization: Bearer $ADMIN_TOKEN" "{m}/v1/orgs/{ORG_ID}/ai-analytics/members?days=30"'
    )
    say(
        f'curl -s -X POST -H "Authorization: Bearer $ADMIN_TOKEN" -H "Content-Type: application/json" '
        f"-d '{{\"days\": 2}}' {c}/v1/orgs/{ORG_ID}/integrations/{business_id}/sync"
    )


@contextlib.contextmanager
def _stack(config: StackConfig) -> Iterator[Stack]:
    stack = Stack(config)
    say("Starting the services (each its own process):")
    try:
        stack.start()
        for process in stack.processes:
            say(
                f"  {process.name:<10} pid {process.pid:<8} {process.base_url}   log {process.log_path}"
            )
        yield stack
    finally:
        say("\nStopping the services started by the demo ...")
        stack.stop()
        say("stopped.")


def main() -> int:
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    database_url = os.environ.get("DATABASE_URL")
    if not kafka or not database_url:
        say("KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL must be set; `make demo` sets them.")
        return 2
    demo_db = asyncio.run(create_database(database_url, DEMO_DATABASE, replace=True))
    log_dir = Path(".infra/demo-logs").resolve()
    config = StackConfig(
        kafka_bootstrap_servers=kafka,
        database_url=demo_db,
        log_dir=log_dir,
        topic_namespace=f"demo{int(time.time())}",
        syncer_workers=2,
        fixed_ports=os.environ.get("DEMO_FIXED_PORTS", "1") == "1",
    )
    try:
        with _stack(config) as stack:
            demo = Demo(stack)
            business_team = demo.create_team("business", members=50, seed=7)
            small_team = demo.create_team("team", members=8, seed=11)
            heading("Connecting Cursor for the demo org")
            started = time.monotonic()
            business = demo.connect(business_team)
            say(
                f"business team {business_team.team_id}: integration {business['id']} "
                f"plan={business['plan']} status={business['status']}"
            )
            small = demo.connect(small_team)
            say(
                f"team-plan team {small_team.team_id}: integration {small['id']} "
                f"plan={small['plan']} status={small['status']}"
            )
            elapsed = wait_for_backfill(demo, business["id"], small["id"], started)
            say(f"\nconnect to data queryable: {elapsed:.1f} s")
            entry = print_admin_view(demo, business["id"])
            print_member_view(demo, business["id"])
            exact = check_against_truth(demo, business_team, entry)
            print_degraded(demo, small["id"])
            print_curl(demo, business["id"])
            if sys.stdin.isatty() and os.environ.get("DEMO_EXIT") != "1":
                say(
                    "\nThe services keep running for the commands above. Press Ctrl-C to stop them."
                )
                with contextlib.suppress(KeyboardInterrupt):
                    while all(p.running for p in stack.processes):
                        time.sleep(1)
            return 0 if exact else 1
    except (ProcessFailedError, TimeoutError, RuntimeError, httpx.HTTPError) as exc:
        say(f"\ndemo failed: {exc}")
        say(f"service logs are in {log_dir}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
