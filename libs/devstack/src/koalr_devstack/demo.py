"""``make demo``: the whole pipeline, end to end, on this machine.

Starts the sandbox, the connector, two syncer workers and the metrics service as separate processes
on the local Kafka and PostgreSQL; connects a demo org's Cursor team (Business plan) and GitHub
Copilot organisation (40 seats), plus a Team-plan Cursor team and a Copilot organisation whose
usage-metrics policy is off; shows the backfill's progress; prints Cursor and Copilot side by side
as an admin and as a member sees them, checks every final day against the sandbox's ground truth,
shows the degraded integrations with their reason, and prints ready-to-paste curl commands.
On a terminal the services stay up until Ctrl-C; otherwise (CI) the demo stops them and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

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
    if value is None or maximum <= 0:
        return ""
    return BAR * max(1 if value else 0, round(width * value / maximum))


Provider = Literal["cursor", "github_copilot"]
LABELS: dict[Provider, str] = {"cursor": "Cursor", "github_copilot": "GitHub Copilot"}


@dataclass(frozen=True)
class DemoTeam:
    """A Cursor team in the sandbox."""

    team_id: str
    api_key: str
    plan: str
    members: int


@dataclass(frozen=True)
class DemoGithubOrg:
    """A GitHub organisation with Copilot in the sandbox."""

    org: str
    token: str
    plan: str
    seats: int


@dataclass(frozen=True)
class Connected:
    """One integration of the demo org: which provider, and the sandbox account behind it."""

    provider: Provider
    integration_id: str
    account: DemoTeam | DemoGithubOrg

    @property
    def label(self) -> str:
        return LABELS[self.provider]


class Demo:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        secret = stack.config.jwt_secret
        self.admin_token = make_token(secret, org_id=ORG_ID, role="admin", sub="demo-admin")
        self.member_token = make_token(secret, org_id=ORG_ID, role="member", sub="demo-member")
        self.http = httpx.Client(timeout=30.0)

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    # --- sandbox --------------------------------------------------------------------------
    @property
    def sandbox_url(self) -> str:
        if self.stack.sandbox is None:
            raise RuntimeError("the demo needs the sandbox")
        return self.stack.sandbox.base_url

    def create_team(self, plan: str, members: int, seed: int) -> DemoTeam:
        body = self._json(
            self.http.post(
                f"{self.sandbox_url}/_sandbox/teams",
                json={"plan": plan, "members": members, "days": 60, "seed": seed},
            )
        )
        return DemoTeam(body["team_id"], body["api_key"], plan, members)

    def create_github_org(
        self, plan: str, seats: int, seed: int, *, metrics_policy: bool = True
    ) -> DemoGithubOrg:
        body = self._json(
            self.http.post(
                f"{self.sandbox_url}/_sandbox/github/orgs",
                json={
                    "plan": plan,
                    "seats": seats,
                    "days": 60,
                    "seed": seed,
                    "metrics_policy": metrics_policy,
                },
            )
        )
        return DemoGithubOrg(body["org"], body["token"], plan, seats)

    def truth(self, account: DemoTeam | DemoGithubOrg, start: date, end: date) -> dict[str, Any]:
        path = (
            f"teams/{account.team_id}"
            if isinstance(account, DemoTeam)
            else f"github/orgs/{account.org}"
        )
        return self._json(
            self.http.get(
                f"{self.sandbox_url}/_sandbox/{path}/truth",
                params={"start": start.isoformat(), "end": end.isoformat()},
            )
        )

    # --- connector ------------------------------------------------------------------------
    def connect(self, account: DemoTeam | DemoGithubOrg) -> tuple[Connected, dict[str, Any]]:
        provider: Provider
        if isinstance(account, DemoTeam):
            provider = "cursor"
            body = {"provider": provider, "api_key": account.api_key, "team_id": account.team_id}
        else:
            provider = "github_copilot"
            body = {"provider": provider, "token": account.token, "github_org": account.org}
        response = self.http.post(
            f"{self.stack.connector.base_url}/v1/orgs/{ORG_ID}/integrations",
            headers={"Authorization": f"Bearer {self.admin_token}"},
            json=body,
        )
        if response.status_code != 201:
            raise RuntimeError(f"connect failed: {response.status_code} {response.text}")
        integration = self._json(response)
        return Connected(provider, integration["id"], account), integration

    def integration(self, integration_id: str) -> dict[str, Any]:
        return self._json(
            self.http.get(
                f"{self.stack.connector.base_url}/v1/orgs/{ORG_ID}/integrations/{integration_id}",
                headers={"Authorization": f"Bearer {self.admin_token}"},
            )
        )

    # --- metrics --------------------------------------------------------------------------
    def summary(self, token: str, days: int = 30) -> dict[str, Any]:
        return self._json(
            self.http.get(
                f"{self.stack.metrics.base_url}/v1/orgs/{ORG_ID}/ai-analytics/summary",
                headers={"Authorization": f"Bearer {token}"},
                params={"days": days},
            )
        )

    def members(self, provider: Provider) -> list[dict[str, Any]]:
        body = self._json(
            self.http.get(
                f"{self.stack.metrics.base_url}/v1/orgs/{ORG_ID}/ai-analytics/members",
                headers={"Authorization": f"Bearer {self.admin_token}"},
                params={"days": 30, "provider": provider},
            )
        )
        members: list[dict[str, Any]] = body["members"]
        return members

    def insights(self) -> dict[str, Any]:
        return self._json(
            self.http.get(
                f"{self.stack.metrics.base_url}/v1/orgs/{ORG_ID}/ai-analytics/insights",
                headers={"Authorization": f"Bearer {self.admin_token}"},
                params={"days": 30},
            )
        )


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


def _progress(demo: Demo, summary: dict[str, Any], watched: Connected) -> tuple[str, bool]:
    """One integration's backfill progress, and whether its data is all queryable."""
    sync = demo.integration(watched.integration_id)["sync"]
    progress = sync.get("progress") or {}
    done, total = progress.get("done"), progress.get("total")
    share = f"{done}/{total}" if total else "-"
    freshness = (_provider_entry(summary, watched.integration_id) or {}).get("freshness") or {}
    through = sync.get("data_through")
    text = (
        f"{watched.label}: {sync['state']:<7} {share:>5} days, through {through or '-':<10}"
        f" (metrics: {freshness.get('days_with_data', 0)} days)"
    )
    queryable = (
        sync["state"] == "idle"
        and through is not None
        and freshness.get("data_through") == through
        and freshness.get("state") == "idle"
    )
    return text, queryable


