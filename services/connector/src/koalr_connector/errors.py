"""Errors the connector's callers can act on. Each has a contract code and a sentence.

The HTTP layer maps them onto statuses (``handlers.py``); messages never contain a credential.
A provider's answers (``invalid_api_key``, ``provider_unavailable``) are
:class:`koalr_providers.errors.ProviderError`, mapped the same way.
"""

from __future__ import annotations

from uuid import UUID


class ConnectorError(Exception):
    code: str = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequestError(ConnectorError):
    code = "invalid_request"


class NotFoundError(ConnectorError):
    code = "not_found"

    def __init__(self, integration_id: str) -> None:
        super().__init__(
            f"No integration {integration_id} exists in this organisation "
            "(it may have been disconnected)."
        )


class AlreadyConnectedError(ConnectorError):
    code = "already_connected"

    def __init__(self, provider: str, external_id: str, existing_id: UUID) -> None:
        what = "Cursor team" if provider == "cursor" else "GitHub organisation"
        super().__init__(
            f"{what} {external_id!r} is already connected to this organisation as "
            f"integration {existing_id}; rotate its key with PUT .../integrations/{existing_id}"
            "/credentials, or disconnect it first."
        )
        self.existing_id = existing_id


class ConnectInProgressError(ConnectorError):
    """Another request is connecting the same team or GitHub organisation right now."""

    code = "already_connected"

    def __init__(self, provider: str, external_id: str) -> None:
        what = "Cursor team" if provider == "cursor" else "GitHub organisation"
        super().__init__(
            f"{what} {external_id!r} is being connected to this organisation by another "
            "request; list the integrations in a moment to see it."
        )
