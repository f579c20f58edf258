"""The one HTTP layer of provider calls: pacing, transient failures, retries.

Transient (the same call may succeed later, so it is retried):

- a timeout (a stalled response is cut by the HTTP client's read timeout) or a connection error;
- HTTP 5xx;
- HTTP 2xx whose body is not valid JSON (a truncated answer);
- HTTP 429, waiting for ``Retry-After`` (seconds or an HTTP date) when the provider sends it.

Everything else is the provider's answer and is returned to the provider's client, which knows
what a 401, 403 or 404 means for its API. Retries and their exponential backoff with jitter come
from ``stamina``; :class:`RetryPolicy` bounds them (separate budgets for 429s and for the other
transient failures), and a hook hands ``Retry-After`` to ``stamina`` as the next wait.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, Final, Literal

import httpx
import stamina
from prometheus_client import Counter

from koalr_providers.errors import ProviderError, ProviderUnavailableError, RateLimitedError
from koalr_providers.pacing import Pacer
from koalr_runtime.logs import get_logger

log = get_logger(__name__)

HttpMethod = Literal["GET", "POST"]

PROVIDER_REQUESTS: Final = Counter(
    "koalr_provider_requests_total",
    "Calls to a provider API by provider, endpoint and outcome (HTTP status or error kind)",
    ["provider", "endpoint", "outcome"],
)
PROVIDER_RETRIES: Final = Counter(
    "koalr_provider_retries_total",
    "Retried provider calls by provider, endpoint and reason",
    ["provider", "endpoint", "reason"],
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long a call is retried.

    ``max_retries`` bounds retries after timeouts, connection errors, 5xx and invalid JSON;
    ``rate_limit_retries`` bounds retries after 429. Without a ``Retry-After`` the n-th wait is
    ``min(max_s, base_s * 2**(n-1) + jitter)`` with ``jitter`` uniform in ``[0, base_s]``.
    """

    max_retries: int = 4
    rate_limit_retries: int = 6
    base_s: float = 1.0
    max_s: float = 16.0


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: HttpMethod
    path: str
    bucket: str
    """The pacing bucket the provider counts this endpoint in."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A response that is not transient: its status, and its JSON body when it was 2xx."""

    status: int
    body: Any
    text: str


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def decode_json(content: bytes) -> Any:
    """A JSON body with every fractional number as an exact ``Decimal``."""
    return json.loads(content, parse_float=Decimal)