def wait_for_backfill(demo: Demo, watched: Sequence[Connected], started: float) -> float:
    """Show progress until every watched integration is idle and its data is queryable."""
    heading("Backfilling the past 30 days")
    deadline = time.monotonic() + BACKFILL_TIMEOUT_S
    last_status = ""
    while time.monotonic() < deadline:
        summary = demo.summary(demo.admin_token)
        states = [_progress(demo, summary, w) for w in watched]
        status = "  |  ".join(text for text, _ in states)
        if status != last_status:
            say(f"  {time.monotonic() - started:5.1f}s  {status}")
            last_status = status
        if all(queryable for _, queryable in states):
            return time.monotonic() - started
        time.sleep(0.2)
    raise TimeoutError(f"the backfill did not finish within {BACKFILL_TIMEOUT_S:.0f} s")


def _cell(point: dict[str, Any], key: str) -> object:
    return "suppressed" if point.get("suppressed") else point[key]


def _daily_rows(
    entries: Sequence[dict[str, Any]], *, with_spend: bool, last: int | None = None
) -> tuple[list[str], list[tuple[object, ...]], str]:
    """One row per day: each provider's DAU (with a trend bar), requests and (admins) spend."""
    headers = ["day"]
    align = "l"
    columns: list[list[object]] = []
    for entry in entries:
        name = LABELS[entry["provider"]]
        requests = {p["date"]: p for p in entry["requests"]}
        spend = {p["date"]: p for p in entry.get("spend", {}).get("daily", [])}
        peak = max((p["active_users"] or 0 for p in entry["dau"]), default=0)
        through = entry["freshness"]["data_through"] or ""
        dau: list[object] = []
        trend: list[object] = []
        reqs: list[object] = []
        cents: list[object] = []
        for point in entry["dau"]:
            dau.append(_cell(point, "active_users"))
            trend.append(bar(point["active_users"], peak, width=12))
            reqs.append(_cell(requests[point["date"]], "requests"))
            day_spend = spend.get(point["date"])
            pending = "*" if point["date"] > through else " "
            cents.append(dollars(day_spend and day_spend["cents"]) + pending)
        headers += [f"{name} DAU", "trend", "requests"]
        align += "rlr"
        columns += [dau, trend, reqs]
        if with_spend:
            headers.append("spend")
            align += "r"
            columns.append(cents)
    days = [p["date"] for p in entries[0]["dau"]]
    rows = [(day, *(column[i] for column in columns)) for i, day in enumerate(days)]
    return headers, rows[-last:] if last else rows, align


