from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest

from koalr_runtime.auth import JwtAuthenticator, Principal, authorize
from koalr_runtime.http import ApiError

SECRET = "test-secret-with-enough-length-for-hs256"


def token(secret: str = SECRET, /, **claims: Any) -> str:
    body: dict[str, object] = {"sub": "u1", "org_id": "org_1", "role": "admin"}
    body["exp"] = int(time.time()) + 300
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm="HS256")


@pytest.fixture
def auth() -> JwtAuthenticator:
    return JwtAuthenticator(SECRET, leeway_s=0)


async def _fails(auth: JwtAuthenticator, header: str | None) -> ApiError:
    with pytest.raises(ApiError) as exc:
        await auth.authenticate(header)
    return exc.value


async def test_valid_token(auth: JwtAuthenticator) -> None:
    principal = await auth.authenticate(f"Bearer {token(email='a@x.io')}")
    assert principal == Principal(sub="u1", org_id="org_1", role="admin", email="a@x.io")


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "unauthorized"),
        ("", "unauthorized"),
        ("Basic abc", "unauthorized"),
        ("Bearer ", "unauthorized"),
        ("Bearer not.a.jwt", "invalid_token"),
    ],
)
async def test_missing_or_malformed(auth: JwtAuthenticator, header: str | None, code: str) -> None:
    err = await _fails(auth, header)
    assert (err.status, err.code) == (401, code)


async def test_expired(auth: JwtAuthenticator) -> None:
    err = await _fails(auth, f"Bearer {token(exp=int(time.time()) - 10)}")
    assert (err.status, err.code) == (401, "token_expired")


async def test_wrong_signature(auth: JwtAuthenticator) -> None:
    err = await _fails(auth, f"Bearer {token('another-secret-of-enough-length-for-hs256')}")
    assert (err.status, err.code) == (401, "invalid_token")


async def test_alg_none_is_rejected(auth: JwtAuthenticator) -> None:
    def b64(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    unsigned = (
        b64({"alg": "none", "typ": "JWT"})
        + "."
        + b64({"sub": "u1", "org_id": "org_1", "role": "admin", "exp": int(time.time()) + 60})
        + "."
    )
    err = await _fails(auth, f"Bearer {unsigned}")
    assert (err.status, err.code) == (401, "invalid_token")


@pytest.mark.parametrize("missing", ["exp", "org_id", "role", "sub"])
async def test_required_claims(auth: JwtAuthenticator, missing: str) -> None:
    err = await _fails(auth, f"Bearer {token(**{missing: None})}")
    assert (err.status, err.code) == (401, "invalid_token")


async def test_unknown_role(auth: JwtAuthenticator) -> None:
    err = await _fails(auth, f"Bearer {token(role='owner')}")
    assert err.status == 401


def test_authorize_org_and_role() -> None:
    admin = Principal(sub="u", org_id="org_1", role="admin")
    member = Principal(sub="u", org_id="org_1", role="member")
    authorize(admin, "org_1", admin_only=True)
    authorize(member, "org_1", admin_only=False)
    with pytest.raises(ApiError) as other_org:
        authorize(admin, "org_2", admin_only=False)
    assert (other_org.value.status, other_org.value.code) == (403, "forbidden")
    with pytest.raises(ApiError) as low_role:
        authorize(member, "org_1", admin_only=True)
    assert (low_role.value.status, low_role.value.code) == (403, "admin_only")


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        JwtAuthenticator("short")


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
async def test_numeric_dates_must_be_numbers(auth: JwtAuthenticator, claim: str) -> None:
    """RFC 7519 NumericDate: a numeric string is not one, even when it would be in range."""
    valid = {"exp": int(time.time()) + 300, "nbf": int(time.time()) - 60}
    valid["iat"] = valid["nbf"]
    assert await auth.authenticate(f"Bearer {token(**valid)}")
    err = await _fails(auth, f"Bearer {token(**{**valid, claim: str(valid[claim])})}")
    assert (err.status, err.code) == (401, "invalid_token")
    assert claim in err.message


async def test_boolean_exp_is_not_a_number(auth: JwtAuthenticator) -> None:
    err = await _fails(auth, f"Bearer {token(exp=True)}")
    assert err.status == 401


def test_a_secret_or_a_jwks_is_required() -> None:
    with pytest.raises(ValueError, match="KOALR_JWKS_URL"):
        JwtAuthenticator(None)
