"""HTTP routes of the people across tools (admins only): identities and people (JSON pages or
a CSV export). ``format=csv`` on ``members`` lives with its JSON route in
:mod:`koalr_metrics.handlers`; both render through :mod:`koalr_metrics.csvout`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from koalr_metrics.csvout import CSV_RESPONSE, Format, csv_response
from koalr_metrics.handlers import Days, OrgAdminDep, admin_errors
from koalr_metrics.jsonio import ExactJSONResponse
from koalr_metrics.people import PAGE_MAX
from koalr_metrics.people_service import PEOPLE_CSV_HEADER, PeopleService
from koalr_metrics.schemas import IdentitiesCountOut, IdentitiesIn, IdentitiesOut, PeopleOut


async def people_service(request: Request) -> PeopleService:
    service: PeopleService = request.app.state.people
    return service


PeopleDep = Annotated[PeopleService, Depends(people_service)]


router = APIRouter(
    prefix="/v1/orgs/{org_id}/ai-analytics",
    tags=["ai-analytics"],
    default_response_class=ExactJSONResponse,
)


@router.put(
    "/identities",
    response_model=IdentitiesCountOut,
    responses=admin_errors(),
    summary="Replace the org's mapping of emails to GitHub logins (admins only)",
)
async def put_identities(
    org_id: str, body: IdentitiesIn, principal: OrgAdminDep, people: PeopleDep
) -> Response:
    rows = [(i["email"], i["github_login"]) for i in body.identities]
    return ExactJSONResponse(await people.replace_identities(principal, org_id, rows))


@router.get(
    "/identities",
    response_model=IdentitiesOut,
    responses=admin_errors(),
    summary="The org's mapping of emails to GitHub logins, by email (admins only)",
)
async def get_identities(org_id: str, principal: OrgAdminDep, people: PeopleDep) -> Response:
    return ExactJSONResponse(await people.identities(principal, org_id))


@router.get(
    "/people",
    response_model=PeopleOut,
    responses={**admin_errors(), **CSV_RESPONSE},
    summary="One row per person across Cursor and GitHub Copilot, by total spend (admins only)",
)
async def get_people(
    org_id: str,
    principal: OrgAdminDep,
    people: PeopleDep,
    *,
    days: Days = 30,
    limit: Annotated[
        int, Query(ge=1, le=PAGE_MAX, description="Rows per page (JSON only), 1 to 500.")
    ] = PAGE_MAX,
    cursor: Annotated[
        str | None,
        Query(max_length=1000, description="The previous page's `next` (JSON only)."),
    ] = None,
    format: Format = "json",
) -> Response:
    if format == "csv":
        return csv_response(
            "people", PEOPLE_CSV_HEADER, people.people_rows(principal, org_id, days=days)
        )
    return ExactJSONResponse(
        await people.people(principal, org_id, days=days, limit=limit, cursor=cursor)
    )
