"""The ASGI application."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from koalr_sandbox.clock import Clock, SystemClock
from koalr_sandbox.errors import NOT_FOUND_MESSAGE, ApiError
from koalr_sandbox.github.handlers import github_router, new_state, sandbox_github_router
from koalr_sandbox.github.orgs import OrgRegistry
from koalr_sandbox.handlers import (
    cursor_router,
    error_response,
    health_router,
    render,
    sandbox_router,
)
from koalr_sandbox.settings import SandboxSettings
from koalr_sandbox.teams import TeamRegistry


async def _api_error(_: Request, exc: Exception) -> Response:
    if not isinstance(exc, ApiError):  # pragma: no cover - registered for ApiError only
        raise exc
    return error_response(exc)


async def _http_error(_: Request, exc: Exception) -> Response:
    if not isinstance(exc, StarletteHTTPException):  # pragma: no cover
        raise exc
    message = NOT_FOUND_MESSAGE if exc.status_code == 404 else str(exc.detail)
    return error_response(ApiError(exc.status_code, message))


async def _validation_error(_: Request, exc: Exception) -> Response:
    if not isinstance(exc, RequestValidationError):  # pragma: no cover
        raise exc
    problems = "; ".join(
        f"{'.'.join(str(p) for p in error['loc'][1:]) or 'body'}: {error['msg']}"
        for error in exc.errors()
    )
    return render({"error": "Unprocessable Entity", "message": problems}, 422)


def create_app(settings: SandboxSettings | None = None, *, clock: Clock | None = None) -> FastAPI:
    """Build the sandbox. ``clock`` replaces the system clock (tests move time by hand)."""
    settings = settings or SandboxSettings()
    app = FastAPI(
        title="Koalr provider sandbox",
        summary="Seeded stand-ins for the Cursor Admin and Analytics APIs and GitHub's Copilot APIs.",
        version="0.1.0",
    )
    app.state.settings = settings
    clock = clock or SystemClock()
    app.state.registry = TeamRegistry(clock, event_cache_events=settings.event_cache_events)
    app.state.github = new_state(OrgRegistry(clock))
    app.include_router(health_router)
    app.include_router(cursor_router)
    app.include_router(sandbox_router)
    app.include_router(github_router)
    app.include_router(sandbox_github_router)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    return app
