"""What differs between providers, behind one small interface: a :class:`DayReader` turns a window
of days into events; the job runner does everything else (runs, chunks, complete days, repairs,
sequences, statuses, failure classes) the same way for every provider.

- :class:`CursorReader`: usage events and daily usage of the chunk within the job's budget
  (:mod:`koalr_syncer.fetch`); every day read is complete; the member list once per run; the
  cycle's spend when the run ends. ``data_through`` is the newest final day the run read.
- :class:`CopilotReader`: one ``users-1-day`` report and the premium-request spend per day;
  only days whose report GitHub published are complete (the others are read again by the next
  scheduled syncs); the seats when the run ends. ``data_through`` is the newest published day.
  A report refused by the metrics policy leaves seats and spend to sync: the chunk reports
  the refusal and the runner degrades the integration with its code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Protocol
from uuid import UUID

import httpx

from koalr_contracts import AnyEvent, ErrorCode, Plan, Provider
from koalr_providers import cursor, github
from koalr_providers.errors import ProviderError
from koalr_providers.pacing import HeaderPacer, RateLimiter
from koalr_syncer.copilot import copilot_usage_records, premium_day_spend, seats_snapshot
from koalr_syncer.fetch import read_daily_usage, read_spend, read_usage_events
from koalr_syncer.model import Integration, Run
from koalr_syncer.normalise import Origin, cycle_spend_snapshot, usage_records
from koalr_syncer.repository import MemberRepository
from koalr_syncer.settings import SyncerSettings, newest_final_day

OutOfTime = Callable[[], bool]


@dataclass(frozen=True, slots=True)
class ChunkRead:
    """What a reader read of a chunk ``[first, last]``."""

    events: list[AnyEvent]
    """The usage records (and day spend) of the days read, published together."""
    read_from: date
    """The oldest day read: the run continues with the day before."""
    complete_days: list[date]
    """The days read whole; the others of ``[read_from, last]`` stay incomplete."""
    refused: ProviderError | None = None
    """Data the provider refused while the rest was read (the integration is degraded)."""
    lifted: ErrorCode | None = None
    """A degradation the chunk showed is over (the refused data answered again)."""
    log_fields: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FinishedRun:
    """What decides the ``data_through`` of a run that read all its days."""

    run: Run
    today: date
    newest_complete: date | None
    """The integration's newest complete day."""


class DayReader(Protocol):
    """Reads one integration's provider for the job runner."""

    async def sync_members(self) -> None:
        """Refresh the provider's member list, once per run."""
        ...

    async def read(
        self, origin: Origin, first: date, last: date, now: datetime, out_of_time: OutOfTime
    ) -> ChunkRead:
        """Read ``[first, last]`` newest first; at least the newest day, more while in time."""
        ...

    async def finish(self, origin: Origin, now: datetime) -> AnyEvent:
        """The snapshot published when a run has read all its days."""
        ...

    def data_through(self, finished: FinishedRun) -> date | None:
        """The ``data_through`` a finished run establishes (it never moves back)."""
        ...


class CursorReader:
    def __init__(
        self,
        client: cursor.CursorClient,
        *,
        integration_id: UUID,
        members: MemberRepository,
        page_budget: int,
        incremental_days: int,
    ) -> None:
        self._client = client
        self._integration_id = integration_id
        self._members = members
        self._page_budget = page_budget
        self._incremental_days = incremental_days

    async def sync_members(self) -> None:
        await self._members.upsert(self._integration_id, await self._client.members())

    async def read(
        self, origin: Origin, first: date, last: date, now: datetime, out_of_time: OutOfTime
    ) -> ChunkRead:
        events = await read_usage_events(
            self._client,
            first,
            last,
            now_ms=int(now.timestamp() * 1000),
            page_budget=self._page_budget,
            out_of_time=out_of_time,
        )
        complete_from = events.complete_from
        rows, _ = await read_daily_usage(self._client, complete_from, last)
        days = [complete_from + timedelta(days=i) for i in range((last - complete_from).days + 1)]
        directory = await self._members.directory(self._integration_id)
        records = usage_records(
            origin, days=days, rows=rows, tally=events.tally, directory=directory, fetched_at=now
        )
        return ChunkRead(
            events=list(records),
            read_from=complete_from,
            complete_days=days,
            log_fields={
                "events": events.tally.events,
                "event_pages": events.pages,
                "events_without_email": events.tally.without_email,
            },
        )

    async def finish(self, origin: Origin, now: datetime) -> AnyEvent:
        rows, cycle_start = await read_spend(self._client)
        return cycle_spend_snapshot(origin, rows, cycle_start, now)

    def data_through(self, finished: FinishedRun) -> date | None:
        return final_day_read(finished.run, finished.today, self._incremental_days)


