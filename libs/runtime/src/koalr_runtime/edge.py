"""The HTTP edge every API service shares: what is refused before a route runs, and how the
OpenAPI document says so.

:class:`EdgeMiddleware` (a plain ASGI middleware, outermost after Starlette's error handler):

- identifiers: a control character (NUL included) in the path or the query string, or an
  ``/v1/orgs/{org_id}/...`` whose ``org_id`` breaks the org-id rule, is 422 ``invalid_request``
  before any route, dependency or database sees it;
- body size: a ``Content-Length`` above the limit is 413 ``payload_too_large`` at once, and a
  streamed body is counted as it arrives and refused the moment it passes the limit;
- rate: each bearer token has a token bucket on the ``/v1`` API; an empty bucket is 429
  ``rate_limited`` with ``Retry-After``;
- time: a request not answered within the timeout is 503 ``request_timeout``;
- redirects: a ``Location`` is made relative, so a redirect never echoes the ``Host`` header.

:class:`EdgeAPI` is the FastAPI app whose OpenAPI document declares those answers on every
``/v1`` operation, plus the org-id rule on the ``org_id`` parameter.
Choices and alternatives: docs/decisions/0801-edge-hardening-and-fuzzing.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import unquote_to_bytes, urlsplit

from fastapi import FastAPI
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from koalr_contracts import (
    ORG_ID_MAX_LENGTH,
    ORG_ID_PATTERN,
    ORG_ID_RULE,
    is_org_id,
)
from koalr_runtime.http import error_body
from koalr_runtime.logs import get_logger
from koalr_runtime.settings import EdgeSettings

log = get_logger(__name__)

API_PREFIX: Final = "/v1/"
_ORGS_PREFIX: Final = b"/v1/orgs/"
_CONTROL_BYTES: Final = re.compile(rb"[\x00-\x1f\x7f]")


class PayloadTooLarge(HTTPException):
    """Raised from ``receive`` once a streamed body passes the limit; FastAPI lets an
    ``HTTPException`` raised while it reads the body through, so the error handler answers."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than the limit of {limit} bytes.")


