"""The one HTTP layer of provider calls: pacing, transient failures, retries.

Transient (the same call may succeed later, so it is retried):

- a timeout (a stalled response is cut by the HTTP client's read timeout) or a connection error;
- HTTP 5xx;
- HTTP 2xx whose body is not valid JSON (a truncated answer);
- a throttle: HTTP 429 by default, waiting for ``Retry-After`` (seconds or an HTTP date) when the
  provider sends it. A provider whose throttles look different (GitHub answers 403 or 429 and
  hints with ``retry-after`` or ``x-ratelimit-reset``) passes its own :data:`ThrottleRule`.

Everything else is the provider's answer and is returned to the provider's client, which knows
what a 401, 403 or 404 means for its API. Retries and their exponential backoff with jitter come
from ``stamina``; :class:`RetryPolicy` bounds them (separate budgets for 429s and for the other
transient failures), and a hook hands ``Retry-After`` to ``stamina`` as the next wait.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, Final, Literal, TypeVar

import httpx
import stamina
from prometheus_client import Counter

from koalr_providers.errors import (
    ProviderError,
    ProviderShapeError,
    ProviderUnavailableError,
    RateLimitedError,
)
from koalr_providers.pacing import Pacer
from koalr_runtime.logs import get_logger

log = get_logger(__name__)

T = TypeVar("T")

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
    ``rate_limit_retries`` bounds retries after throttles (429). Without a ``Retry-After`` the n-th
    wait is ``min(max_s, base_s * 2**(n-1) + jitter)`` with ``jitter`` uniform in ``[0, base_s]``;
    when ``throttle_base_s`` is set, the n-th throttle without a hint waits
    ``throttle_base_s * 2**(n-1)`` instead (GitHub: at least a minute, then exponentially longer).
    """

    max_retries: int = 4
    rate_limit_retries: int = 6
    base_s: float = 1.0
    max_s: float = 16.0
    throttle_base_s: float | None = None


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: HttpMethod
    path: str
    """The path; for a provider whose paths carry names, the route template (``/orgs/{org}/…``),
    with the call's ``url`` carrying the names. Metrics and logs name the endpoint by it."""
    bucket: str
    """The pacing bucket the provider counts this endpoint in."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A response that is not transient: its status, and its body when it was 2xx.

    The body is the decoded JSON, or the raw bytes for a ``raw`` call; ``None`` for a 204.
    """

    status: int
    body: Any
    text: str
    next_url: str | None = None
    """The target of the ``Link`` header's ``rel="next"`` (RFC 8288), when there is one."""


@dataclass(frozen=True, slots=True)
class Throttle:
    """A response that means "too many requests": retry after ``wait_s`` (``None``: back off)."""

    wait_s: float | None


ThrottleRule = Callable[[httpx.Response], Throttle | None]
"""Whether a response is a throttle, and the provider's hint of how long to wait."""


def throttled_by_429(response: httpx.Response) -> Throttle | None:
    """The default rule: HTTP 429, with the wait from ``Retry-After`` when present."""
    if response.status_code != 429:
        return None
    return Throttle(retry_after_s(response.headers.get("retry-after")))


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
            hinted is None
            and isinstance(error, RateLimitedError)
            and self._policy.throttle_base_s is not None
        ):
            hinted = self._policy.throttle_base_s * 2 ** (self.throttled - 1)
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
    ``team`` is the pacing scope of the credential. Without a ``pacer`` calls are not paced;
    ``throttle`` says which answers are throttles (default: HTTP 429).
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
        throttle: ThrottleRule = throttled_by_429,
    ) -> None:
        self._http = http
        self._name = name
        self._label = label
        self._auth = auth
        self._policy = policy
        self._pacer = pacer
        self._team = team
        self._throttle = throttle
        self.calls = 0
        self.rate_limited = 0

    async def call(
        self,
        endpoint: Endpoint,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        deadline: float | None = None,
        url: str | None = None,
        raw: bool = False,
    ) -> Answer:
        """The provider's answer to ``endpoint``, after retrying transient failures.

        ``url`` (an absolute URL handed out by the provider, e.g. a signed download link)
        replaces the endpoint's path in the request but never appears in metrics or logs;
        ``raw`` returns a 2xx body as bytes instead of decoding it as JSON.

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
                    return await self._once(endpoint, json, params, attempt.num, url=url, raw=raw)
        except _TransientError as exc:
            raise exc.error from None
        raise AssertionError("stamina ended without an attempt")  # pragma: no cover

    async def _once(
        self,
        endpoint: Endpoint,
        body: Any,
        params: Mapping[str, str] | None,
        attempt: int,
        *,
        url: str | None,
        raw: bool,
    ) -> Answer:
        slot = await self._pacer.acquire(self._team, endpoint.bucket) if self._pacer else None
        self.calls += 1
        where = f"on {endpoint.path}"
        tried = f"({attempt} attempt{'s' if attempt > 1 else ''})"
        try:
            response = await self._http.request(
                endpoint.method, url or endpoint.path, json=body, params=params, auth=self._auth
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
        throttle = self._throttle(response)
        if throttle is not None:
            self.rate_limited += 1
            hinted = throttle.wait_s
            if hinted is not None and self._pacer is not None:
                # Nothing else goes to this bucket before the provider said it may.
                self._pacer.hold_off(self._team, endpoint.bucket, hinted)
            raise _TransientError(
                f"http_{status}",
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
        next_url = response.links.get("next", {}).get("url")
        if status == 204:
            return Answer(status, None, "", next_url)
        if raw:
            return Answer(status, response.content, "", next_url)
        try:
            decoded = decode_json(response.content)
        except ValueError:
            raise self._unavailable(
                endpoint, "invalid_json", f"{self._name}'s API sent invalid JSON {where} {tried}."
            ) from None
        return Answer(status, decoded, "", next_url)

    def _unavailable(self, endpoint: Endpoint, outcome: str, what: str) -> _TransientError:
        if outcome in ("timeout", "connection"):  # no response: nothing else counted the call
            PROVIDER_REQUESTS.labels(self._label, endpoint.path, outcome).inc()
        return _TransientError(
            outcome,
            ProviderUnavailableError(
                f"{what} {self._name} may be having an outage; try again in a few minutes."
            ),
        )


def parse_or_raise(name: str, parse: Callable[[Any], T], body: Any) -> T:
    """``parse(body)``; a body of an unknown shape becomes a :class:`ProviderError`."""
    try:
        return parse(body)
    except ProviderShapeError as exc:
        raise ProviderError(f"{name} sent a response this client cannot read: {exc}") from exc


async def within_connect_budget(
    name: str,
    timeout_s: float,
    detect: Callable[[float], Awaitable[T]],
    answers: tuple[type[ProviderError], ...],
) -> T:
    """``detect(deadline)`` within ``timeout_s`` seconds, retries included (a connect's checks).

    ``answers`` are the errors the user acts on (a rejected credential, a missing permission),
    raised as they are; a timeout and every other :class:`ProviderError` mean "the provider could
    not tell us" and become :class:`ProviderUnavailableError`.
    """
    deadline = time.monotonic() + timeout_s
    try:
        async with asyncio.timeout(timeout_s):
            return await detect(deadline)
    except TimeoutError:
        raise ProviderUnavailableError(
            f"{name}'s API did not answer within {timeout_s:g} s. Try again in a few minutes."
        ) from None
    except ProviderError as exc:
        if isinstance(exc, (ProviderUnavailableError, *answers)):
            raise
        raise ProviderUnavailableError(exc.message) from None
