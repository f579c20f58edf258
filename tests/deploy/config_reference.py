"""Render docs/configuration.md from the services' settings classes (``make docs`` writes it;
``test_configuration_doc`` fails when the committed file drifts from the code)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from koalr_runtime.settings import env_names

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"
SERVICES = [
    (
        "connector",
        "koalr_connector.settings",
        "ConnectorSettings",
        "HTTP API for the platform, port 8001",
    ),
    (
        "syncer",
        "koalr_syncer.settings",
        "SyncerSettings",
        "sync workers and scheduler, health on port 8002",
    ),
    (
        "metrics",
        "koalr_metrics.settings",
        "MetricsSettings",
        "ingest and the AI Analytics API, port 8003",
    ),
    (
        "sandbox",
        "koalr_sandbox.settings",
        "SandboxSettings",
        "Cursor API stand-in for tests and the demo, port 8010",
    ),
]

HEADER = """# Configuration reference

Every service reads its configuration from environment variables once at start-up. This page is
generated from the settings classes (`make docs`); a test fails when it drifts from the code.

- Shared variables (no prefix) mean the same in every service that reads them:
  `KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`, `KOALR_TOPIC_NAMESPACE`, `KOALR_TOPIC_PARTITIONS`,
  `LOG_LEVEL`, `LOG_FORMAT`, the token settings `KOALR_JWT_*` and `KOALR_JWKS_*`, and the secrets
  `KOALR_JWT_SECRET` and `KOALR_SEALING_KEYS`.
- Service-specific variables carry the service's prefix (`CONNECTOR_`, `SYNCER_`, `METRICS_`,
  `SANDBOX_`).
- A configuration mistake stops the service with one line per problem naming the variable; values
  are never echoed (they may be secrets).
- Tokens: the connector and metrics need `KOALR_JWT_SECRET`, `KOALR_JWKS_URL` or both.
  `KOALR_JWT_SECRET` is an HS256 secret for local callers such as the `koalr` CLI (at least 32
  bytes); `KOALR_JWKS_URL` is the platform's key set (RS256 and EdDSA, chosen by `kid`, rotated
  without a restart). Each key verifies only its own algorithm.
- Secrets: `KOALR_SEALING_KEYS` holds the AES-256-GCM keys that seal provider credentials, as
  `key_id:base64url-key` entries separated by commas, newest first: the first seals, any opens.
  Generate an entry with `.venv/bin/python -m koalr_runtime.sealing generate k2`, put it first,
  keep the old one until `koalr-connector reseal` has re-sealed every stored credential.
"""


def _default(field: Any) -> str:
    if field.is_required():
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, SecretStr):
        return "(secret)"
    if value is None:
        return "(none)"
    if value == "":
        return '`""`'
    return f"`{value}`"


GENERIC = {
    "host": "Interface the HTTP server listens on (`0.0.0.0` in a container).",
    "port": "HTTP port of the service (health, readiness, metrics and its API).",
    "db_schema": "PostgreSQL schema the service owns; its migrations create it.",
    "log_level": "`DEBUG`, `INFO`, `WARNING` or `ERROR`.",
}


def _describe(field_name: str, field: Any) -> str:
    text = (field.description or GENERIC.get(field_name, "")).replace("\n", " ").replace("|", "\\|")
    return " ".join(text.split())


def render() -> str:
    parts = [HEADER]
    for name, module, cls_name, summary in SERVICES:
        cls: type[BaseSettings] = getattr(importlib.import_module(module), cls_name)
        parts.append(f"\n## {name} ({summary})\n")
        parts.append("| variable | default | meaning |")
        parts.append("| --- | --- | --- |")
        for field_name, field in cls.model_fields.items():
            variables = " or ".join(f"`{v}`" for v in env_names(cls, field_name))
            parts.append(f"| {variables} | {_default(field)} | {_describe(field_name, field)} |")
    return "\n".join(parts) + "\n"


def main() -> int:
    DOC.write_text(render())
    sys.stdout.write(f"wrote {DOC.relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