class TokenBuckets:
    """One token bucket per key: ``rate`` tokens a second up to ``burst``; a request takes one.

    The buckets live in this process (each replica limits on its own: the limit protects the
    replica, it is not a billing quota). At most ``max_keys`` are kept, least recently used
    evicted first, so a flood of distinct tokens cannot grow memory without bound; an evicted
    bucket comes back full, which only ever errs towards letting a request through.
    """

    def __init__(self, rate: float, burst: int, *, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()

    def take(self, key: bytes, now: float | None = None) -> float:
        """Take a token for ``key``: 0 when granted, else the seconds until one is available."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait_s = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait_s = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait_s


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


def _identifier_problem(scope: Scope) -> str | None:
    """Why the path or query is refused, or None. Works on the raw bytes, decoding each
    percent-escape, so ``%00`` is caught as surely as a raw NUL."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    path = unquote_to_bytes(raw_path.split(b"?", 1)[0])
    query = unquote_to_bytes(bytes(scope.get("query_string", b"")).replace(b"+", b" "))
    if _CONTROL_BYTES.search(path) or _CONTROL_BYTES.search(query):
        return "The path or query string holds a control character."
    if raw_path.startswith(_ORGS_PREFIX):
        segment = raw_path[len(_ORGS_PREFIX) :].split(b"/", 1)[0]
        org_id = unquote_to_bytes(segment).decode("utf-8", errors="replace")
        if not is_org_id(org_id):
            return f"The organisation id in the path may only contain {ORG_ID_RULE}."
    return None


async def _send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    body = json.dumps(error_body(code, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _relative_location(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers with an absolute ``Location`` made relative (path and query only)."""
    out = []
    for key, value in headers:
        parts = urlsplit(bytes(value).decode("latin-1")) if key.lower() == b"location" else None
        if parts is not None and (parts.scheme or parts.netloc):
            path = "/" + parts.path.lstrip("/")
            out.append((key, (path + (f"?{parts.query}" if parts.query else "")).encode("latin-1")))
        else:
            out.append((key, value))
    return out


class EdgeMiddleware:
    """Refuses what no route should see; see the module docstring for the rules."""

    def __init__(self, app: ASGIApp, settings: EdgeSettings) -> None:
        self.app = app
        self.max_body = settings.http_max_body_bytes
        self.timeout_s = settings.http_request_timeout_s
        self.buckets = TokenBuckets(settings.http_rate_limit_per_s, settings.http_rate_limit_burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = _identifier_problem(scope)
        if problem is not None:
            await _send_error(send, 422, "invalid_request", problem)
            return
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await _send_error(
                send,
                413,
                "payload_too_large",
                f"The request body is larger than the limit of {self.max_body} bytes.",
                [(b"connection", b"close")],
            )
            return
        if scope["path"].startswith(API_PREFIX):
            authorization = _header(scope, b"authorization")
            if authorization:
                wait_s = self.buckets.take(hashlib.sha256(authorization).digest())
                if wait_s > 0:
                    retry_after = str(max(1, math.ceil(wait_s))).encode()
                    await _send_error(
                        send,
                        429,
                        "rate_limited",
                        "Too many requests with this token; retry after the number of seconds "
                        "in `Retry-After`.",
                        [(b"retry-after", retry_after)],
                    )
                    return
        await self._call_bounded(scope, receive, send)

    async def _call_bounded(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise PayloadTooLarge(self.max_body)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", ()))
                if 300 <= message["status"] < 400:
                    message = {**message, "headers": _relative_location(headers)}
            await send(message)

        try:
            async with asyncio.timeout(self.timeout_s):
                await self.app(scope, counted_receive, guarded_send)
        except TimeoutError:
            log.warning("http.request_timeout", path=scope.get("path"), timeout_s=self.timeout_s)
            if not started:
                await _send_error(
                    send,
                    503,
                    "request_timeout",
                    f"The request was not answered within {self.timeout_s:g} seconds; retry.",
                    [(b"retry-after", b"1")],
                )
        except PayloadTooLarge as exc:
            if not started:
                await _send_error(
                    send, 413, "payload_too_large", str(exc.detail), [(b"connection", b"close")]
                )


# --- the OpenAPI document ---------------------------------------------------------------------


class EdgeErrorDetail(BaseModel):
    code: str
    message: str


class EdgeError(BaseModel):
    """The error body every status below carries."""

    error: EdgeErrorDetail


_REF: Final = {"$ref": "#/components/schemas/EdgeError"}

#: What the edge (or the framework) may answer on any ``/v1`` operation.
EDGE_RESPONSES: Final = {
    "401": "Missing, malformed, expired or wrongly signed token (`unauthorized`, "
    "`invalid_token`, `token_expired`).",
    "403": "Token for another organisation (`forbidden`), or a role too low (`admin_only`).",
    "405": "The method is not allowed on this path (`method_not_allowed`); `Allow` lists "
    "those that are.",
    "413": "The body is larger than the service's limit (`payload_too_large`).",
    "422": "Invalid path, query or body (`invalid_request`); the message names the field.",
    "429": "Too many requests with this token (`rate_limited`); `Retry-After` says when to retry.",
    "503": "Not answered in time (`request_timeout`); retry after `Retry-After` seconds.",
}
#: What an operation with a request body may answer besides.
BODY_RESPONSES: Final = {
    "400": "The body is not JSON that can be read: invalid UTF-8, nested too deeply, or "
    "an integer too long (`bad_request`).",
}

_ORG_ID_SCHEMA: Final = {
    "type": "string",
    "minLength": 1,
    "maxLength": ORG_ID_MAX_LENGTH,
    "pattern": ORG_ID_PATTERN,
    "title": "Org Id",
    "description": f"The organisation: {ORG_ID_RULE}.",
}


def document_edge(schema: dict[str, Any]) -> dict[str, Any]:
    """Declare the edge's answers and the org-id rule in an OpenAPI document (in place)."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas["EdgeErrorDetail"] = EdgeErrorDetail.model_json_schema()
    schemas["EdgeError"] = EdgeError.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas["EdgeError"].pop("$defs", None)
    for path, operations in schema.get("paths", {}).items():
        if not path.startswith(API_PREFIX):
            continue
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for parameter in operation.get("parameters", ()):
                if parameter.get("in") == "path" and parameter.get("name") == "org_id":
                    parameter["schema"] = dict(_ORG_ID_SCHEMA)
            extra = {**EDGE_RESPONSES, **(BODY_RESPONSES if "requestBody" in operation else {})}
            responses = operation["responses"]
            for status, description in extra.items():
                responses.setdefault(
                    status,
                    {"description": description, "content": {"application/json": {"schema": _REF}}},
                )
            headers = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}
            for status in ("429", "503"):
                responses[status].setdefault("headers", headers)
            responses["405"].setdefault("headers", {"Allow": {"schema": {"type": "string"}}})
    return schema


class EdgeAPI(FastAPI):
    """A FastAPI app whose OpenAPI document declares the edge's answers on every ``/v1``
    operation (see :func:`document_edge`)."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = document_edge(super().openapi())
        return self.openapi_schema


def install_edge(app: FastAPI, settings: EdgeSettings) -> None:
    """Add the edge middleware. Call it before ``install_observability``: the request metrics
    then wrap it and count what the edge refuses too."""
    app.add_middleware(EdgeMiddleware, settings=settings)
