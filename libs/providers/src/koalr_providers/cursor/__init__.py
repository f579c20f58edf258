"""Cursor: the Admin API client (:mod:`.client`) and the shapes of its answers (:mod:`.shapes`).

The names a caller of the client needs are exported here: the client, its retry policy and the
errors it raises.
"""

from koalr_providers.cursor.client import CONNECT_POLICY, CursorClient, CursorPlanDetector
from koalr_providers.errors import (
    InsufficientPlanError,
    InvalidApiKeyError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
)
from koalr_providers.http import RetryPolicy

__all__ = [
    "CONNECT_POLICY",
    "CursorClient",
    "CursorPlanDetector",
    "InsufficientPlanError",
    "InvalidApiKeyError",
    "ProviderError",
    "ProviderUnavailableError",
    "RateLimitedError",
    "RetryPolicy",
]
