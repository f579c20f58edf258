"""Reading providers' JSON bodies: the checks every provider's shapes share.

Each raises :class:`~koalr_providers.errors.ProviderShapeError` with the field and what was found,
so a changed provider API is reported as such and never read as zeros.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from koalr_providers.errors import ProviderShapeError


def json_object(body: Any, what: str) -> Mapping[str, Any]:
    """``body`` as a JSON object."""
    if not isinstance(body, Mapping):
        raise ProviderShapeError(f"{what}: expected a JSON object, got {type(body).__name__}")
    return body


def json_list(value: Any, what: str) -> Sequence[Any]:
    """``value`` as a JSON array."""
    if not isinstance(value, list):
        raise ProviderShapeError(f"{what}: expected a list, got {type(value).__name__}")
    return value


def counter(row: Mapping[str, Any], name: str) -> int:
    """A non-negative counter; missing or null counts as 0 (older shapes omit some counters)."""
    value = row.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ProviderShapeError(f"{name}: expected a number, got {value!r}")
    if value != int(value) or value < 0:
        raise ProviderShapeError(f"{name}: expected a non-negative integer, got {value}")
    return int(value)