def short(text: str, limit: int = 200) -> str:
    """``text`` on one line, cut to ``limit`` characters (for messages about odd answers)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _TransientError(Exception):
    """One attempt failed transiently; ``outcome`` labels it, ``error`` is what callers see."""

    def __init__(self, outcome: str, error: ProviderError) -> None:
        super().__init__(error.message)
        self.outcome = outcome
        self.error = error


class _Budget:
    """The ``stamina`` hook: whether (and after how long) a failed attempt is retried."""

    def __init__(
        self, policy: RetryPolicy, provider: str, endpoint: Endpoint, deadline: float | None
    ) -> None:
        self._policy = policy
        self._provider = provider
        self._endpoint = endpoint
        self._deadline = deadline
        self.failures = 0
        self.throttled = 0

    def __call__(self, exc: Exception) -> bool | float:
        if not isinstance(exc, _TransientError):
            return False
        error = exc.error
        if isinstance(error, RateLimitedError):
            self.throttled += 1
            if self.throttled > self._policy.rate_limit_retries:
                return False
        else:
            self.failures += 1
            if self.failures > self._policy.max_retries:
                return False
        hinted = error.retry_after_s
        if (
            hinted is not None
            and self._deadline is not None
            and time.monotonic() + hinted >= self._deadline
        ):
            return False
        PROVIDER_RETRIES.labels(self._provider, self._endpoint.path, exc.outcome).inc()
        log.info(
            "provider.retry",
            provider=self._provider,
            endpoint=self._endpoint.path,
            reason=exc.outcome,
            attempt=self.failures + self.throttled,
            retry_after_s=hinted,
        )
        return True if hinted is None else hinted


class ProviderHttp:
    """Paced, retried calls to one provider with one credential.

    ``name`` is the provider's name in messages (``"Cursor"``), ``label`` in metrics and logs;
    ``team`` is the pacing scope of the credential. Without a ``pacer`` calls are not paced.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        name: str,
        label: str,
        auth: httpx.Auth,
        policy: RetryPolicy,
        pacer: Pacer | None = None,
        team: str = "",
    ) -> None:
        self._http = http
        self._name = name
        self._label = label
        self._auth = auth
        self._policy = policy
        self._pacer = pacer
        self._team = team
        self.calls = 0
        self.rate_limited = 0

    async def call(
        self,
        endpoint: Endpoint,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> Answer:
        """The provider's answer to ``endpoint``, after retrying transient failures.

        Raises :class:`RateLimitedError` or :class:`ProviderUnavailableError` when the transient
        failures outlast the policy (or a ``Retry-After`` would pass the monotonic ``deadline``).
        """
        budget = _Budget(self._policy, self._label, endpoint, deadline)
        try:
            async for attempt in stamina.retry_context(
                on=budget,
                attempts=None,
                timeout=None,
                wait_initial=self._policy.base_s,
                wait_max=self._policy.max_s,
                wait_jitter=self._policy.base_s,
            ):
                with attempt:
                    return await self._once(endpoint, json, params, attempt.num)
        except _TransientError as exc:
            raise exc.error from None
        raise AssertionError("stamina ended without an attempt")  # pragma: no cover

    async def _once(
        self,
        endpoint: Endpoint,
        body: Any,
        params: Mapping[str, str] | None,
        attempt: int,
    ) -> Answer:
        slot = await self._pacer.acquire(self._team, endpoint.bucket) if self._pacer else None
        self.calls += 1
        where = f"on {endpoint.path}"
        tried = f"({attempt} attempt{'s' if attempt > 1 else ''})"
        try:
            response = await self._http.request(
                endpoint.method, endpoint.path, json=body, params=params, auth=self._auth
            )
        except httpx.TimeoutException:
            raise self._unavailable(
                endpoint, "timeout", f"{self._name}'s API timed out {where} {tried}."
            ) from None
        except httpx.TransportError as exc:
            raise self._unavailable(
                endpoint,
                "connection",
                f"{self._name}'s API could not be reached ({type(exc).__name__}) {tried}.",
            ) from None
        finally:
            if slot is not None:
                slot.done()
        status = response.status_code
        PROVIDER_REQUESTS.labels(self._label, endpoint.path, str(status)).inc()
        log.debug("provider.response", provider=self._label, path=endpoint.path, status=status)
        if self._pacer is not None:
            self._pacer.observe(self._team, endpoint.bucket, response.headers)
        if status == 429:
            self.rate_limited += 1
            hinted = retry_after_s(response.headers.get("retry-after"))
            if hinted is not None and self._pacer is not None:
                # Nothing else goes to this bucket before the provider said it may.
                self._pacer.hold_off(self._team, endpoint.bucket, hinted)
            raise _TransientError(
                "http_429",
                RateLimitedError(
                    f"{self._name}'s API is rate limiting requests for this key {where} "
                    f"{tried}. Try again in a minute.",
                    retry_after_s=hinted,
                ),
            )
        if status >= 500:
            raise self._unavailable(
                endpoint,
                f"http_{status}",
                f"{self._name}'s API answered HTTP {status} {where} {tried}.",
            )
        if not 200 <= status < 300:
            return Answer(status, None, response.text)
        try:
            decoded = decode_json(response.content)
        except ValueError:
            raise self._unavailable(
                endpoint, "invalid_json", f"{self._name}'s API sent invalid JSON {where} {tried}."
            ) from None
        return Answer(status, decoded, "")

    def _unavailable(self, endpoint: Endpoint, outcome: str, what: str) -> _TransientError:
        if outcome in ("timeout", "connection"):  # no response: nothing else counted the call
            PROVIDER_REQUESTS.labels(self._label, endpoint.path, outcome).inc()
        return _TransientError(
            outcome,
            ProviderUnavailableError(
                f"{what} {self._name} may be having an outage; try again in a few minutes."
            ),
        )