def print_admin_view(demo: Demo, connected: Sequence[Connected]) -> list[dict[str, Any]]:
    summary = demo.summary(demo.admin_token)
    entries = [_require_entry(summary, c.integration_id) for c in connected]
    heading(
        f"AI Analytics as an admin sees it ({summary['range']['start']} to {summary['range']['end']})"
    )
    headers, rows, align = _daily_rows(entries, with_spend=True)
    say(table(headers, rows, align))
    say(
        "* after data_through: not final yet (Copilot's spend there is the seats' cost, plus "
        "premium requests as GitHub bills them)"
    )
    say()
    tops = [entry["models"][:8] for entry in entries]
    model_rows = []
    for i in range(max(len(t) for t in tops)):
        row: list[object] = []
        for top in tops:
            m = top[i] if i < len(top) else None
            row += [m["model"], m["requests"], f"{m['share'] * 100:.1f}%"] if m else ["", "", ""]
        model_rows.append(tuple(row))
    model_headers = [
        h for e in entries for h in (f"{LABELS[e['provider']]} models", "requests", "share")
    ]
    say(table(model_headers, model_rows, "lrr" * len(entries)))
    say()
    facts: list[tuple[str, ...]] = [
        ("requests in range", *(f"{sum(p['requests'] for p in e['requests']):,}" for e in entries)),
        ("spend in range", *(dollars(e["spend"]["total_cents"]) for e in entries)),
        ("current cycle", *(_cycle(e) for e in entries)),
        ("seats", *(_seats(e["spend"].get("seats")) for e in entries)),
        (
            "data through",
            *(
                f"{e['freshness']['data_through']} "
                f"({e['freshness']['days_with_data']}/{e['freshness']['days_in_range']} days "
                "with data)"
                for e in entries
            ),
        ),
    ]
    say(table(["", *(LABELS[e["provider"]] for e in entries)], facts))
    say()
    say(
        "Freshness: Cursor's last 3 days can still change, so data_through stays 3 days back. "
        "GitHub publishes a day's\nCopilot report about two full days after the day ends, so "
        "Copilot's data_through is also about 3 days\nback; the newer days fill in as GitHub "
        "publishes them."
    )
    for c in connected:
        say()
        say(_members_table(c.provider, demo.members(c.provider)[:8]))
    return entries


def _cycle(entry: dict[str, Any]) -> str:
    cycle = entry["spend"].get("cycle") or {}
    text = f"{dollars(cycle.get('total_cents'))} since {cycle.get('start', '-')}"
    return text + " (calendar month)" if entry["provider"] == "github_copilot" else text


def _seats(seats: dict[str, Any] | None) -> str:
    if seats is None:
        return "-"
    return (
        f"{seats['total']} seats, {seats['never_used']} never used, "
        f"{seats['active_30d']} active in 30 days, {dollars(seats['monthly_cents'])}/month"
    )


def _members_table(provider: Provider, members: Sequence[dict[str, Any]]) -> str:
    who = "email" if provider == "cursor" else "login"
    rows = [
        (
            m[who] or "-",
            m["active_days"],
            m["requests"],
            m["top_model"] or "-",
            dollars(m["spend_cents"]),
        )
        for m in members
    ]
    return table(
        (
            f"top {LABELS[provider]} members ({who})",
            "active days",
            "requests",
            "top model",
            "spend",
        ),
        rows,
        "lrrlr",
    )


