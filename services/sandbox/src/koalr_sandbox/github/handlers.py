"""HTTP routes of the GitHub half: GitHub's Copilot routes, the report files, ``/_sandbox/github``.

Every GitHub call goes through :func:`serve`, which applies, in order: the API version (400),
the token (401 ``Bad credentials``), the organisation (404, also for another org's token), the
token's permission (403), the org's metrics policy on report routes (403), an injected 500, the
primary hourly limit (403 or 429 with ``x-ratelimit-remaining: 0``), the secondary limits per
route and on concurrency (403 or 429 with ``retry-after``), an injected stall, then the route.
Every answer after authentication carries ``x-ratelimit-*`` headers.
"""

from __future__ import annotations

import asyncio
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Final, cast

from fastapi import APIRouter, Body, Query, Request, Response

from koalr_sandbox.errors import ApiError, bad_request
from koalr_sandbox.github.catalog import API_VERSIONS, Permission
from koalr_sandbox.github.model import day_of_epoch_s
from koalr_sandbox.github.orgs import (
    GithubConfigPatch,
    GithubOrg,
    OrgCreate,
    OrgRegistry,
    PrimaryWindow,
    TokenCreate,
    UnknownOrgError,
)
from koalr_sandbox.github.reports import FileCache, OrgView, ReportKind
from koalr_sandbox.github.service import (
    FILES_PREFIX,
    GithubError,
    LinkSigner,
    Reply,
    billing,
    premium_usage,
    report,
    seats_page,
    sign,
)
from koalr_sandbox.github.truth import github_truth
from koalr_sandbox.handlers import admin_day, delay_and_log, render, truth_range
from koalr_sandbox.teams import request_log_body
from koalr_sandbox.units import iso_day, iso_instant, parse_iso_day

MAX_LATE_ROWS: Final[int] = 5000
MAX_SPIKE_REQUESTS: Final[int] = 10_000_000
SECONDARY_WINDOW_S: Final[float] = 60.0


@dataclass
class GithubState:
    """What the GitHub half keeps per process: the orgs, the link secret and the file cache."""

    registry: OrgRegistry
    secret: bytes
    files: FileCache


def new_state(registry: OrgRegistry) -> GithubState:
    return GithubState(registry, secrets.token_bytes(32), FileCache())


def state_of(request: Request) -> GithubState:
    return cast("GithubState", request.app.state.github)


def github_error(error: GithubError) -> Response:
    return render(error.body, error.status, error.headers)


def _token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() not in {"bearer", "token"} or not value.strip():
        return None
    return value.strip()


Route = Callable[[Request, OrgView], Reply]


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    permission: Permission
    needs_policy: bool
    route: Route


def _rate_headers(org: GithubOrg, token: str, now_s: float) -> dict[str, str]:
    window = org.primary.get(token)
    limit = org.config.primary_limit_per_hour
    used = 0 if window is None or now_s >= window.reset_s else window.used
    reset = int(now_s) + 3600 if window is None or now_s >= window.reset_s else window.reset_s
    return {
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": str(max(0, limit - used)),
        "x-ratelimit-used": str(used),
        "x-ratelimit-reset": str(reset),
        "x-ratelimit-resource": "core",
    }


async def _answer(
    request: Request, org: GithubOrg, token: str, endpoint: Endpoint, now_s: float
) -> Response:
    config = org.config
    fault_draw, stall_draw, status_draw = (org.faults.random() for _ in range(3))
    if endpoint.permission not in org.tokens[token]:
        raise GithubError(403, "Resource not accessible by personal access token")
    if endpoint.needs_policy and not config.metrics_policy:
        raise GithubError(
            403, "Copilot Usage Metrics API access is disabled for this organization."
        )
    if fault_draw < config.fault_rate_5xx:
        raise GithubError(500, "Server Error")
    if config.rate_limits_enabled:
        window = org.primary.setdefault(token, PrimaryWindow())
        if not window.take(now_s, config.primary_limit_per_hour):
            raise GithubError(
                config.primary_status,
                "API rate limit exceeded for user. Check the x-ratelimit-reset header.",
            )
        wait_s = org.secondary.acquire(
            endpoint.name, config.secondary_limit_per_minute, SECONDARY_WINDOW_S, now_s
        )
        if wait_s is None and org.in_flight > config.max_concurrent:
            wait_s = SECONDARY_WINDOW_S
        if wait_s is not None:
            raise GithubError(
                429 if status_draw < config.secondary_429_ratio else 403,
                "You have exceeded a secondary rate limit. Please wait a few minutes before "
                "you try again.",
                {"retry-after": str(max(1, math.ceil(wait_s)))},
            )
    if stall_draw < config.fault_rate_stall:
        await asyncio.sleep(config.stall_s)
    reply = endpoint.route(request, OrgView(org, now_s))
    if reply.body is None:
        return Response(status_code=reply.status, headers=reply.headers)
    return render(reply.body, reply.status, reply.headers)


