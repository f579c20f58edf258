"""Platform tokens: RS256 and EdDSA keys served by a real JWKS endpoint over HTTP.

The endpoint (``tests.jwks_server``) is served by uvicorn on a free port; the tests change the
keys it publishes to play the platform rotating them, and count the fetches it answers.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from prometheus_client import REGISTRY

from koalr_runtime.auth import JwtAuthenticator, Principal
from koalr_runtime.http import ApiError
from koalr_runtime.jwks import JwksKeys
from tests.jwks_server import Platform, ed_jwk, rsa_jwk, serve_jwks

SECRET = "test-secret-with-enough-length-for-hs256"
ISSUER = "https://platform.example"
AUDIENCE = "koalr-analytics"


RSA_1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ED_1 = ed25519.Ed25519PrivateKey.generate()


def claims(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sub": "platform-user-7",
        "org_id": "org_1",
        "role": "admin",
        "email": "ada@example.com",
        "exp": int(time.time()) + 300,
        "iss": ISSUER,
        "aud": AUDIENCE,
    }
    body.update(extra)
    return {k: v for k, v in body.items() if v is not None}


def signed(key: Any, alg: str, kid: str | None, **extra: Any) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims(**extra), key, algorithm=alg, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], body: dict[str, Any], sign: Any) -> str:
    """A token built by hand, for the forms a library refuses to produce."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(body).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


@pytest.fixture(scope="module")
async def platform() -> AsyncIterator[Platform]:
    async with serve_jwks([rsa_jwk(RSA_1, "rsa-1"), ed_jwk(ED_1, "ed-1")]) as state:
        yield state


@pytest.fixture
def platform_keys(platform: Platform) -> Platform:
    """The platform publishing its usual two keys again, answering normally."""
    platform.keys = [rsa_jwk(RSA_1, "rsa-1"), ed_jwk(ED_1, "ed-1")]
    platform.status = 200
    platform.document = None
    return platform


def authenticator(
    platform: Platform, *, secret: str | None = SECRET, min_interval_s: float = 0.0
) -> JwtAuthenticator:
    return JwtAuthenticator(
        secret,
        jwks=JwksKeys(platform.url, refresh_min_interval_s=min_interval_s, max_age_s=300),
        issuer=ISSUER,
        audience=AUDIENCE,
        leeway_s=0,
    )


async def refused(auth: JwtAuthenticator, token: str) -> ApiError:
    with pytest.raises(ApiError) as exc:
        await auth.authenticate(f"Bearer {token}")
    assert exc.value.status == 401
    return exc.value


async def test_rs256_and_eddsa_tokens_from_the_jwks_are_accepted(platform_keys: Platform) -> None:
    auth = authenticator(platform_keys)
    expected = Principal(
        sub="platform-user-7", org_id="org_1", role="admin", email="ada@example.com"
    )
    assert await auth.authenticate(f"Bearer {signed(RSA_1, 'RS256', 'rsa-1')}") == expected
    assert await auth.authenticate(f"Bearer {signed(ED_1, 'EdDSA', 'ed-1')}") == expected
    await auth.aclose()


async def test_the_hs256_secret_keeps_working_beside_the_jwks(platform_keys: Platform) -> None:
    auth = authenticator(platform_keys)
    local = jwt.encode(claims(iss=None, aud=None), SECRET, algorithm="HS256")
    assert (await auth.authenticate(f"Bearer {local}")).sub == "platform-user-7"
    await auth.aclose()


async def test_rotation_needs_no_restart(platform_keys: Platform) -> None:
    auth = authenticator(platform_keys)
    old = signed(RSA_1, "RS256", "rsa-1")
    assert (await auth.authenticate(f"Bearer {old}")).org_id == "org_1"

    # The platform rotates: a new key appears and the old one is withdrawn.
    platform_keys.keys = [rsa_jwk(RSA_2, "rsa-2")]
    new = signed(RSA_2, "RS256", "rsa-2")
    assert (await auth.authenticate(f"Bearer {new}")).org_id == "org_1"
    err = await refused(auth, old)
    assert err.code == "invalid_token"
    await auth.aclose()


