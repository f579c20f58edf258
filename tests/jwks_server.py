"""A stand-in for the platform's JWKS endpoint: real HTTP on a free loopback port.

The keys it publishes and the status it answers with can be changed while it runs (the platform
rotating its keys, or failing); it counts the fetches it answers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from koalr_devstack.processes import free_port


@dataclass
class Platform:
    """What the JWKS endpoint publishes, and how often it was asked."""

    url: str = ""
    keys: list[dict[str, Any]] = field(default_factory=list)
    fetches: int = 0
    status: int = 200
    document: Any = None
    """When set, served as it is instead of ``{"keys": keys}`` (a broken answer)."""


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


def ed_jwk(key: ed25519.Ed25519PrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid}  # no `alg`: EdDSA follows from `kty: OKP`, `crv: Ed25519`


@asynccontextmanager
async def serve_jwks(keys: list[dict[str, Any]]) -> AsyncIterator[Platform]:
    state = Platform(keys=keys)

    async def jwks(_: Request) -> JSONResponse:
        state.fetches += 1
        body = {"keys": state.keys} if state.document is None else state.document
        return JSONResponse(body, status_code=state.status)

    app = Starlette(routes=[Route("/.well-known/jwks.json", jwks)])
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # the server failed to start: raise its error
        await asyncio.sleep(0.02)
    state.url = f"http://127.0.0.1:{port}/.well-known/jwks.json"
    try:
        yield state
    finally:
        server.should_exit = True
        await task