async def serve(request: Request, org_login: str, endpoint: Endpoint) -> Response:
    registry = state_of(request).registry
    now_s = registry.clock.now()
    token = _token(request.headers.get("authorization"))
    org = registry.by_token(token) if token else None
    logged = org or (registry.revoked_owner(token) if token else None)
    version = request.headers.get("x-github-api-version")
    headers: dict[str, str] = {}
    if version is not None and version not in API_VERSIONS:
        supported = ", ".join(sorted(API_VERSIONS))
        response = github_error(
            GithubError(
                400,
                f"Unsupported 'X-GitHub-Api-Version' header value: {version}. "
                f"Supported values are: {supported}.",
            )
        )
    elif org is None or token is None:
        response = github_error(GithubError(401, "Bad credentials"))
    elif org.login.lower() != org_login.lower():
        response = github_error(GithubError(404, "Not Found"))
    else:
        org.in_flight += 1
        try:
            response = await _answer(request, org, token, endpoint, now_s)
        except GithubError as error:
            response = github_error(error)
        finally:
            org.in_flight -= 1
        headers = _rate_headers(org, token, now_s)
    response.headers.update(headers)
    if logged is not None:
        await delay_and_log(request, response, now_s, logged.log, logged.config.latency_ms)
    return response


# ---------------------------------------------------------------------------------------------
# GitHub's routes


def _report_route(kind: ReportKind) -> Route:
    def route(request: Request, view: OrgView) -> Reply:
        state = state_of(request)
        signer = LinkSigner(
            str(request.base_url),
            state.secret,
            int(view.now_s) + view.org.config.link_ttl_s,
        )
        return report(view, kind, request.query_params, state.files, signer)

    return route


def _billing(_: Request, view: OrgView) -> Reply:
    return billing(view)


def _seats(request: Request, view: OrgView) -> Reply:
    url = str(request.url.replace(query=""))
    return seats_page(view, request.query_params, url)


def _premium(request: Request, view: OrgView) -> Reply:
    return premium_usage(view, request.query_params)


REPORT_KINDS: Final[dict[str, ReportKind]] = {
    "users-1-day": "users-1-day",
    "organization-1-day": "organization-1-day",
    "user-teams-1-day": "user-teams-1-day",
    "users-28-day/latest": "users-28-day",
    "organization-28-day/latest": "organization-28-day",
}
REPORTS: Final[dict[str, Endpoint]] = {
    path: Endpoint(f"reports/{path}", Permission.METRICS, True, _report_route(kind))
    for path, kind in REPORT_KINDS.items()
}
BILLING = Endpoint("copilot/billing", Permission.SEATS, False, _billing)
SEATS = Endpoint("copilot/billing/seats", Permission.SEATS, False, _seats)
PREMIUM = Endpoint("premium_request/usage", Permission.BILLING, False, _premium)

github_router = APIRouter(tags=["GitHub API"])


@github_router.get("/orgs/{org}/copilot/billing")
async def get_billing(request: Request, org: str) -> Response:
    return await serve(request, org, BILLING)


@github_router.get("/orgs/{org}/copilot/billing/seats")
async def get_seats(request: Request, org: str) -> Response:
    return await serve(request, org, SEATS)


@github_router.get("/orgs/{org}/copilot/metrics/reports/{report_path:path}")
async def get_report(request: Request, org: str, report_path: str) -> Response:
    endpoint = REPORTS.get(report_path)
    if endpoint is None:
        return github_error(GithubError(404, "Not Found"))
    return await serve(request, org, endpoint)