async def test_a_withdrawn_key_stops_verifying_once_the_cache_is_old(
    platform_keys: Platform,
) -> None:
    now = [1000.0]
    keys = JwksKeys(
        platform_keys.url, refresh_min_interval_s=10, max_age_s=60, clock=lambda: now[0]
    )
    auth = JwtAuthenticator(None, jwks=keys, issuer=ISSUER, audience=AUDIENCE, leeway_s=0)
    token = signed(RSA_1, "RS256", "rsa-1")
    assert await auth.authenticate(f"Bearer {token}")
    platform_keys.keys = [rsa_jwk(RSA_2, "rsa-2")]
    now[0] += 30  # cache still fresh: the known key keeps verifying without a fetch
    assert await auth.authenticate(f"Bearer {token}")
    assert keys.fetches == 1
    now[0] += 31  # older than max_age_s: fetched again, and the withdrawn key is gone
    await refused(auth, token)
    assert keys.fetches == 2
    await auth.aclose()


async def test_unknown_kids_cannot_make_it_hammer_the_platform(platform_keys: Platform) -> None:
    auth = authenticator(platform_keys, min_interval_s=60)
    assert await auth.authenticate(f"Bearer {signed(RSA_1, 'RS256', 'rsa-1')}")
    before = platform_keys.fetches
    made_up = [signed(RSA_1, "RS256", f"made-up-{i}") for i in range(40)]
    results = await asyncio.gather(
        *(auth.authenticate(f"Bearer {t}") for t in made_up), return_exceptions=True
    )
    assert all(isinstance(r, ApiError) and r.status == 401 for r in results)
    assert platform_keys.fetches == before  # the last fetch was under a minute ago
    await auth.aclose()


async def test_concurrent_unknown_kids_share_one_fetch(platform_keys: Platform) -> None:
    auth = authenticator(platform_keys, min_interval_s=60)
    before = platform_keys.fetches
    tokens = [signed(RSA_1, "RS256", "rsa-1") for _ in range(20)]
    principals = await asyncio.gather(*(auth.authenticate(f"Bearer {t}") for t in tokens))
    assert {p.sub for p in principals} == {"platform-user-7"}
    assert platform_keys.fetches == before + 1
    await auth.aclose()


async def test_forged_signature_is_refused(platform_keys: Platform) -> None:
    auth = authenticator(platform_keys)
    forged = signed(RSA_2, "RS256", "rsa-1")  # the right kid, someone else's key
    assert (await refused(auth, forged)).code == "invalid_token"
    await auth.aclose()


async def test_hs256_signed_with_the_public_key_is_refused(platform_keys: Platform) -> None:
    """Algorithm confusion: the RSA public key (PEM or JWK form) used as an HMAC secret."""
    auth = authenticator(platform_keys)
    pem = RSA_1.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for header in ({"alg": "HS256", "typ": "JWT"}, {"alg": "HS256", "kid": "rsa-1"}):
        for secret in (pem, pem.strip(), json.dumps(rsa_jwk(RSA_1, "rsa-1")).encode()):
            token = hand_made(
                header, claims(), lambda data, s=secret: hmac.new(s, data, hashlib.sha256).digest()
            )
            assert (await refused(auth, token)).code == "invalid_token"
    # Without an HS256 secret configured, no HS256 token is accepted at all.
    jwks_only = authenticator(platform_keys, secret=None)
    token = hand_made({"alg": "HS256", "kid": "rsa-1"}, claims(), lambda _: b"x" * 32)
    assert (await refused(jwks_only, token)).code == "invalid_token"
    await auth.aclose()
    await jwks_only.aclose()


async def test_alg_none_is_refused(platform_keys: Platform) -> None:
    auth = authenticator(platform_keys)
    for header in ({"alg": "none"}, {"alg": "none", "kid": "rsa-1"}, {"alg": "None"}):
        token = hand_made(header, claims(), lambda _: b"")
        assert (await refused(auth, token)).code == "invalid_token"
    await auth.aclose()


async def test_the_header_algorithm_must_be_the_keys_own(platform_keys: Platform) -> None:
    auth = authenticator(platform_keys)
    mismatch = "does not match its key"
    # RS256 header naming the Ed25519 key (signed with the RSA key, so only the key check stops it).
    assert mismatch in (await refused(auth, signed(RSA_1, "RS256", "ed-1"))).message
    # EdDSA header naming the RSA key.
    assert mismatch in (await refused(auth, signed(ED_1, "EdDSA", "rsa-1"))).message
    # An algorithm the JWKS path does not accept at all.
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    err = await refused(auth, signed(other, "PS256", "rsa-1"))
    assert "not signed with an accepted algorithm" in err.message
    await auth.aclose()


