"""The committed JSON Schemas under docs/schemas must match the models exactly."""

from __future__ import annotations

from pathlib import Path

from koalr_contracts.schema import json_schemas, render

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def test_every_event_has_a_committed_schema_that_matches_the_model() -> None:
    expected = json_schemas()
    committed = {p.name.removesuffix(".schema.json") for p in SCHEMA_DIR.glob("*.schema.json")}
    assert committed == set(expected), "run `make docs` to regenerate docs/schemas"
    stale = [
        name
        for name, schema in expected.items()
        if (SCHEMA_DIR / f"{name}.schema.json").read_text() != render(schema)
    ]
    assert not stale, f"schemas out of date: {stale}; run `make docs` and commit the result"


def test_schemas_describe_the_rules() -> None:
    usage = json_schemas()["UsageRecord"]
    assert usage["additionalProperties"] is False
    assert usage["properties"]["requests"]["minimum"] == 0
    assert set(usage["required"]) >= {"org_id", "integration_id", "day", "member", "fetched_at"}
