"""JWTs as the platform would sign them (HS256 with KOALR_JWT_SECRET)."""

from __future__ import annotations

import time

import jwt


def make_token(
    secret: str,
    *,
    org_id: str,
    role: str = "admin",
    sub: str = "demo-user",
    email: str | None = None,
    ttl_s: int = 12 * 3600,
) -> str:
    claims: dict[str, object] = {
        "sub": sub,
        "org_id": org_id,
        "role": role,
        "exp": int(time.time()) + ttl_s,
    }
    if email:
        claims["email"] = email
    return jwt.encode(claims, secret, algorithm="HS256")