async def test_a_symmetric_key_in_the_jwks_is_never_used(platform_keys: Platform) -> None:
    sym = b"s" * 32
    platform_keys.keys = [
        {"kty": "oct", "kid": "sym", "k": b64(sym), "alg": "HS256"},
        {"kty": "oct", "kid": "sym-rs", "k": b64(sym), "alg": "RS256"},
        rsa_jwk(RSA_1, "rsa-1"),
    ]
    keys = JwksKeys(platform_keys.url, refresh_min_interval_s=0)
    assert await keys.key("sym") is None
    assert await keys.key("sym-rs") is None
    assert await keys.key("rsa-1") is not None
    auth = JwtAuthenticator(None, jwks=keys, issuer=ISSUER, audience=AUDIENCE, leeway_s=0)
    token = jwt.encode(claims(), sym, algorithm="HS256", headers={"kid": "sym"})
    assert (await refused(auth, token)).code == "invalid_token"
    await auth.aclose()


async def test_a_token_without_kid_is_refused(platform_keys: Platform) -> None:
    auth = authenticator(platform_keys)
    assert (await refused(auth, signed(RSA_1, "RS256", None))).code == "invalid_token"
    await auth.aclose()


async def test_expired_and_numeric_string_exp_are_refused(platform_keys: Platform) -> None:
    auth = authenticator(platform_keys)
    expired = signed(RSA_1, "RS256", "rsa-1", exp=int(time.time()) - 5)
    assert (await refused(auth, expired)).code == "token_expired"
    as_string = signed(ED_1, "EdDSA", "ed-1", exp=str(int(time.time()) + 300))
    err = await refused(auth, as_string)
    assert err.code == "invalid_token"
    assert "NumericDate" in err.message
    await auth.aclose()


@pytest.mark.parametrize(
    ("extra", "word"),
    [
        ({"iss": "https://evil.example"}, "issuer"),
        ({"iss": None}, "iss"),
        ({"aud": "another-service"}, "audience"),
        ({"aud": None}, "aud"),
    ],
)
async def test_wrong_or_missing_issuer_and_audience_are_refused(
    platform_keys: Platform, extra: dict[str, Any], word: str
) -> None:
    auth = authenticator(platform_keys)
    err = await refused(auth, signed(RSA_1, "RS256", "rsa-1", **extra))
    assert err.code == "invalid_token"
    assert word in err.message
    await auth.aclose()


async def test_an_unreachable_jwks_refuses_with_401_and_keeps_cached_keys(
    platform_keys: Platform,
) -> None:
    auth = authenticator(platform_keys)
    token = signed(RSA_1, "RS256", "rsa-1")
    assert await auth.authenticate(f"Bearer {token}")
    platform_keys.status = 503
    failed_before = REGISTRY.get_sample_value("koalr_jwks_fetches_total", {"outcome": "failed"})
    # An unknown kid triggers a fetch that fails: 401, and the cached key still verifies.
    assert (await refused(auth, signed(RSA_2, "RS256", "rsa-2"))).code == "invalid_token"
    failed_after = REGISTRY.get_sample_value("koalr_jwks_fetches_total", {"outcome": "failed"})
    assert (failed_after or 0) - (failed_before or 0) == 1
    assert await auth.authenticate(f"Bearer {token}")
    await auth.aclose()

    cold = authenticator(platform_keys)
    assert (await refused(cold, token)).code == "invalid_token"
    await cold.aclose()


async def test_a_document_that_is_not_a_jwks_keeps_the_cached_keys(platform_keys: Platform) -> None:
    auth = authenticator(platform_keys)
    token = signed(RSA_1, "RS256", "rsa-1")
    assert await auth.authenticate(f"Bearer {token}")
    platform_keys.document = {"keys": "not a list"}
    assert (await refused(auth, signed(RSA_2, "RS256", "rsa-2"))).code == "invalid_token"
    assert await auth.authenticate(f"Bearer {token}")
    # A real set without the old key does replace the cache (the platform withdrew it).
    platform_keys.document = None
    platform_keys.keys = [rsa_jwk(RSA_2, "rsa-2")]
    assert await auth.authenticate(f"Bearer {signed(RSA_2, 'RS256', 'rsa-2')}")
    await refused(auth, token)
    await auth.aclose()