def print_insights(demo: Demo) -> None:
    """Cost per active user, idle seats (who, and what they cost), activation and anomalies."""
    heading("Insights (admins): what each active user costs, and the seats paid for and idle")
    body = demo.insights()
    rows = []
    for p in body["providers"]:
        activation = p["seat_activation"]
        median = activation["median_days"]
        rows.append(
            (
                f"{LABELS[p['provider']]} ({p['integration_id'][:8]})",
                p["active_members"],
                dollars(p["spend_cents"]),
                dollars(p["cost_per_active_user"]),
                f"{p['idle_seats']['count']} ({dollars(p['idle_seats']['monthly_cents'])}/month)",
                "-" if median is None else f"{median} days",
                activation["never_used"]["count"],
                ", ".join(a["date"] for a in p["spend_anomalies"]["days"]) or "none",
            )
        )
    say(
        table(
            (
                "provider",
                "active users",
                "spend (30 d)",
                "per active user",
                "idle seats",
                "median to first use",
                "never used",
                "spend anomalies",
            ),
            rows,
            "lrrrrrrl",
        )
    )
    for p in body["providers"]:
        idle = p["idle_seats"]["seats"]
        if not idle:
            continue
        say()
        say(
            table(
                (
                    f"idle {LABELS[p['provider']]} seats ({p['integration_id'][:8]})",
                    "last active",
                    "seat since",
                ),
                [
                    (
                        s["email"] or s["login"] or "-",
                        s["last_active"] or "never",
                        s["seat_since"] or "-",
                    )
                    for s in idle[:8]
                ],
                "lll",
            )
        )
        if len(idle) > 8:
            say(f"... and {len(idle) - 8} more")


def print_member_view(demo: Demo, connected: Sequence[Connected]) -> None:
    summary = demo.summary(demo.member_token)
    entries = [_require_entry(summary, c.integration_id) for c in connected]
    heading("The same page as a member sees it (no per-member rows, no spend, small days hidden)")
    headers, rows, align = _daily_rows(entries, with_spend=False, last=10)
    say(table(headers, rows, align))
    for entry in entries:
        name = LABELS[entry["provider"]]
        say(
            f"{name}: spend visible to members: {'yes' if 'spend' in entry else 'no'}; "
            f"top models: {', '.join(m['model'] for m in entry['models'][:3])}"
        )


def _cursor_checks(entry: dict[str, Any], truth: dict[str, Any]) -> dict[str, bool]:
    days = {d["date"]: d for d in truth["days"]}
    return {
        "daily active users": all(
            d["active_users"] == days[d["date"]]["active_users"] for d in entry["dau"]
        ),
        "requests per day": all(
            d["requests"] == days[d["date"]]["requests"] for d in entry["requests"]
        ),
        "spend per day (to the cent)": all(
            Decimal(str(d["cents"])) == Decimal(days[d["date"]]["charged_cents"])
            for d in entry["spend"]["daily"]
        ),
    }


def _copilot_checks(entry: dict[str, Any], truth: dict[str, Any]) -> dict[str, bool]:
    days: dict[str, Any] = truth["days"]
    models: Counter[str] = Counter()
    for day in days.values():
        models.update(day["models"])
    seats = entry["spend"].get("seats") or {}
    return {
        "daily active users": all(
            d["active_users"] == days[d["date"]]["dau"] for d in entry["dau"]
        ),
        "requests per day": all(
            d["requests"] == days[d["date"]]["requests"] for d in entry["requests"]
        ),
        "model mix": {m["model"]: m["requests"] for m in entry["models"]}
        == {m: n for m, n in models.items() if n},
        "spend per day (premium requests + seats)": all(
            Decimal(str(d["cents"]))
            == Decimal(days[d["date"]]["premium_cents"]) + Decimal(days[d["date"]]["seat_cents"])
            for d in entry["spend"]["daily"]
        ),
        "seats block": {**seats, "monthly_cents": Decimal(str(seats.get("monthly_cents")))}
        == {**truth["seats"], "monthly_cents": Decimal(truth["seats"]["monthly_cents"])},
        "data_through (last published day)": entry["freshness"]["data_through"]
        == truth["data_through"],
    }


