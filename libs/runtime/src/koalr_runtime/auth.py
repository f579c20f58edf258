"""JWT authentication of the platform's callers.

Two kinds of keys may be configured, alone or together:

- ``KOALR_JWT_SECRET``: an HS256 secret shared with local callers (the operator CLI, the demo).
- ``KOALR_JWKS_URL``: the platform's public keys (RS256 and EdDSA), selected by the token's
  ``kid`` and rotated without a restart (see :mod:`koalr_runtime.jwks`). ``KOALR_JWT_ISSUER`` and
  ``KOALR_JWT_AUDIENCE``, when set, are required of these tokens.

Each key verifies only its own algorithm: the token's ``alg`` header picks the kind of key
(``HS256`` → the secret, ``RS256``/``EdDSA`` → the JWKS key named by ``kid``), and that key must
be of exactly that algorithm. So an HS256 token "signed" with the platform's public key, an
``alg: none`` token or an RS256 header on an Ed25519 key are all refused.

Claims: ``sub``, ``org_id``, ``role`` (``admin`` | ``member``), ``exp``, optional ``email``.
``exp``, ``nbf`` and ``iat`` must be JSON numbers (RFC 7519 NumericDate), not numeric strings.
Missing, malformed, expired or wrongly signed tokens are 401; a token for another org or with
too low a role is 403 (see :func:`authorize`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import jwt

from koalr_contracts import ORG_ID_RULE, has_control_character, is_org_id
from koalr_runtime.http import ApiError
from koalr_runtime.jwks import JWKS_ALGORITHMS, JwksKeys
from koalr_runtime.settings import AuthSettings

Role = Literal["admin", "member"]

_REQUIRED = ["exp", "sub", "org_id", "role"]
_NUMERIC_DATES = ("exp", "nbf", "iat")


@dataclass(frozen=True, slots=True)
class Principal:
    sub: str
    org_id: str
    role: Role
    email: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _invalid(message: str) -> ApiError:
    return ApiError(401, "invalid_token", message)


class JwtAuthenticator:
    """Verifies bearer tokens with the HS256 secret, the platform's JWKS, or both."""

    def __init__(
        self,
        secret: str | None,
        *,
        jwks: JwksKeys | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        leeway_s: int = 30,
    ) -> None:
        if secret is None and jwks is None:
            raise ValueError("configure KOALR_JWT_SECRET, KOALR_JWKS_URL or both")
        if secret is not None and len(secret.encode()) < 32:
            raise ValueError("KOALR_JWT_SECRET must be at least 32 bytes (RFC 7518 for HS256)")
        self._secret = secret
        self._jwks = jwks
        self._issuer = issuer
        self._audience = audience
        self._leeway_s = leeway_s

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> JwtAuthenticator:
        jwks = (
            JwksKeys(
                settings.jwks_url,
                timeout_s=settings.jwks_timeout_s,
                refresh_min_interval_s=settings.jwks_refresh_min_interval_s,
                max_age_s=settings.jwks_cache_s,
            )
            if settings.jwks_url
            else None
        )
        return cls(
            settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
            jwks=jwks,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway_s=settings.jwt_leeway_s,
        )

    async def aclose(self) -> None:
        if self._jwks is not None:
            await self._jwks.aclose()

    async def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise ApiError(401, "unauthorized", "Send an `Authorization: Bearer <JWT>` header.")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "unauthorized", "The Authorization header must be `Bearer <JWT>`.")
        claims = await self._verified_claims(token)
        return _principal(claims)

    async def _verified_claims(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise _invalid("The token is malformed.") from exc
        alg, key, issuer, audience = await self._key_for(header)
        required = [*_REQUIRED, *(["iss"] if issuer else []), *(["aud"] if audience else [])]
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                leeway=self._leeway_s,
                issuer=issuer,
                audience=audience,
                options={"require": required},
            )
        except jwt.ExpiredSignatureError as exc:
            raise ApiError(401, "token_expired", "The token has expired; get a new one.") from exc
        except jwt.InvalidTokenError as exc:
            raise _invalid(_refusal(exc)) from exc
        for name in _NUMERIC_DATES:
            value = claims.get(name)
            if name in claims and (not isinstance(value, int | float) or isinstance(value, bool)):
                raise _invalid(f"The token's `{name}` must be a number (RFC 7519 NumericDate).")
        return claims

    async def _key_for(self, header: dict[str, Any]) -> tuple[str, Any, str | None, str | None]:
        """The algorithm, key, issuer and audience a token with this header is checked with."""
        alg = header.get("alg")
        if alg == "HS256" and self._secret is not None:
            return alg, self._secret, None, None
        if alg not in JWKS_ALGORITHMS or self._jwks is None:
            raise _invalid("The token is not signed with an accepted algorithm.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _invalid("The token has no `kid` header naming the platform's key.")
        found = await self._jwks.key(kid)
        if found is None:
            raise _invalid("The token's `kid` names no key of the platform.")
        if found.algorithm_name != alg:
            raise _invalid("The token's algorithm does not match its key.")
        return alg, found.key, self._issuer, self._audience


def _refusal(exc: jwt.InvalidTokenError) -> str:
    """The sentence a caller gets for a token PyJWT refused (expiry is handled apart)."""
    if isinstance(exc, jwt.InvalidSignatureError):
        return "The token signature is not valid."
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"The token lacks the `{exc.claim}` claim."
    if isinstance(exc, jwt.InvalidIssuerError):
        return "The token's issuer (`iss`) is not accepted."
    if isinstance(exc, jwt.InvalidAudienceError):
        return "The token's audience (`aud`) is not accepted."
    return "The token is malformed."


def _principal(claims: dict[str, Any]) -> Principal:
    role = claims.get("role")
    org_id = claims.get("org_id")
    sub = claims.get("sub")
    if role not in ("admin", "member"):
        raise _invalid("The token's role must be `admin` or `member`.")
    if not isinstance(org_id, str) or not org_id or not isinstance(sub, str) or not sub:
        raise _invalid("The token's `org_id` and `sub` must be strings.")
    if not is_org_id(org_id):
        raise _invalid(f"The token's `org_id` may only contain {ORG_ID_RULE}.")
    if has_control_character(sub):
        raise _invalid("The token's `sub` holds a control character.")
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
