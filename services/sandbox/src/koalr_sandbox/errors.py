"""Errors answered in Cursor's documented shape: ``{"error": <reason>, "message": <sentence>}``."""

from __future__ import annotations

from http import HTTPStatus
from typing import Final

UNAUTHORIZED_MESSAGE: Final[str] = "Invalid API key"
FORBIDDEN_MESSAGE: Final[str] = "Enterprise access required"
NOT_FOUND_MESSAGE: Final[str] = "Resource not found"
RATE_LIMITED_MESSAGE: Final[str] = "Rate limit exceeded. Please try again later."
INTERNAL_ERROR_MESSAGE: Final[str] = "An unexpected error occurred"


class ApiError(Exception):
    """An error response: its status, the documented reason phrase and a message."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    @property
    def body(self) -> dict[str, str]:
        return {"error": HTTPStatus(self.status).phrase, "message": self.message}


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)