def check_against_truth(demo: Demo, connected: Connected, entry: dict[str, Any]) -> bool:
    """Every day through ``data_through`` (Copilot: every published day) against the truth."""
    start = date.fromisoformat(entry["dau"][0]["date"])
    through = entry["freshness"]["data_through"]
    final = {
        **entry,
        "dau": [p for p in entry["dau"] if p["date"] <= through],
        "requests": [p for p in entry["requests"] if p["date"] <= through],
        "spend": {
            **entry["spend"],
            "daily": [p for p in entry["spend"]["daily"] if p["date"] <= through],
        },
    }
    if connected.provider == "cursor":
        truth = demo.truth(connected.account, start, date.fromisoformat(through))
        checks = _cursor_checks(final, truth)
    else:
        truth = demo.truth(connected.account, start, datetime.now(UTC).date())
        checks = _copilot_checks(final, truth)
    heading(f"{connected.label} checked against the sandbox's ground truth ({start} to {through})")
    for what, ok in checks.items():
        say(f"{what + ':':<42} {'exact' if ok else 'MISMATCH'}")
    return all(checks.values())


def print_people_across_tools(demo: Demo, pairs: int = 30) -> bool:
    """Map people across the tools, print the cross-tool table, check it against ``/members``.

    The demo plays the platform, which knows who is who: it pairs the first ``pairs`` Cursor
    members (by email) with the first ``pairs`` Copilot seat holders (by login), PUTs that
    mapping, and prints the top rows of ``/people``. Each person's per-tool figures must be
    exactly the ones ``/members`` gives for that email or login.
    """
    base = f"{demo.stack.metrics.base_url}/v1/orgs/{ORG_ID}/ai-analytics"
    headers = {"Authorization": f"Bearer {demo.admin_token}"}
    members: list[dict[str, Any]] = demo._json(
        demo.http.get(f"{base}/members", headers=headers, params={"days": 30})
    )["members"]
    emails = sorted({m["email"].lower() for m in members if m["provider"] == "cursor"})
    logins = sorted({m["login"].lower() for m in members if m["provider"] == "github_copilot"})
    mapping = [
        {"email": e, "github_login": g}
        for e, g in zip(emails[:pairs], logins[:pairs], strict=False)
    ]
    stored = demo._json(
        demo.http.put(f"{base}/identities", headers=headers, json={"identities": mapping})
    )
    people: list[dict[str, Any]] = []
    params: dict[str, Any] = {"days": 30, "limit": 500}
    while True:
        page = demo._json(demo.http.get(f"{base}/people", headers=headers, params=params))
        people += page["people"]
        if page["next"] is None:
            break
        params["cursor"] = page["next"]
    heading(
        f"People across tools ({stored['identities']} emails mapped to GitHub logins; "
        f"{len(people)} people, top 12 by spend)"
    )
    say(
        "(The sandbox's two accounts are different people: the demo pairs Cursor emails and "
        "Copilot logins in\nalphabetical order, where a platform would PUT the pairs its "
        "directory knows.)"
    )
    rows = [
        (
            p["email"] or "-",
            p["github_login"] or "-",
            dollars(p["cursor"]["spend_cents"]) if p["cursor"] else "-",
            dollars(p["github_copilot"]["spend_cents"]) if p["github_copilot"] else "-",
            dollars(p["total_spend_cents"]),
        )
        for p in people[:12]
    ]
    say(table(("email", "GitHub login", "Cursor", "Copilot", "total"), rows, "llrrr"))
    expected: dict[tuple[str, str], list[Any]] = {}
    for m in members:
        key = (
            ("cursor", m["email"].lower())
            if m["provider"] == "cursor"
            else ("github_copilot", m["login"].lower())
        )
        sums = expected.setdefault(key, [0, 0, Decimal(0)])
        sums[0] += m["active_days"]
        sums[1] += m["requests"]
        sums[2] += Decimal(str(m["spend_cents"]))
    got: dict[tuple[str, str], list[Any]] = {}
    for p in people:
        for provider, ident in (("cursor", p["email"]), ("github_copilot", p["github_login"])):
            figures = p[provider]
            if figures is not None:
                got[provider, ident] = [
                    figures["active_days"],
                    figures["requests"],
                    Decimal(str(figures["spend_cents"])),
                ]
    both = sum(1 for p in people if p["cursor"] and p["github_copilot"])
    exact = got == expected and both == len(mapping)
    say(
        f"{'each person equals /members, ' + str(both) + ' people in both tools:':<42} "
        f"{'exact' if exact else 'MISMATCH'}"
    )
    say(f'curl -s -H "Authorization: Bearer $ADMIN_TOKEN" "{base}/people?days=30&format=csv"')
    return exact


