"""JWT authentication of the platform's callers (HS256, ``KOALR_JWT_SECRET``).

Claims: ``sub``, ``org_id``, ``role`` (``admin`` | ``member``), ``exp``, optional ``email``.
Missing, malformed, expired or wrongly signed tokens are 401; a token for another org or with
too low a role is 403 (see :func:`authorize`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jwt

from koalr_contracts import ORG_ID_RULE, has_control_character, is_org_id
from koalr_runtime.http import ApiError

Role = Literal["admin", "member"]


@dataclass(frozen=True, slots=True)
class Principal:
    sub: str
    org_id: str
    role: Role
    email: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class JwtAuthenticator:
    def __init__(self, secret: str, *, leeway_s: int = 30) -> None:
        if len(secret.encode()) < 32:
            raise ValueError("KOALR_JWT_SECRET must be at least 32 bytes (RFC 7518 for HS256)")
        self._secret = secret
        self._leeway_s = leeway_s

    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise ApiError(401, "unauthorized", "Send an `Authorization: Bearer <JWT>` header.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthorized", "The Authorization header must be `Bearer <JWT>`.")
        try:
            claims = jwt.decode(
                token.strip(),
                self._secret,
                algorithms=["HS256"],
                leeway=self._leeway_s,
                options={"require": ["exp", "sub", "org_id", "role"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise ApiError(401, "token_expired", "The token has expired; get a new one.") from exc
        except jwt.InvalidSignatureError as exc:
            raise ApiError(401, "invalid_token", "The token signature is not valid.") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise ApiError(
                401, "invalid_token", f"The token lacks the `{exc.claim}` claim."
            ) from exc
        except jwt.InvalidTokenError as exc:
            raise ApiError(401, "invalid_token", "The token is malformed or not HS256.") from exc
        role = claims.get("role")
        org_id = claims.get("org_id")
        sub = claims.get("sub")
        if role not in ("admin", "member"):
            raise ApiError(401, "invalid_token", "The token's role must be `admin` or `member`.")
        if not isinstance(org_id, str) or not org_id or not isinstance(sub, str) or not sub:
            raise ApiError(401, "invalid_token", "The token's `org_id` and `sub` must be strings.")
        if not is_org_id(org_id):
            raise ApiError(
                401, "invalid_token", f"The token's `org_id` may only contain {ORG_ID_RULE}."
            )
        if has_control_character(sub):
            raise ApiError(401, "invalid_token", "The token's `sub` holds a control character.")
        email = claims.get("email")
        return Principal(
            sub=sub, org_id=org_id, role=role, email=email if isinstance(email, str) else None
        )


def authorize(principal: Principal, org_id: str, *, admin_only: bool) -> None:
    """403 unless the principal belongs to ``org_id`` (and is an admin when required)."""
    if principal.org_id != org_id:
        raise ApiError(403, "forbidden", "This token is not valid for this organisation.")
    if admin_only and not principal.is_admin:
        raise ApiError(403, "admin_only", "Only organisation admins can use this endpoint.")
