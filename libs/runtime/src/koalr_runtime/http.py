"""HTTP pieces every service's API shares: the error body, health, readiness and metrics.

Every error leaves as ``{"error": {"code": "<snake_case>", "message": "<sentence>"}}``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

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


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "The request is invalid: " + "; ".join(parts[:10]) + "."


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
}


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

    async def on_http_error(_: Request, exc: Exception) -> Response:
        if not isinstance(exc, StarletteHTTPException):
            raise exc
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else "The request failed."
        if exc.status_code == 404 and message == "Not Found":
            message = "No such resource."
        return error_response(exc.status_code, code, message)

    async def on_unexpected(_: Request, exc: Exception) -> Response:
        log.error("http.unhandled_error", error_type=type(exc).__name__, exc_info=exc)
        return error_response(500, "internal_error", "Something went wrong on our side.")

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)


def install_observability(
    app: FastAPI, service: str, readiness_checks: Sequence[tuple[str, ReadinessCheck]] = ()
) -> None:
    """``GET /healthz`` (alive), ``GET /readyz`` (dependencies reachable), ``GET /metrics``,
    and per-route request counters and latency histograms."""

    @app.middleware("http")
    async def _measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        HTTP_REQUESTS.labels(service, path, request.method, str(response.status_code)).inc()
        HTTP_LATENCY.labels(service, path, request.method).observe(time.perf_counter() - started)
        return response

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
