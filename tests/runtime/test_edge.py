"""The shared HTTP edge: what is refused before a route runs, on a small app built like the
services' (same error handlers, same middleware), and through a real uvicorn for what only the
server sees (an unparseable request line)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import jwt
import pytest
import uvicorn
from fastapi import Body
from fastapi.staticfiles import StaticFiles

from koalr_runtime.auth import JwtAuthenticator
from koalr_runtime.edge import EdgeAPI, TokenBuckets, install_edge
from koalr_runtime.http import ApiError, install_error_handlers, install_observability
from koalr_runtime.settings import EdgeSettings
from koalr_runtime.wire import json_error_protocol

SECRET = "edge-tests-secret-that-is-long-enough-for-hs256"


def _token(**claims: Any) -> str:
    body = {"sub": "u1", "org_id": "acme", "role": "admin", "exp": int(time.time()) + 300}
    return jwt.encode({**body, **claims}, SECRET, algorithm="HS256")


def _app(**limits: Any) -> EdgeAPI:
    settings = EdgeSettings(
        **{
            "http_max_body_bytes": 2048,
            "http_rate_limit_per_s": 1000.0,
            "http_rate_limit_burst": 1000,
            **limits,
        }
    )
    app = EdgeAPI()
    install_error_handlers(app)
    install_edge(app, settings)
    install_observability(app, "edge-tests")
    app.mount("/static", StaticFiles(directory=".", html=True, check_dir=False), name="static")
    authenticator = JwtAuthenticator(SECRET)

    @app.get("/v1/orgs/{org_id}/things")
    async def things(org_id: str, q: str = "") -> dict[str, str]:
        return {"org_id": org_id, "q": q}

    @app.post("/v1/orgs/{org_id}/things")
    async def post_thing(org_id: str, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        return {"org_id": org_id, "keys": len(body)}

    @app.get("/v1/orgs/{org_id}/slow")
    async def slow(org_id: str) -> dict[str, str]:
        await asyncio.sleep(5)
        return {"org_id": org_id}

    app.state.authenticator = authenticator
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as http:
        yield http


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    return body


@pytest.mark.parametrize(
    "path",
    [
        "/v1/orgs/ac%00me/things",
        "/v1/orgs/acme/things?q=a%00b",
        "/v1/orgs/acme/things?q=line%0Abreak",
        "/v1/orgs/acme%7F/things",
        "/v1/orgs/" + "a" * 129 + "/things",
        "/v1/orgs/%C3%A9t%C3%A9/things",
        "/v1/orgs/a%20b/things",
        "/v1/orgs/acme%0A/things",
    ],
)
async def test_bad_identifiers_are_422_before_any_route(
    client: httpx.AsyncClient, path: str
) -> None:
    _error(await client.get(path), 422, "invalid_request")


async def test_good_identifiers_pass(client: httpx.AsyncClient) -> None:
    org = "Org_1.a:b-" + "x" * 118
    response = await client.get(f"/v1/orgs/{org}/things", params={"q": "ünïcode ok"})
    assert response.status_code == 200
    assert response.json() == {"org_id": org, "q": "ünïcode ok"}


async def test_token_claims_must_follow_the_identifier_rules() -> None:
    authenticator = JwtAuthenticator(SECRET)
    for claims in ({"org_id": "ac\x00me"}, {"org_id": "x" * 129}, {"sub": "u\x001"}):
        with pytest.raises(ApiError) as caught:
            await authenticator.authenticate(f"Bearer {_token(**claims)}")
        assert (caught.value.status, caught.value.code) == (401, "invalid_token")
    assert (await authenticator.authenticate(f"Bearer {_token()}")).org_id == "acme"


async def test_declared_length_over_the_limit_is_413_unread(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/orgs/acme/things", content=b"{" + b" " * 4096 + b"}")
    _error(response, 413, "payload_too_large")


async def test_streamed_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    chunks_sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        yield b'{"a": "'
        for _ in range(100):
            chunks_sent += 1
            yield b"x" * 512
        yield b'"}'

    response = await client.post("/v1/orgs/acme/things", content=chunks())
    _error(response, 413, "payload_too_large")
    # Refused once the limit passed (2048 bytes = 4 chunks), not after the whole body.
    assert chunks_sent < 10


async def test_body_within_the_limit_is_served(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/orgs/acme/things", json={"a": "x" * 1000})
    assert (response.status_code, response.json()) == (200, {"org_id": "acme", "keys": 1})


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": "\xff\xfe"}',  # invalid UTF-8
        b'{"a": ' * 100_000 + b"1" + b"}" * 100_000,  # nested too deeply
        b'{"a": ' + b"9" * 5000 + b"}",  # an integer past Python's digit limit
    ],
)
async def test_unreadable_json_is_400_json(body: bytes) -> None:
    transport = httpx.ASGITransport(app=_app(http_max_body_bytes=1024 * 1024))
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as http:
        response = await http.post(
            "/v1/orgs/acme/things", content=body, headers={"content-type": "application/json"}
        )
    _error(response, 400, "bad_request")


async def test_rate_limit_per_token_with_retry_after() -> None:
    transport = httpx.ASGITransport(app=_app(http_rate_limit_per_s=0.5, http_rate_limit_burst=3))
    first, second = {"authorization": "Bearer one"}, {"authorization": "Bearer two"}
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as http:
        statuses = [
            (await http.get("/v1/orgs/acme/things", headers=first)).status_code for _ in range(3)
        ]
        assert statuses == [200, 200, 200]
        limited = await http.get("/v1/orgs/acme/things", headers=first)
        _error(limited, 429, "rate_limited")
        assert limited.headers["retry-after"] == "2"  # one token every 2 s
        # Another token has its own bucket; health and metrics are never limited.
        assert (await http.get("/v1/orgs/acme/things", headers=second)).status_code == 200
        assert (await http.get("/healthz", headers=first)).status_code == 200


def test_token_buckets_refill_and_stay_bounded() -> None:
    buckets = TokenBuckets(rate=10.0, burst=2, max_keys=3)
    assert [buckets.take(b"k", now=0.0) for _ in range(2)] == [0.0, 0.0]
    assert buckets.take(b"k", now=0.0) == pytest.approx(0.1)
    assert buckets.take(b"k", now=0.15) == 0.0  # 1.5 tokens refilled, one taken
    for key in (b"a", b"b", b"c", b"d"):
        buckets.take(key, now=1.0)
    assert len(buckets._buckets) == 3


async def test_slow_request_is_503_request_timeout() -> None:
    transport = httpx.ASGITransport(app=_app(http_request_timeout_s=0.2))
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as http:
        started = time.monotonic()
        response = await http.get("/v1/orgs/acme/slow")
    assert time.monotonic() - started < 2
    _error(response, 503, "request_timeout")
    assert response.headers["retry-after"] == "1"


async def test_redirects_never_echo_the_host(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/orgs/acme/things/", headers={"host": "evil.example"})
    assert response.status_code == 307
    assert response.headers["location"] == "/v1/orgs/acme/things"


@pytest.mark.parametrize("method", ["TRACE", "PATCH", "DELETE"])
async def test_method_not_allowed_carries_allow(client: httpx.AsyncClient, method: str) -> None:
    response = await client.request(method, "/v1/orgs/acme/things")
    _error(response, 405, "method_not_allowed")
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}


def test_openapi_declares_the_edge_answers_and_the_org_id_rule() -> None:
    spec = _app().openapi()
    get_op = spec["paths"]["/v1/orgs/{org_id}/things"]["get"]
    post_op = spec["paths"]["/v1/orgs/{org_id}/things"]["post"]
    assert {"401", "403", "405", "413", "422", "429", "503"} <= set(get_op["responses"])
    assert "400" not in get_op["responses"]
    assert "400" in post_op["responses"]
    assert "Retry-After" in post_op["responses"]["429"]["headers"]
    assert "Allow" in post_op["responses"]["405"]["headers"]
    (org_param,) = [p for p in get_op["parameters"] if p["name"] == "org_id"]
    assert org_param["schema"]["pattern"] == "^[A-Za-z0-9_.:-]+$"
    assert org_param["schema"]["maxLength"] == 128
    error = spec["components"]["schemas"]["EdgeError"]
    assert error["properties"]["error"] == {"$ref": "#/components/schemas/EdgeErrorDetail"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_unparseable_request_line_gets_the_json_error_body() -> None:
    port = _free_port()
    config = uvicorn.Config(
        _app(),
        host="127.0.0.1",
        port=port,
        log_config=None,
        http=json_error_protocol(),
        lifespan="off",
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /v1 /orgs HTTP/1.1 garbage\r\nHost: x\r\n\r\n")
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=5)
        writer.close()
    finally:
        server.should_exit = True
        await serving
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body)["error"]["code"] == "bad_request"