def print_degraded(demo: Demo, degraded: Sequence[Connected]) -> None:
    heading("Degraded integrations, with their reason")
    for connected in degraded:
        integration = demo.integration(connected.integration_id)
        error = integration["sync"].get("last_error") or {}
        say(
            f"{connected.label} ({integration['external_id']}): status {integration['status']}, "
            f"plan {integration['plan']}"
        )
        say(f"  {error.get('code', '-')}: {error.get('message', '-')}")


def print_curl(demo: Demo, integration_id: str) -> None:
    heading("Try the APIs (the demo token is valid for 12 hours)")
    c, m = demo.stack.connector.base_url, demo.stack.metrics.base_url
    summary = f"{m}/v1/orgs/{ORG_ID}/ai-analytics/summary?days=30"
    say(f"export ADMIN_TOKEN={demo.admin_token}")
    say(f"export MEMBER_TOKEN={demo.member_token}")
    say(f"dashboard (open in a browser): {m}/dashboard/?org={ORG_ID}#token={demo.admin_token}")
    say(f'curl -s -H "Authorization: Bearer $ADMIN_TOKEN" {c}/v1/orgs/{ORG_ID}/integrations')
    say(f'curl -s -H "Authorization: Bearer $ADMIN_TOKEN" "{summary}"')
    say(f'curl -s -H "Authorization: Bearer $ADMIN_TOKEN" "{summary}&provider=github_copilot"')
    say(f'curl -s -H "Authorization: Bearer $MEMBER_TOKEN" "{summary}"')
    say(
        f'curl -s -H "Authorization: Bearer $ADMIN_TOKEN" "{m}/v1/orgs/{ORG_ID}/ai-analytics/members?days=30"'
    )
    say(
        f'curl -s -H "Authorization: Bearer $ADMIN_TOKEN" "{m}/v1/orgs/{ORG_ID}/ai-analytics/insights?days=30"'
    )
    say(
        f'curl -s -X POST -H "Authorization: Bearer $ADMIN_TOKEN" -H "Content-Type: application/json" '
        f"-d '{{\"days\": 2}}' {c}/v1/orgs/{ORG_ID}/integrations/{integration_id}/sync"
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
            heading("Connecting Cursor and GitHub Copilot for the demo org")
            started = time.monotonic()
            accounts: list[DemoTeam | DemoGithubOrg] = [
                demo.create_team("business", members=50, seed=7),
                demo.create_github_org("business", seats=40, seed=12),
                demo.create_team("team", members=8, seed=11),
                demo.create_github_org("business", seats=10, seed=13, metrics_policy=False),
            ]
            connected: list[Connected] = []
            for account in accounts:
                link, integration = demo.connect(account)
                connected.append(link)
                say(
                    f"{link.label:<15} {integration['external_id']:<22} integration "
                    f"{integration['id']}  plan={integration['plan']:<10} "
                    f"status={integration['status']}"
                )
            synced, degraded = connected[:2], connected[2:]
            elapsed = wait_for_backfill(demo, synced, started)
            say(f"\nconnect to data queryable: {elapsed:.1f} s")
            entries = print_admin_view(demo, synced)
            print_insights(demo)
            print_member_view(demo, synced)
            # Every check prints its result, so none may be skipped by a short circuit.
            results = [
                check_against_truth(demo, link, entry)
                for link, entry in zip(synced, entries, strict=True)
            ]
            results.append(print_people_across_tools(demo))
            exact = all(results)
            print_degraded(demo, degraded)
            print_curl(demo, synced[0].integration_id)
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