@github_router.get("/organizations/{org}/settings/billing/premium_request/usage")
async def get_premium_usage(request: Request, org: str) -> Response:
    return await serve(request, org, PREMIUM)


@github_router.get("/orgs/{org}/{rest:path}", include_in_schema=False)
@github_router.get("/organizations/{org}/{rest:path}", include_in_schema=False)
@github_router.get("/enterprises/{org}/{rest:path}", include_in_schema=False)
async def github_not_found(org: str, rest: str) -> Response:
    """Any other GitHub path (the legacy metrics routes, enterprise routes, …): GitHub's 404."""
    del org, rest
    return github_error(GithubError(404, "Not Found"))


def _storage_error(status: int, code: str, message: str) -> Response:
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return Response(body, status_code=status, media_type="application/xml")


@github_router.get(FILES_PREFIX + "/{org}/{kind}/{first}/{last}/{name}")
async def get_report_file(
    request: Request,
    *,
    org: str,
    kind: str,
    first: str,
    last: str,
    name: str,
    se: int = 0,
    sig: str = "",
) -> Response:
    """A report file behind a signed link: no GitHub credential, and none accepted."""
    state = state_of(request)
    now_s = state.registry.clock.now()
    path = request.url.path
    if request.headers.get("authorization"):
        return _storage_error(
            400,
            "InvalidAuthenticationInfo",
            "Only one auth mechanism allowed: the signed URL or the Authorization header.",
        )
    if not secrets.compare_digest(sign(state.secret, path, se), sig):
        return _storage_error(403, "AuthenticationFailed", "Signature did not match.")
    if now_s > se:
        return _storage_error(403, "AuthenticationFailed", "Signed expiry time has passed.")
    report_kind = next((k for k in REPORT_KINDS.values() if k == kind), None)
    stem, _, _ = name.partition(".")
    try:
        github_org = state.registry.get(org)
        first_day, last_day, part = parse_iso_day(first), parse_iso_day(last), int(stem)
    except (UnknownOrgError, ValueError):
        return _storage_error(404, "BlobNotFound", "The specified blob does not exist.")
    files = (
        state.files.files(OrgView(github_org, now_s), report_kind, first_day, last_day)
        if report_kind is not None
        else []
    )
    if not 1 <= part <= len(files):
        return _storage_error(404, "BlobNotFound", "The specified blob does not exist.")
    media = "application/x-ndjson" if name.endswith(".ndjson") else "application/json"
    response = Response(files[part - 1], media_type=media)
    await delay_and_log(request, response, now_s, github_org.log, github_org.config.latency_ms)
    return response


# ---------------------------------------------------------------------------------------------
# /_sandbox/github


sandbox_github_router = APIRouter(prefix="/_sandbox/github", tags=["Sandbox administration"])


def _org(request: Request, login: str) -> GithubOrg:
    try:
        return state_of(request).registry.get(login)
    except UnknownOrgError:
        raise ApiError(404, f"Organization {login} does not exist") from None


@sandbox_github_router.post("/orgs", status_code=201)
async def create_org(
    request: Request, spec: Annotated[OrgCreate | None, Body()] = None
) -> Response:
    registry = state_of(request).registry
    if len(registry) >= request.app.state.settings.max_teams:
        raise ApiError(
            409, "Too many organisations; delete some with DELETE /_sandbox/github/orgs/{org}"
        )
    org = registry.create(spec or OrgCreate())
    return render({"org": org.login, "token": org.token}, 201)


def _describe(request: Request, org: GithubOrg) -> dict[str, object]:
    view = OrgView(org, state_of(request).registry.clock.now())
    data_through = view.data_through
    return {
        "org": org.login,
        "organization_id": str(org.model.org_id),
        "seed": org.seed,
        "seats": len(org.model.seats),
        "days": org.days,
        "created_at": iso_instant(org.created_at),
        "history_start": iso_day(org.model.history_start),
        "first_report_day": iso_day(view.first_report_day),
        "data_through": None if data_through is None else iso_day(data_through),
        "teams": [{"id": t.team_id, "slug": t.slug} for t in org.model.teams],
        "config": org.config.model_dump(mode="json"),
    }


