"""The people across tools, free of any framework: who may do what, and the documents."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from datetime import date
from typing import Final

from koalr_metrics.analytics import DayRange
from koalr_metrics.csvout import Cell
from koalr_metrics.people import (
    PAGE_MAX,
    Person,
    decode_cursor,
    encode_cursor,
    identities_document,
    normalise_identities,
    person_document,
)
from koalr_metrics.people_repository import PeopleRepository
from koalr_metrics.schemas import IdentitiesCountOut, IdentitiesOut, PeopleOut
from koalr_runtime.auth import Principal, authorize
from koalr_runtime.logs import get_logger

log = get_logger(__name__)

PEOPLE_CSV_HEADER: Final = (
    "email",
    "github_login",
    "name",
    "cursor_active_days",
    "cursor_requests",
    "cursor_spend_cents",
    "github_copilot_active_days",
    "github_copilot_requests",
    "github_copilot_spend_cents",
    "total_spend_cents",
)


class PeopleService:
    """Identities and the people view; every call is for an admin of the path's org."""

    def __init__(self, repository: PeopleRepository, today: Callable[[], date]) -> None:
        self._repo = repository
        self._today = today

    async def replace_identities(
        self, principal: Principal, org_id: str, rows: Sequence[tuple[str, str]]
    ) -> IdentitiesCountOut:
        authorize(principal, org_id, admin_only=True)
        identities = normalise_identities(rows)
        count = await self._repo.replace_identities(org_id, identities, actor=principal)
        log.info("identities.replaced", org_id=org_id, identities=count)
        return {"identities": count}

    async def identities(self, principal: Principal, org_id: str) -> IdentitiesOut:
        authorize(principal, org_id, admin_only=True)
        return {"identities": identities_document(await self._repo.identities(org_id))}

    async def people(
        self,
        principal: Principal,
        org_id: str,
        *,
        days: int,
        limit: int = PAGE_MAX,
        cursor: str | None = None,
    ) -> PeopleOut:
        authorize(principal, org_id, admin_only=True)
        after = None if cursor is None else decode_cursor(cursor)
        day_range = DayRange.ending(self._today(), days)
        # One row more than the page tells whether another page follows.
        rows = await self._repo.people(org_id, day_range, limit=limit + 1, after=after)
        page = rows[:limit]
        return {
            "people": [person_document(p) for p in page],
            "next": encode_cursor(page[-1]) if len(rows) > limit else None,
        }

    def people_rows(
        self, principal: Principal, org_id: str, *, days: int
    ) -> AsyncIterator[Sequence[Cell]]:
        """Every person as a CSV row (:data:`PEOPLE_CSV_HEADER`), in the JSON's order."""
        authorize(principal, org_id, admin_only=True)
        day_range = DayRange.ending(self._today(), days)
        return _people_rows(self._repo.all_people(org_id, day_range))


async def _people_rows(people: AsyncIterator[Person]) -> AsyncIterator[Sequence[Cell]]:
    async for p in people:
        cur, cop = p.cursor, p.github_copilot
        yield (
            p.email,
            p.github_login,
            p.name,
            None if cur is None else cur.active_days,
            None if cur is None else cur.requests,
            None if cur is None else cur.spend_cents,
            None if cop is None else cop.active_days,
            None if cop is None else cop.requests,
            None if cop is None else cop.spend_cents,
            p.total_spend_cents,
        )