class CopilotReader:
    def __init__(self, client: github.GitHubClient, *, plan: Plan) -> None:
        self._client = client
        self._plan = plan

    async def sync_members(self) -> None:
        """Copilot's members are its seats, read when the run ends."""

    async def read(
        self, origin: Origin, first: date, last: date, now: datetime, out_of_time: OutOfTime
    ) -> ChunkRead:
        events: list[AnyEvent] = []
        complete: list[date] = []
        refused: github.MetricsDisabledError | None = None
        answered = False
        rows_read = 0
        day = last
        while True:
            if refused is None:
                try:
                    rows = await self._client.users_day(day)
                except github.MetricsDisabledError as exc:
                    refused, rows = exc, None
                else:
                    answered = True
                if rows is not None:
                    events.extend(copilot_usage_records(origin, day, rows, now))
                    complete.append(day)
                    rows_read += len(rows)
            cents = await self._client.premium_request_cents(day)
            events.append(premium_day_spend(origin, day, cents, now))
            if day <= first or out_of_time():
                break
            day -= timedelta(days=1)
        return ChunkRead(
            events=events,
            read_from=day,
            complete_days=complete,
            refused=refused,
            lifted="metrics_disabled" if answered else None,
            log_fields={"report_rows": rows_read, "published_days": len(complete)},
        )

    async def finish(self, origin: Origin, now: datetime) -> AnyEvent:
        return seats_snapshot(origin, self._plan, await self._client.seats(), now)

    def data_through(self, finished: FinishedRun) -> date | None:
        """The newest day whose report GitHub published."""
        return finished.newest_complete


def final_day_read(run: Run, today: date, incremental_days: int) -> date | None:
    """The newest day of the run that can no longer change, if the run read it.

    Scheduled syncs re-read the last ``incremental_days`` days, today included; a day older than
    that is final: later data for it is never read again. So ``data_through`` never passes
    ``today - incremental_days``; a run whose window reaches the oldest day still re-read (every
    scheduled run) moves it there, since the day before was re-read for the last time then.
    """
    final = newest_final_day(today, incremental_days)
    if run.window_start > final + timedelta(days=1):
        return None
    return min(run.window_end, final)


class Readers:
    """Opens the reader of an integration's provider with its credential, over the process's
    HTTP clients and pacers (Cursor: per team and endpoint; GitHub: per token, by its headers)."""

    def __init__(
        self,
        *,
        settings: SyncerSettings,
        http: Mapping[Provider, httpx.AsyncClient],
        members: MemberRepository,
    ) -> None:
        self._settings = settings
        self._http = http
        self._members = members
        self._cursor_limiter = RateLimiter(settings.rate_limits, settings.rate_window_s)
        self._github_pacer = HeaderPacer()
        self._policy = cursor.RetryPolicy(
            max_retries=settings.http_max_retries,
            rate_limit_retries=settings.http_rate_limit_retries,
            base_s=settings.retry_base_s,
            max_s=settings.retry_max_s,
        )
        self._github_policy = github.RetryPolicy(
            max_retries=settings.http_max_retries,
            rate_limit_retries=settings.http_rate_limit_retries,
            base_s=settings.retry_base_s,
            max_s=settings.retry_max_s,
            throttle_base_s=settings.github_throttle_base_s,
        )

    def open(self, integration: Integration, credential: str) -> DayReader:
        if integration.provider == "github_copilot":
            client = github.GitHubClient(
                self._http["github_copilot"],
                credential,
                org=integration.external_id,
                limiter=self._github_pacer,
                policy=self._github_policy,
            )
            return CopilotReader(client, plan=integration.plan)
        return CursorReader(
            cursor.CursorClient(
                self._http["cursor"],
                credential,
                team=integration.external_id,
                limiter=self._cursor_limiter,
                policy=self._policy,
            ),
            integration_id=integration.integration_id,
            members=self._members,
            page_budget=self._settings.job_page_budget,
            incremental_days=self._settings.incremental_days,
        )
