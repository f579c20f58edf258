"""Complete, exact reads of a window of days from Cursor, within a job's budget.

Usage events come newest first, 1,000 per page. Paging must not skip or repeat an event while the
provider's data moves: newer events become visible all the time, and each would push every later
page down by one. So the first page is asked with ``endDate = min(end of the window, now)``, and
every later page with ``endDate`` fixed at the newest event the first page returned: events that
become visible afterwards are newer still and stay out of the paged set. If the total still
changes between pages (late data inside the window), the read starts over; after
:data:`MAX_RESTARTS` restarts it fails with the retryable :class:`UsageKeptChangingError`: the
run is retried, and if it gives up, its unread days stay incomplete and the scheduler repairs them.

A job reads pages until its page or time budget is spent, then stops at a day boundary: days newer
than the oldest event seen are complete (events are ordered by time), the rest is left to the
continuation job. At least one day is always completed, so every job makes progress.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import ClassVar

from koalr_contracts import ErrorCode
from koalr_providers.cursor import CursorClient, ProviderError
from koalr_providers.cursor.shapes import (
    DAY_MS,
    DailyUsageRow,
    SpendRow,
    day_start_ms,
)
from koalr_syncer.normalise import EventTally

MAX_RESTARTS = 2


class UsageKeptChangingError(ProviderError):
    """The provider's usage events kept changing while they were paged; reading later works."""

    code: ClassVar[ErrorCode] = "provider_unavailable"
    retryable: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class EventsRead:
    tally: EventTally
    complete_from: date
    """The oldest day whose events were read completely (the read covers it through the end)."""
    pages: int


async def read_usage_events(
    client: CursorClient,
    first_day: date,
    last_day: date,
    *,
    now_ms: int,
    page_budget: int,
    out_of_time: Callable[[], bool],
) -> EventsRead:
    """Read the events of ``[first_day, last_day]`` newest first, within the budget."""
    start_ms = day_start_ms(first_day)
    end_ms = min(day_start_ms(last_day) + DAY_MS - 1, now_ms)
    pages = 0
    for _ in range(MAX_RESTARTS + 1):
        tally = EventTally()
        page = 1
        expected_total: int | None = None
        fixed_end = end_ms
        oldest: date | None = None
        while True:
            result = await client.usage_events(start_ms, fixed_end, page)
            pages += 1
            if page == 1:
                expected_total = result.total
                if result.events:
                    fixed_end = max(e.timestamp_ms for e in result.events)
            elif result.total is not None and result.total != expected_total:
                break  # the data moved under the pages: read again from the start
            tally.add_all(result.events)
            if result.events:
                seen = min(e.day for e in result.events)
                oldest = seen if oldest is None else min(oldest, seen)
            if not result.has_next or not result.events:
                return EventsRead(tally, first_day, pages)
            spent = page >= page_budget or out_of_time()
            if spent and oldest is not None and oldest < last_day:
                complete_from = max(first_day, oldest + timedelta(days=1))
                tally.drop_days_before(complete_from)
                return EventsRead(tally, complete_from, pages)
            page += 1
    raise UsageKeptChangingError(
        f"Cursor's usage events for {first_day}..{last_day} kept changing while being paged "
        f"({MAX_RESTARTS + 1} attempts); these days are read again later."
    )


async def read_daily_usage(
    client: CursorClient, first_day: date, last_day: date
) -> tuple[list[DailyUsageRow], int]:
    """Every daily-usage row of ``[first_day, last_day]`` (all members, every page)."""
    start_ms, end_ms = day_start_ms(first_day), day_start_ms(last_day)
    rows: list[DailyUsageRow] = []
    page, calls = 1, 0
    while True:
        result = await client.daily_usage(start_ms, end_ms, page)
        calls += 1
        rows.extend(result.rows)
        if not result.has_next or not result.rows:
            return rows, calls
        page += 1


async def read_spend(client: CursorClient) -> tuple[list[SpendRow], date | None]:
    """Every page of the current cycle's spend (``page >= totalPages`` ends)."""
    rows: list[SpendRow] = []
    cycle_start: date | None = None
    page = 1
    while True:
        result = await client.spend(page)
        rows.extend(result.rows)
        cycle_start = cycle_start or result.cycle_start
        if result.total_pages is None:
            if not result.rows:
                return rows, cycle_start
        elif page >= result.total_pages:
            return rows, cycle_start
        page += 1