@sandbox_github_router.get("/orgs/{org}")
async def describe_org(request: Request, org: str) -> Response:
    return render(_describe(request, _org(request, org)))


@sandbox_github_router.patch("/orgs/{org}")
async def patch_org(request: Request, org: str, patch: GithubConfigPatch) -> Response:
    target = _org(request, org)
    target.config = patch.apply_to(target.config)
    return render(target.config.model_dump(mode="json"))


@sandbox_github_router.delete("/orgs/{org}", status_code=204)
async def delete_org(request: Request, org: str) -> Response:
    target = _org(request, org)
    state_of(request).registry.delete(target.login)
    return Response(status_code=204)


@sandbox_github_router.post("/orgs/{org}/rotate-token")
async def rotate_token(request: Request, org: str) -> Response:
    target = _org(request, org)
    token = state_of(request).registry.rotate(target)
    return render({"org": target.login, "token": token})


@sandbox_github_router.post("/orgs/{org}/revoke-token", status_code=204)
async def revoke_token(
    request: Request, org: str, body: Annotated[dict[str, str] | None, Body()] = None
) -> Response:
    """Revoke ``{"token": …}`` (default: the org's main token); it answers 401 from now on."""
    target = _org(request, org)
    token = (body or {}).get("token", target.token)
    if token not in target.tokens:
        raise ApiError(404, "That token does not belong to this organisation")
    state_of(request).registry.revoke(target, token)
    return Response(status_code=204)


@sandbox_github_router.post("/orgs/{org}/tokens", status_code=201)
async def create_token(request: Request, org: str, spec: TokenCreate) -> Response:
    """A further token with only the listed permissions (e.g. none, to see 403s)."""
    target = _org(request, org)
    token = state_of(request).registry.add_token(target, frozenset(spec.permissions))
    return render(
        {"org": target.login, "token": token, "permissions": sorted(spec.permissions)}, 201
    )


@sandbox_github_router.post("/orgs/{org}/late-rows")
async def add_late_rows(
    request: Request,
    org: str,
    day: Annotated[str, Body(description="YYYY-MM-DD")],
    count: Annotated[int, Body(ge=1, le=MAX_LATE_ROWS)] = 1,
) -> Response:
    """Give ``count`` more seated users a row on ``day``, as GitHub restating a day would."""
    target = _org(request, org)
    added_day = admin_day(day, "day")
    model = target.model
    today = day_of_epoch_s(state_of(request).registry.clock.now())
    if not model.history_start <= added_day <= today:
        raise bad_request("day must lie between the history start and today")
    chosen = model.add_late_rows(added_day, count)
    return render({"day": day, "logins": [model.seats[i].login for i in chosen]})


@sandbox_github_router.post("/orgs/{org}/premium-spike")
async def add_premium_spike(
    request: Request,
    org: str,
    day: Annotated[str, Body(description="YYYY-MM-DD")],
    requests: Annotated[int, Body(ge=1, le=MAX_SPIKE_REQUESTS)],
) -> Response:
    """Bill ``requests`` more premium requests to the org on ``day`` (a spend spike, for
    anomaly detection), as usage of the org that no member's row explains."""
    target = _org(request, org)
    spike_day = admin_day(day, "day")
    model = target.model
    today = day_of_epoch_s(state_of(request).registry.clock.now())
    if not model.history_start <= spike_day <= today:
        raise bad_request("day must lie between the history start and today")
    total = model.add_premium_spike(spike_day, requests)
    return render({"day": day, "requests": total})


@sandbox_github_router.get("/orgs/{org}/truth")
async def truth(
    request: Request,
    org: str,
    start: Annotated[str | None, Query(description="First day, YYYY-MM-DD")] = None,
    end: Annotated[str | None, Query(description="Last day (inclusive), YYYY-MM-DD")] = None,
) -> Response:
    target = _org(request, org)
    view = OrgView(target, state_of(request).registry.clock.now())
    first, last = truth_range(start, end, view.today)
    return render(github_truth(view, first, last))


@sandbox_github_router.get("/orgs/{org}/requests")
async def request_log(
    request: Request,
    org: str,
    since: Annotated[int, Query(ge=0, description="Index of the first entry to return")] = 0,
) -> Response:
    target = _org(request, org)
    return render(request_log_body(target.log, since))
