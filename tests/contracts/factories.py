"""Valid example events; tests change one field at a time to check one rule."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

INTEGRATION_ID = UUID("6f1c1f43-2d0e-4f59-9a36-2f1f6c1c0a11")
SEALED = "v1.k1." + "A" * 40


def yesterday() -> date:
    return datetime.now(UTC).date() - timedelta(days=1)


def envelope(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"org_id": "org_1", "integration_id": INTEGRATION_ID}
    fields.update(overrides)
    return fields


def usage_record_fields(**overrides: Any) -> dict[str, Any]:
    fields = envelope(
        provider="cursor",
        day=yesterday(),
        member={"email": "Alex@Example.com", "name": "Alex"},
        is_active=True,
        requests=5,
        requests_by_kind={"chat": 3, "agent": 2},
        models=[
            {"model": "gpt-5", "requests": 3, "charged_cents": Decimal("1.25")},
            {"model": "claude-4.5-sonnet", "requests": 2, "charged_cents": Decimal("20.18232")},
        ],
        charged_cents=Decimal("21.43232"),
        fetched_at=datetime.now(UTC),
    )
    fields.update(overrides)
    return fields
