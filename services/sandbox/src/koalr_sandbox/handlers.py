"""HTTP routes: the Cursor API (under its real paths) and the sandbox's own ``/_sandbox`` routes.

Every Cursor call goes through :func:`serve`, which applies, in order: Basic authentication (401),
plan gating (403), an injected 5xx fault (500, not counted against the limit), the rate limit
(429), an injected stall, then the endpoint itself (400 for a bad request). Injected latency is
added to every response, and each call on a known key is written to the team's request log.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, cast

from fastapi import APIRouter, Body, Query, Request, Response

from koalr_sandbox import service
from koalr_sandbox.errors import (
    FORBIDDEN_MESSAGE,
    INTERNAL_ERROR_MESSAGE,
    RATE_LIMITED_MESSAGE,
    UNAUTHORIZED_MESSAGE,
    ApiError,
    bad_request,
)
from koalr_sandbox.limits import LIMIT_OF_BUCKET, Bucket
from koalr_sandbox.service import JsonObject, View
from koalr_sandbox.teams import (
    ConfigPatch,
    RequestRecord,
    Team,
    TeamCreate,
    TeamRegistry,
    UnknownTeamError,
    request_log_body,
)
from koalr_sandbox.truth import ground_truth
from koalr_sandbox.units import day_of_s, iso_day, iso_instant, parse_iso_day

ALL_PLANS = frozenset({"team", "business", "enterprise"})
ADMIN_PLANS = frozenset({"business", "enterprise"})
ANALYTICS_PLANS = frozenset({"enterprise"})
MAX_TRUTH_DAYS = 400


def render(body: object, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response serialised with the standard library (fast, floats as shortest repr)."""
    content = json.dumps(body, separators=(",", ":"), allow_nan=False)
    return Response(content, status_code=status, headers=headers, media_type="application/json")


def error_response(error: ApiError) -> Response:
    return render(error.body, error.status, error.headers)


def registry_of(request: Request) -> TeamRegistry:
    return cast("TeamRegistry", request.app.state.registry)


