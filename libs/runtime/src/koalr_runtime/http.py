"""HTTP pieces every service's API shares: the error body, health, readiness and metrics.

Every error leaves as ``{"error": {"code": "<snake_case>", "message": "<sentence>"}}``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from koalr_runtime.logs import get_logger

log = get_logger(__name__)

HTTP_REQUESTS = Counter(
    "koalr_http_requests_total", "HTTP requests served", ["service", "route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "koalr_http_request_duration_seconds", "HTTP request latency", ["service", "route", "method"]
)

ReadinessCheck = Callable[[], Awaitable[None]]


class ApiError(Exception):
    """An error the caller can act on: HTTP status, snake_case code and a sentence."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "The request is invalid: " + "; ".join(parts[:10]) + "."


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
}


def _allowed_methods(request: Request) -> str:
    """Every method some route serves on this path. Starlette's own ``Allow`` names only the
    first route matching the path (so a path with GET and POST routes would say ``GET``); each
    method is tried against the routes instead, through their public ``matches``, which also
    looks into included routers."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]
    return ", ".join(allowed)


def install_error_handlers(app: FastAPI) -> None:
    """Map every failure onto the common error body."""

    async def on_api_error(_: Request, exc: Exception) -> Response:
        if not isinstance(exc, ApiError):
            raise exc
        return error_response(exc.status, exc.code, exc.message)

    async def on_validation_error(_: Request, exc: Exception) -> Response:
        if not isinstance(exc, RequestValidationError):
            raise exc
        return error_response(422, "invalid_request", _validation_message(exc))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, StarletteHTTPException):
            raise exc
        if exc.status_code == 405:
            exc.headers = {**(exc.headers or {}), "Allow": _allowed_methods(request)}
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else "The request failed."
        if exc.status_code == 404 and message == "Not Found":
            message = "No such resource."
        elif exc.status_code == 405 and message == "Method Not Allowed":
            message = "This method is not allowed here; `Allow` lists the methods that are."
        # Headers the framework set (``Allow`` on a 405) travel with the body.
        return error_response(exc.status_code, code, message, exc.headers)

    async def on_unexpected(_: Request, exc: Exception) -> Response:
        log.error("http.unhandled_error", error_type=type(exc).__name__, exc_info=exc)
        return error_response(500, "internal_error", "Something went wrong on our side.")

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)


class RequestMetricsMiddleware:
    """Counts every HTTP request and observes its latency, labelled by route template, method
    and status; the latency runs until the response starts. A plain ASGI middleware: unlike
    ``@app.middleware("http")`` it adds no task, stream or request object per request."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_measured(message: Message) -> None:
            if message["type"] == "http.response.start":
                # The router has put the matched route into the scope by now.
                path = getattr(scope.get("route"), "path", "unmatched")
                method = scope["method"]
                HTTP_REQUESTS.labels(self.service, path, method, str(message["status"])).inc()
                HTTP_LATENCY.labels(self.service, path, method).observe(
                    time.perf_counter() - started
                )
            await send(message)

        await self.app(scope, receive, send_measured)


def install_observability(
    app: FastAPI, service: str, readiness_checks: Sequence[tuple[str, ReadinessCheck]] = ()
) -> None:
    """``GET /healthz`` (alive), ``GET /readyz`` (dependencies reachable), ``GET /metrics``,
    and per-route request counters and latency histograms."""
    app.add_middleware(RequestMetricsMiddleware, service=service)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        failures: dict[str, str] = {}
        for name, check in readiness_checks:
            try:
                await check()
            except Exception as exc:  # noqa: BLE001 - readiness reports any failure
                failures[name] = f"{type(exc).__name__}: {exc}"[:300]
        if failures:
            return JSONResponse(
                {"status": "unavailable", "service": service, "failed": failures},
                status_code=503,
            )
        return JSONResponse({"status": "ready", "service": service})

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)
