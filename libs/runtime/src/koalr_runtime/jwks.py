"""The platform's signing keys, read from its JWKS endpoint (``KOALR_JWKS_URL``).

Keys are fetched with httpx (so the event loop never blocks; PyJWT's ``PyJWKClient`` fetches
with ``urllib`` synchronously) and built with PyJWT's :class:`jwt.PyJWK`. They are cached and
fetched again when a token names a ``kid`` the cache lacks (the platform rotated its keys) or
when the cache is older than ``max_age_s`` (so a key the platform removed stops verifying).
Fetches are rate-limited to one per ``refresh_min_interval_s``, so a flood of tokens with made-up
``kid`` values costs the platform one request per interval, and concurrent waiters share it.
The interval is measured with this process's monotonic clock; no clock of another machine
takes part.

Only keys usable for the algorithms the services accept are kept: ``RS256`` (``kty: RSA``)
and ``EdDSA`` (``kty: OKP``, ``crv: Ed25519``). A symmetric (``oct``) key published in the set
is ignored, so a JWKS can never turn into an HMAC secret.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import jwt
from prometheus_client import Counter

from koalr_runtime.logs import get_logger

log = get_logger(__name__)

JWKS_FETCHES = Counter(
    "koalr_jwks_fetches_total",
    "Fetches of the platform's JWKS, by outcome (ok, failed).",
    ["outcome"],
)

JWKS_ALGORITHMS: Mapping[str, str] = {"RS256": "RSA", "EdDSA": "OKP"}
"""The asymmetric algorithms a JWKS key may verify, with the key type each requires."""


class JwksKeys:
    """A cached, self-refreshing map ``kid`` → key from one JWKS URL."""

    def __init__(
        self,
        url: str,
        *,
        http: httpx.AsyncClient | None = None,
        timeout_s: float = 5.0,
        refresh_min_interval_s: float = 30.0,
        max_age_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            headers={"Accept": "application/json", "User-Agent": "koalr-jwks"},
        )
        self._refresh_min_interval_s = refresh_min_interval_s
        self._max_age_s = max_age_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self.fetches = 0
        """Fetch attempts so far by this instance (``koalr_jwks_fetches_total`` counts them all)."""

    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The key named ``kid``, fetching the set again if it is unknown or the cache is old."""
        if kid in self._keys and not self._stale():
            return self._keys[kid]
        await self._refresh()
        return self._keys.get(kid)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._max_age_s

    def _may_fetch(self) -> bool:
        return (
            self._attempted_at is None
            or self._clock() - self._attempted_at >= self._refresh_min_interval_s
        )

    async def _refresh(self) -> None:
        async with self._lock:
            # A waiter that queued behind a fetch finds it done and does not fetch again.
            if not self._may_fetch():
                return
            self._attempted_at = self._clock()
            self.fetches += 1
            try:
                response = await self._http.get(self._url)
                response.raise_for_status()
                keys = _usable_keys(response.json())
            except (httpx.HTTPError, ValueError, TypeError) as exc:
                # The cached keys stay in use: a platform outage must not log everyone out.
                JWKS_FETCHES.labels("failed").inc()
                log.warning(
                    "jwks.fetch_failed", error_type=type(exc).__name__, cached=len(self._keys)
                )
                return
            JWKS_FETCHES.labels("ok").inc()
            self._keys = keys
            self._fetched_at = self._clock()
            log.info("jwks.fetched", keys=sorted(self._keys))


def _usable_keys(document: Any) -> dict[str, jwt.PyJWK]:
    """The signing keys of a JWKS document, by ``kid``; unusable entries are skipped.

    A document without a ``keys`` list is not a JWKS: ``TypeError``, so the cache is kept."""
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise TypeError("the JWKS document has no `keys` list")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        kty = entry.get("kty")
        alg = entry.get("alg") or {"RSA": "RS256", "OKP": "EdDSA"}.get(str(kty))
        if not isinstance(kid, str) or not kid:
            log.warning("jwks.key_skipped", reason="no kid", kty=str(kty))
            continue
        if not isinstance(alg, str) or JWKS_ALGORITHMS.get(alg) != kty:
            log.warning("jwks.key_skipped", reason="unsupported", kid=kid, kty=str(kty))
            continue
        if entry.get("use", "sig") != "sig":
            log.warning("jwks.key_skipped", reason="not a signing key", kid=kid)
            continue
        try:
            keys[kid] = jwt.PyJWK(entry, algorithm=alg)
        except jwt.PyJWTError as exc:
            log.warning("jwks.key_skipped", reason=type(exc).__name__, kid=kid)
    return keys
