"""JSON Schema export of every event, committed under ``docs/schemas/``.

``python -m koalr_contracts.schema docs/schemas`` rewrites the files; a test fails when the
committed files differ from what the models produce.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from koalr_contracts.events import EVENT_TYPES


def json_schemas() -> dict[str, dict[str, Any]]:
    """Event type name -> JSON Schema (validation mode: what a producer must send)."""
    return {model.__name__: model.model_json_schema() for model in EVENT_TYPES}


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = directory / f"{name}.schema.json"
        path.write_text(render(schema))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0]) if args else Path("docs/schemas")
    for path in write_schemas(directory):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
