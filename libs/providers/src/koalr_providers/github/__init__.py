"""GitHub Copilot: the client (:mod:`.client`), the shapes of its answers (:mod:`.shapes`) and the
Copilot definitions of the architecture (:mod:`.definitions`).

The names a caller of the client needs are exported here: the client, its retry policies and
the errors it raises.
"""

from koalr_providers.errors import (
    InsufficientPermissionsError,
    InvalidApiKeyError,
    MetricsDisabledError,
    OrgNotFoundError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
)
from koalr_providers.github.client import (
    CONNECT_POLICY,
    SYNC_POLICY,
    GitHubClient,
    GitHubDetector,
)
from koalr_providers.http import RetryPolicy
from koalr_providers.pacing import HeaderPacer

__all__ = [
    "CONNECT_POLICY",
    "SYNC_POLICY",
    "GitHubClient",
    "GitHubDetector",
    "HeaderPacer",
    "InsufficientPermissionsError",
    "InvalidApiKeyError",
    "MetricsDisabledError",
    "OrgNotFoundError",
    "ProviderError",
    "ProviderUnavailableError",
    "RateLimitedError",
    "RetryPolicy",
]
