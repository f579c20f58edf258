"""``make chaos``: several orgs backfill Cursor and GitHub Copilot while everything breaks.

On its own Kafka broker and PostgreSQL cluster (``private_infra``: the machine's usual pair is
never touched), it starts the sandbox, the connector, two syncer workers and metrics, connects a
Cursor team and a Copilot organisation for each of several orgs, and while they backfill it
follows a seeded schedule (``chaos_faults``): every service process is SIGKILLed and restarted,
Kafka is SIGKILLed and restarted, PostgreSQL is stopped in immediate mode and restarted, the
providers answer 5xx, stall past the client's read timeout and throttle with 429s; all the while
1% garbage goes onto every consumed topic and real messages are delivered again
(``chaos_kafka``). Then the faults stop and it checks, until they hold or time runs out:

- every day's DAU, requests, model mix and spend of every org and provider equal the sandbox's
  truth to the cent (``truth``, the same comparison the end-to-end tests use);
- every integration is idle with ``data_through`` where it should be, in the connector and in
  metrics alike;
- every garbage message is on the dead-letter topic exactly once per consuming group, and no
  real message is.

It prints the faults injected and the checks passed, and exits non-zero when a check fails.

    python -m koalr_devstack.chaos --seed 7 --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import httpx

from koalr_devstack import truth as truth_checks
from koalr_devstack.chaos_faults import Fault, schedule
from koalr_devstack.chaos_kafka import CONSUMED_BY, Deliveries, LetterCheck, check_dead_letters
from koalr_devstack.chaos_report import Outcome, Result, Tally, summarize
from koalr_devstack.private_infra import PrivateInfra, reap_stale_runs
from koalr_devstack.processes import ServiceProcess
from koalr_devstack.stack import Stack, StackConfig
from koalr_devstack.tokens import make_token

INCREMENTAL_DAYS = 3
"""The syncer's ``SYNCER_INCREMENTAL_DAYS`` for the run: Cursor's ``data_through`` is today minus
this many days once a sync is complete."""

CLUSTER_PREFIX = "koalr_chaos_"
"""PostgreSQL clusters of chaos runs are named ``koalr_chaos_<seed>_<pid>``."""

CHAOS_ENV = {
    "LOG_LEVEL": "INFO",
    "SYNCER_INCREMENTAL_DAYS": str(INCREMENTAL_DAYS),
    # Time scales shortened so minutes of chaos fit the run; the behaviour is the same.
    "SYNCER_SCHEDULER_POLL_S": "1",
    "SYNCER_HTTP_CONNECT_TIMEOUT_S": "3",
    "SYNCER_HTTP_READ_TIMEOUT_S": "3",
    "SYNCER_RETRY_MAX_S": "2",
    "SYNCER_RUN_RETRY_BASE_S": "2",
    "SYNCER_RUN_RETRY_MAX_S": "8",
    "SYNCER_RUN_MAX_ATTEMPTS": "40",
    "SYNCER_GITHUB_THROTTLE_BASE_S": "2",
    "SYNCER_CONSUMER_SESSION_TIMEOUT_MS": "6000",
    "SYNCER_CONSUMER_HEARTBEAT_INTERVAL_MS": "1000",
    "CONNECTOR_OUTBOX_RETRY_MAX_S": "2",
    "CONNECTOR_KAFKA_START_RETRY_MAX_S": "2",
    "METRICS_RETRY_MAX_BACKOFF_S": "1",
}

BASE_FAULTS: dict[str, Any] = {"fault_rate_5xx": 0.03, "fault_rate_stall": 0.01, "stall_s": 4.0}
"""Provider faults through the whole chaos phase; a stall outlasts the 3 s read timeout."""
HEALED = {"fault_rate_5xx": 0.0, "fault_rate_stall": 0.0}
CURSOR_LIMITS = {"rate_limits": {"default": 20, "usage_events": 60, "analytics": 100}}
CURSOR_SQUEEZE = {"rate_limits": {"default": 1, "usage_events": 2, "analytics": 2}}

Provider = Literal["cursor", "github_copilot"]


def say(text: str = "") -> None:
    print(text, flush=True)  # noqa: T201 - the run reports to its operator


def decimal_json(response: httpx.Response) -> Any:
    response.raise_for_status()
    return json.loads(response.content, parse_float=Decimal)


def today_utc() -> date:
    return datetime.now(UTC).date()


def end_of_yesterday_ms() -> int:
    """Sandbox visibility frozen here keeps the truth still while the clock moves."""
    midnight = datetime.combine(today_utc(), datetime.min.time(), tzinfo=UTC)
    return int(midnight.timestamp() * 1000) - 1


@dataclass(frozen=True)
class ChaosPlan:
    seed: int
    duration_s: float = 60.0
    orgs: int = 3
    settle_timeout_s: float = 240.0
    root: Path = field(default_factory=Path.cwd)


@dataclass
class Account:
    """One provider account in the sandbox, connected as one integration of one org."""

    org_id: str
    provider: Provider
    external_id: str
    secret: str
    integration_id: str = ""

    @property
    def name(self) -> str:
        return f"{self.org_id}/{'cursor' if self.provider == 'cursor' else 'copilot'}"

    def sandbox_path(self) -> str:
        if self.provider == "cursor":
            return f"/_sandbox/teams/{self.external_id}"
        return f"/_sandbox/github/orgs/{self.external_id}"


class ChaosRun:
    def __init__(self, plan: ChaosPlan, infra: PrivateInfra, stack: Stack) -> None:
        self.plan = plan
        self.infra = infra
        self.stack = stack
        self.rng = random.Random(plan.seed)  # noqa: S311 - a seeded schedule, not a secret
        self.secret = stack.config.jwt_secret
        self.http = httpx.AsyncClient(timeout=30.0)
        self.accounts: list[Account] = []
        self.tally = Tally()
        self.deliveries = Deliveries(
            infra.kafka_bootstrap_servers,
            stack.config.topic_namespace,
            plan.seed,
            random.Random(plan.seed + 1),  # noqa: S311 - seeded garbage, not a secret
        )
        self.held: set[str] = set()
        self.infra_lock = asyncio.Lock()
        self.running = True
        """Garbage and copies are produced while this holds."""
        self.supervising = True

    # --- set-up -------------------------------------------------------------------------------
    @property
    def sandbox(self) -> str:
        if self.stack.sandbox is None:
            raise RuntimeError("the chaos run needs the sandbox")
        return self.stack.sandbox.base_url

    def admin_headers(self, org_id: str) -> dict[str, str]:
        token = make_token(self.secret, org_id=org_id, role="admin", sub="chaos-admin")
        return {"Authorization": f"Bearer {token}"}

    async def create_accounts(self) -> None:
        for i in range(self.plan.orgs):
            org_id = f"chaos-org-{i + 1}"
            team = decimal_json(
                await self.http.post(
                    f"{self.sandbox}/_sandbox/teams",
                    json={
                        "plan": self.rng.choice(["business", "enterprise"]),
                        "members": self.rng.randint(6, 24),
                        "days": 45,
                        "seed": self.rng.randrange(1_000_000),
                        "visibility_delay_s": 0,
                        "visible_until_ms": end_of_yesterday_ms(),
                    },
                )
            )
            self.accounts.append(Account(org_id, "cursor", team["team_id"], team["api_key"]))
            org = decimal_json(
                await self.http.post(
                    f"{self.sandbox}/_sandbox/github/orgs",
                    json={
                        "plan": "business",
                        "seats": self.rng.randint(5, 30),
                        "days": 45,
                        "seed": self.rng.randrange(1_000_000),
                        "visible_until_ms": end_of_yesterday_ms(),
                    },
                )
            )
            self.accounts.append(Account(org_id, "github_copilot", org["org"], org["token"]))

    async def connect_all(self) -> None:
        for account in self.accounts:
            body = (
                {"provider": "cursor", "api_key": account.secret, "team_id": account.external_id}
                if account.provider == "cursor"
                else {
                    "provider": "github_copilot",
                    "token": account.secret,
                    "github_org": account.external_id,
                }
            )
            response = await self.http.post(
                f"{self.stack.connector.base_url}/v1/orgs/{account.org_id}/integrations",
                headers=self.admin_headers(account.org_id),
                json=body,
            )
            if response.status_code != 201:
                raise RuntimeError(
                    f"connect {account.name}: {response.status_code} {response.text}"
                )
            account.integration_id = response.json()["id"]

    async def configure(self, account: Account, changes: dict[str, Any]) -> None:
        response = await self.http.patch(f"{self.sandbox}{account.sandbox_path()}", json=changes)
        response.raise_for_status()

    # --- faults -------------------------------------------------------------------------------
    @property
    def services(self) -> list[ServiceProcess]:
        return [self.stack.connector, *self.stack.syncers, self.stack.metrics]

    async def supervise(self) -> None:
        """Restart every service process that is down and not held down (as an orchestrator
        would); a process that exits on its own is reported."""
        while self.supervising:
            for process in self.services:
                if process.running or process.name in self.held:
                    continue
                code = process.process.returncode if process.process else None
                if code is not None and code != -signal.SIGKILL:
                    self.tally.unexpected_exits[f"{process.name} (exit code {code})"] += 1
                with contextlib.suppress(Exception):
                    process.start()
            await asyncio.sleep(0.5)

    async def inject(self, fault: Fault) -> None:
        try:
            await self._inject(fault)
            self.tally.faults[fault.kind] += 1
        except Exception as exc:  # noqa: BLE001 - a fault that could not be injected is reported
            self.tally.fault_errors.append(f"{fault.describe()}: {type(exc).__name__}: {exc}")

    async def _inject(self, fault: Fault) -> None:
        if fault.kind == "kill_service":
            process = next(p for p in self.services if p.name == fault.target)
            # Garbage just before the kill: the process may die while it dead-letters.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self.deliveries.burst(CONSUMED_BY[process.name.split("-")[0]], 3), timeout=10
                )
            await asyncio.sleep(self.rng.uniform(0.0, 0.4))
            self.held.add(process.name)
            try:
                process.kill()
                await asyncio.sleep(fault.down_s)
            finally:
                self.held.discard(process.name)
            self.tally.restarts[process.name] += 1
            return
        if fault.kind in ("restart_kafka", "restart_postgres"):
            async with self.infra_lock:
                down_at = time.monotonic()
                if fault.kind == "restart_kafka":
                    await asyncio.to_thread(self.infra.kill_kafka)
                    await asyncio.sleep(fault.down_s)
                    await asyncio.to_thread(self.infra.start_kafka)
                else:
                    await asyncio.to_thread(self.infra.crash_postgres)
                    await asyncio.sleep(fault.down_s)
                    await asyncio.to_thread(self.infra.start_postgres)
                self.tally.outages_s[fault.target].append(time.monotonic() - down_at)
            return
        account = self.accounts[int(fault.target)]
        storm: dict[str, Any]
        calm: dict[str, Any]
        if fault.kind == "provider_5xx":
            storm, calm = {"fault_rate_5xx": 0.5}, {"fault_rate_5xx": BASE_FAULTS["fault_rate_5xx"]}
        elif fault.kind == "provider_stall":
            storm = {"fault_rate_stall": 0.4}
            calm = {"fault_rate_stall": BASE_FAULTS["fault_rate_stall"]}
        elif account.provider == "cursor":
            storm = {**CURSOR_SQUEEZE, "rate_window_s": 4, "retry_after_ratio": 1.0}
            calm = {**CURSOR_LIMITS, "rate_window_s": 60, "retry_after_ratio": 0.5}
        else:
            # GitHub's secondary limit: a 429 or 403 with retry-after (up to a minute).
            storm, calm = {"secondary_limit_per_minute": 4}, {"secondary_limit_per_minute": 900}
        await self.configure(account, storm)
        try:
            # A resync now, so the storm meets calls to the provider; a throttle storm lasts
            # long enough for the job to reach a worker and call twice within the window.
            await self.resync(account, days=7)
            await asyncio.sleep(
                max(fault.down_s, 12.0) if fault.kind == "provider_429" else fault.down_s
            )
        finally:
            await self.configure(account, calm)

    async def deliver(self) -> None:
        """Garbage up to 1% of every consumed topic, and copies of real messages, while running."""
        while self.running:
            for action in (self.deliveries.top_up_garbage, lambda: self.deliveries.duplicate(2)):
                with contextlib.suppress(Exception):  # Kafka may be down right now
                    await asyncio.wait_for(action(), timeout=15)
            await asyncio.sleep(2.0)

    async def resync(self, account: Account, days: int) -> None:
        """Ask the connector for a manual resync (it may be down right now: then nothing)."""
        with contextlib.suppress(httpx.HTTPError):
            response = await self.http.post(
                f"{self.stack.connector.base_url}/v1/orgs/{account.org_id}/integrations/"
                f"{account.integration_id}/sync",
                headers=self.admin_headers(account.org_id),
                json={"days": days},
            )
            self.tally.resyncs[str(response.status_code)] += 1

    async def resync_now_and_then(self) -> None:
        """Manual resyncs of random accounts, so the workers have jobs in flight all through the
        faults (a repeated sync must change nothing)."""
        while self.running:
            await asyncio.sleep(self.rng.uniform(4.0, 10.0))
            await self.resync(self.rng.choice(self.accounts), self.rng.randint(3, 30))

    async def chaos(self, faults: list[Fault]) -> None:
        for account in self.accounts:
            await self.configure(account, BASE_FAULTS)
        started = time.monotonic()
        tasks = []
        for fault in faults:
            await asyncio.sleep(max(0.0, started + fault.at_s - time.monotonic()))
            say(f"  fault {fault.describe()}")
            tasks.append(asyncio.create_task(self.inject(fault)))
        await asyncio.sleep(max(0.0, started + self.plan.duration_s - time.monotonic()))
        await asyncio.gather(*tasks)

    # --- checks -------------------------------------------------------------------------------
    async def summary_entry(self, account: Account) -> dict[str, Any] | None:
        body = decimal_json(
            await self.http.get(
                f"{self.stack.metrics.base_url}/v1/orgs/{account.org_id}/ai-analytics/summary",
                headers=self.admin_headers(account.org_id),
                params={"days": 30},
            )
        )
        for entry in body["providers"]:
            if entry["integration_id"] == account.integration_id:
                return dict(entry)
        return None

    async def truth(self, account: Account, start: date, end: date) -> Any:
        return decimal_json(
            await self.http.get(
                f"{self.sandbox}{account.sandbox_path()}/truth",
                params={"start": start.isoformat(), "end": end.isoformat()},
            )
        )

    async def account_problems(self, account: Account) -> list[str]:
        """Why the account is not done yet (empty once it is synced and exact)."""
        integration = decimal_json(
            await self.http.get(
                f"{self.stack.connector.base_url}/v1/orgs/{account.org_id}/integrations/"
                f"{account.integration_id}",
                headers=self.admin_headers(account.org_id),
            )
        )
        entry = await self.summary_entry(account)
        if entry is None:
            return ["no summary entry"]
        today = today_utc()
        start = truth_checks.range_start(entry)
        if account.provider == "cursor":
            expected = (today - timedelta(days=INCREMENTAL_DAYS)).isoformat()
            differences = truth_checks.cursor_differences(
                entry, await self.truth(account, start, today)
            )
        else:
            month_start = today.replace(day=1)
            truth = await self.truth(account, start, today)
            expected = truth["data_through"]
            differences = truth_checks.copilot_differences(
                entry, truth, await self.truth(account, month_start, today), month_start
            )
        problems = []
        sync = integration["sync"]
        if (sync["state"], sync["data_through"]) != ("idle", expected):
            problems.append(
                f"connector: {sync['state']} through {sync['data_through']}, expected idle "
                f"through {expected} (last error: {sync.get('last_error')})"
            )
        freshness = entry["freshness"]
        if (freshness["state"], freshness["data_through"]) != ("idle", expected):
            problems.append(
                f"metrics: {freshness['state']} through {freshness['data_through']}, expected "
                f"idle through {expected}"
            )
        return problems + differences[:10]

    async def settle(self) -> tuple[dict[str, list[str]], LetterCheck | None, float]:
        """Heal the providers, top up the garbage once more, then wait until every check holds
        (or the settle time is up); returns the last problems and how long it took."""
        for account in self.accounts:
            await self.configure(account, HEALED)
        started = time.monotonic()
        deadline = started + self.plan.settle_timeout_s
        while True:
            try:
                await asyncio.wait_for(self.deliveries.top_up_garbage(), timeout=30)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1.0)
        problems: dict[str, list[str]] = {}
        letters: LetterCheck | None = None
        while True:
            problems = {}
            for account in self.accounts:
                try:
                    found = await self.account_problems(account)
                except (httpx.HTTPError, KeyError) as exc:
                    found = [f"not answering yet: {type(exc).__name__}: {exc}"]
                if found:
                    problems[account.name] = found
            if not problems:
                letters = await check_dead_letters(self.deliveries)
                if not letters.problems and not letters.unexpected:
                    break
            if time.monotonic() > deadline:
                if letters is None:
                    letters = await check_dead_letters(self.deliveries)
                break
            await asyncio.sleep(2.0)
        return problems, letters, time.monotonic() - started

    async def count_provider_answers(self) -> None:
        for account in self.accounts:
            since: int | None = 0
            while since is not None:
                body = decimal_json(
                    await self.http.get(
                        f"{self.sandbox}{account.sandbox_path()}/requests",
                        params={"since": since},
                    )
                )
                for request in body["requests"]:
                    status = int(request["status"])
                    if status == 429 or status >= 500:
                        self.tally.provider_answers[str(status)] += 1
                    elif status == 403 and request.get("retry_after") is not None:
                        self.tally.provider_answers["403 (secondary limit)"] += 1
                    self.tally.provider_answers["total"] += 1
                since = body.get("next") if body["requests"] else None


async def _run(plan: ChaosPlan, infra: PrivateInfra, stack: Stack) -> Result:
    run = ChaosRun(plan, infra, stack)
    try:
        await run.create_accounts()
        await run.connect_all()
        names = [p.name for p in run.services]
        faults = schedule(
            plan.seed, plan.duration_s, names, [str(i) for i in range(len(run.accounts))]
        )
        if plan.duration_s < 180:
            # GitHub's secondary limit asks for up to a minute's wait: only in the longer runs;
            # a shorter run throttles the same org's Cursor team (the account just before).
            faults = [
                f
                if not (
                    f.kind == "provider_429" and run.accounts[int(f.target)].provider != "cursor"
                )
                else Fault(f.at_s, "provider_429", str(int(f.target) - 1), f.down_s)
                for f in faults
            ]
        say(
            f"{len(run.accounts)} integrations connected; {len(faults)} faults over "
            f"{plan.duration_s:.0f} s:"
        )
        supervisor = asyncio.create_task(run.supervise())
        load = [asyncio.create_task(run.deliver()), asyncio.create_task(run.resync_now_and_then())]
        try:
            try:
                await run.chaos(faults)
            finally:
                run.running = False
                await asyncio.gather(*load)
            say("faults over; settling ...")
            problems, letters, settle_s = await run.settle()
        finally:
            run.supervising = False
            await supervisor
        await run.count_provider_answers()
        return summarize(
            Outcome(
                seed=plan.seed,
                tally=run.tally,
                garbage=run.deliveries.garbage_sent,
                copies=run.deliveries.copies_sent,
                accounts=[a.name for a in run.accounts],
                problems=problems,
                letters=letters,
                settle_s=settle_s,
            )
        )
    finally:
        await run.http.aclose()


def run_chaos(plan: ChaosPlan) -> Result:
    """One seeded run on its own Kafka and PostgreSQL; everything it started is stopped after."""
    # The harness's own clients meet the broker restarts too; their retries are not news.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    base = plan.root / ".infra" / "chaos"
    tag = f"{plan.seed}-{os.getpid()}"
    log_dir = base / "logs" / f"seed-{plan.seed}"
    shutil.rmtree(log_dir, ignore_errors=True)
    for stale in reap_stale_runs(base, CLUSTER_PREFIX):
        say(f"removed what an interrupted run left: {stale}")
    infra = PrivateInfra(
        root=plan.root,
        infra_dir=base / f"run-{tag}",
        jars_dir=base / "kafka-lib",
        cluster=f"{CLUSTER_PREFIX}{tag.replace('-', '_')}",
    )
    started = time.monotonic()
    say(
        f"seed {plan.seed}: private Kafka on {infra.kafka_bootstrap_servers}, PostgreSQL on port "
        f"{infra.pg_port} (cluster {infra.cluster}); logs in {log_dir}"
    )
    try:
        infra.start()
        config = StackConfig(
            kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
            database_url=infra.database_url,
            log_dir=log_dir,
            topic_namespace=f"chaos{plan.seed}",
            syncer_workers=2,
            extra_env=CHAOS_ENV,
        )
        with Stack(config) as stack:
            result = asyncio.run(_run(plan, infra, stack))
    finally:
        infra.destroy()
    result.lines.append(
        f"Run time: {time.monotonic() - started:.0f} s (start-up and clean-up included)"
    )
    for line in result.lines:
        say(line)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m koalr_devstack.chaos", description=__doc__)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of faults")
    parser.add_argument("--orgs", type=int, default=3, help="orgs, each with Cursor and Copilot")
    parser.add_argument("--settle-timeout", type=float, default=240.0)
    args = parser.parse_args(argv)
    plan = ChaosPlan(
        seed=args.seed,
        duration_s=args.duration,
        orgs=args.orgs,
        settle_timeout_s=args.settle_timeout,
    )
    try:
        return 0 if run_chaos(plan).ok else 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
