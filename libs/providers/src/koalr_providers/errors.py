"""The errors of a provider call, shared by every provider and by both services.

Each carries a contract code (:data:`koalr_contracts.ErrorCode`) and a sentence that says what
happened and what to do; ``retryable`` says whether the same call may succeed later, and
``retry_after_s`` carries the provider's own hint (``Retry-After``) when it gave one. Messages
never contain a credential.
"""

from __future__ import annotations

from typing import ClassVar

from koalr_contracts import ErrorCode


class ProviderError(Exception):
    """A provider call failed in a way callers report with ``code``."""

    code: ClassVar[ErrorCode] = "provider_error"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class InvalidApiKeyError(ProviderError):
    """The provider rejected the credential (revoked, rotated or never valid)."""

    code: ClassVar[ErrorCode] = "invalid_api_key"


class InsufficientPlanError(ProviderError):
    """The credential is valid but the plan does not include the endpoint."""

    code: ClassVar[ErrorCode] = "insufficient_plan"


class RateLimitedError(ProviderError):
    """The provider kept answering 429."""

    code: ClassVar[ErrorCode] = "rate_limited"
    retryable: ClassVar[bool] = True


class ProviderUnavailableError(ProviderError):
    """Timeouts, connection errors, 5xx or unreadable JSON: the provider may answer later."""

    code: ClassVar[ErrorCode] = "provider_unavailable"
    retryable: ClassVar[bool] = True


class ProviderShapeError(ValueError):
    """A response body does not have any of the shapes the provider is known to send."""


class InsufficientPermissionsError(ProviderError):
    """The credential is valid but lacks a permission (or its user a role) the call needs."""

    code: ClassVar[ErrorCode] = "insufficient_permissions"


class MetricsDisabledError(ProviderError):
    """The organisation switched off the usage-metrics reports (GitHub's metrics policy)."""

    code: ClassVar[ErrorCode] = "metrics_disabled"


class OrgNotFoundError(ProviderError):
    """The provider does not know the organisation (or the credential cannot see it).

    Its code is ``provider_error`` in sync status; at connect time the connector answers it with
    its own code (``github_org_not_found``).
    """