def _basic_username(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


async def _json_body(request: Request) -> Mapping[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise bad_request("Invalid JSON body") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object")
    return cast("Mapping[str, Any]", body)


Handler = Callable[[View, Mapping[str, Any]], JsonObject]


@dataclass(frozen=True, slots=True)
class Endpoint:
    bucket: Bucket
    plans: frozenset[str]
    handler: Handler
    reads_body: bool


def _members(view: View, _: Mapping[str, Any]) -> JsonObject:
    return service.team_members(view)


def _analytics_dau(view: View, params: Mapping[str, Any]) -> JsonObject:
    return service.analytics_dau(view, params)


def _analytics_models(view: View, params: Mapping[str, Any]) -> JsonObject:
    return service.analytics_models(view, params)


MEMBERS = Endpoint("members", ALL_PLANS, _members, reads_body=False)
DAILY_USAGE = Endpoint("daily_usage", ADMIN_PLANS, service.daily_usage, reads_body=True)
SPEND = Endpoint("spend", ADMIN_PLANS, service.spend, reads_body=True)
USAGE_EVENTS = Endpoint("usage_events", ADMIN_PLANS, service.usage_events, reads_body=True)
ANALYTICS_DAU = Endpoint("analytics_dau", ANALYTICS_PLANS, _analytics_dau, reads_body=False)
ANALYTICS_MODELS = Endpoint(
    "analytics_models", ANALYTICS_PLANS, _analytics_models, reads_body=False
)


async def _answer(request: Request, team: Team, endpoint: Endpoint, received: float) -> Response:
    """Everything after authentication; returns the response and records a retry hint."""
    config = team.config
    fault_draw, stall_draw, retry_draw = (team.faults.random() for _ in range(3))
    if config.plan not in endpoint.plans:
        raise ApiError(403, FORBIDDEN_MESSAGE)
    if fault_draw < config.fault_rate_5xx:
        raise ApiError(500, INTERNAL_ERROR_MESSAGE)
    if config.rate_limits_enabled:
        limit = getattr(config.rate_limits, LIMIT_OF_BUCKET[endpoint.bucket])
        wait_s = team.limiter.acquire(endpoint.bucket, limit, config.rate_window_s, received)
        if wait_s is not None:
            headers = {}
            if retry_draw < config.retry_after_ratio:
                headers["Retry-After"] = str(max(1, math.ceil(wait_s)))
            raise ApiError(429, RATE_LIMITED_MESSAGE, headers)
    if stall_draw < config.fault_rate_stall:
        await asyncio.sleep(config.stall_s)
    params: Mapping[str, Any] = (
        await _json_body(request) if endpoint.reads_body else dict(request.query_params)
    )
    view = View(team, registry_of(request).clock.now())
    return render(endpoint.handler(view, params))


async def serve(request: Request, endpoint: Endpoint) -> Response:
    registry = registry_of(request)
    received = registry.clock.now()
    key = _basic_username(request.headers.get("authorization"))
    team = registry.by_key(key) if key else None
    logged_team = team or (registry.revoked_owner(key) if key else None)
    if team is None:
        response = error_response(ApiError(401, UNAUTHORIZED_MESSAGE))
    else:
        try:
            response = await _answer(request, team, endpoint, received)
        except ApiError as error:
            response = error_response(error)
    if logged_team is not None:
        await delay_and_log(
            request, response, received, logged_team.log, logged_team.config.latency_ms
        )
    return response


async def delay_and_log(
    request: Request, response: Response, at: float, log: list[RequestRecord], latency_ms: int
) -> None:
    """Add the injected latency, then write the call to the request log."""
    if latency_ms:
        await asyncio.sleep(latency_ms / 1000)
    retry_after = response.headers.get("retry-after")
    log.append(
        RequestRecord(
            method=request.method,
            path=request.url.path,
            status=response.status_code,
            at=at,
            retry_after=int(retry_after) if retry_after else None,
        )
    )


cursor_router = APIRouter(tags=["Cursor API"])


@cursor_router.get("/teams/members")
async def get_team_members(request: Request) -> Response:
    return await serve(request, MEMBERS)


@cursor_router.post("/teams/daily-usage-data")
async def post_daily_usage(request: Request) -> Response:
    return await serve(request, DAILY_USAGE)


@cursor_router.post("/teams/spend")
async def post_spend(request: Request) -> Response:
    return await serve(request, SPEND)


@cursor_router.post("/teams/filtered-usage-events")
async def post_usage_events(request: Request) -> Response:
    return await serve(request, USAGE_EVENTS)


@cursor_router.get("/analytics/team/dau")
async def get_analytics_dau(request: Request) -> Response:
    return await serve(request, ANALYTICS_DAU)


@cursor_router.get("/analytics/team/models")
async def get_analytics_models(request: Request) -> Response:
    return await serve(request, ANALYTICS_MODELS)


sandbox_router = APIRouter(prefix="/_sandbox", tags=["Sandbox administration"])


def _team(request: Request, team_id: str) -> Team:
    try:
        return registry_of(request).get(team_id)
    except UnknownTeamError:
        raise ApiError(404, f"Team {team_id} does not exist") from None


def _describe(request: Request, team: Team) -> JsonObject:
    now = registry_of(request).clock.now()
    today = day_of_s(now)
    roster = team.data.roster
    return {
        "team_id": team.team_id,
        "seed": team.seed,
        "members": team.member_count,
        "days": team.days,
        "created_at": iso_instant(team.created_at),
        "history_start": iso_day(roster.history_start),
        "cycle_start": iso_day(team.cycle_start(today)),
        "domain": roster.domain,
        "config": team.config.model_dump(mode="json"),
    }


@sandbox_router.post("/teams", status_code=201)
async def create_team(
    request: Request, spec: Annotated[TeamCreate | None, Body()] = None
) -> Response:
    registry = registry_of(request)
    if len(registry) >= request.app.state.settings.max_teams:
        raise ApiError(409, "Too many teams; delete some with DELETE /_sandbox/teams/{team_id}")
    team = registry.create(spec or TeamCreate())
    return render({"team_id": team.team_id, "api_key": team.api_key}, 201)


@sandbox_router.get("/teams/{team_id}")
async def describe_team(request: Request, team_id: str) -> Response:
    return render(_describe(request, _team(request, team_id)))


@sandbox_router.patch("/teams/{team_id}")
async def patch_team(request: Request, team_id: str, patch: ConfigPatch) -> Response:
    team = _team(request, team_id)
    team.config = patch.apply_to(team.config)
    return render(team.config.model_dump(mode="json"))


@sandbox_router.delete("/teams/{team_id}", status_code=204)
async def delete_team(request: Request, team_id: str) -> Response:
    _team(request, team_id)
    registry_of(request).delete(team_id)
    return Response(status_code=204)


@sandbox_router.post("/teams/{team_id}/rotate-key")
async def rotate_key(request: Request, team_id: str) -> Response:
    _team(request, team_id)
    team = registry_of(request).rotate_key(team_id)
    return render({"team_id": team.team_id, "api_key": team.api_key})


def admin_day(text: str, name: str) -> int:
    """A ``YYYY-MM-DD`` parameter of an admin route, as an epoch day; 400 naming it otherwise."""
    try:
        return parse_iso_day(text)
    except ValueError:
        raise bad_request(f"{name} must be a date as YYYY-MM-DD") from None


def truth_range(start: str | None, end: str | None, today: int) -> tuple[int, int]:
    """The epoch days a truth route covers: ``end`` (default today) and ``start`` (default 29
    days before it), ordered and at most ``MAX_TRUTH_DAYS`` long."""
    last = today if end is None else admin_day(end, "end")
    first = last - 29 if start is None else admin_day(start, "start")
    if first > last:
        raise bad_request("start must not be after end")
    if last - first >= MAX_TRUTH_DAYS:
        raise bad_request(f"The range can cover at most {MAX_TRUTH_DAYS} days")
    return first, last


@sandbox_router.get("/teams/{team_id}/truth")
async def truth(
    request: Request,
    team_id: str,
    start: Annotated[str | None, Query(description="First day, YYYY-MM-DD")] = None,
    end: Annotated[str | None, Query(description="Last day (inclusive), YYYY-MM-DD")] = None,
) -> Response:
    team = _team(request, team_id)
    view = View(team, registry_of(request).clock.now())
    first, last = truth_range(start, end, view.today)
    return render(ground_truth(view, first, last))


@sandbox_router.get("/teams/{team_id}/requests")
async def request_log(
    request: Request,
    team_id: str,
    since: Annotated[int, Query(ge=0, description="Index of the first entry to return")] = 0,
) -> Response:
    team = _team(request, team_id)
    return render(request_log_body(team.log, since))


health_router = APIRouter(tags=["Health"])


@health_router.get("/healthz")
async def healthz() -> Response:
    return render({"status": "ok"})
