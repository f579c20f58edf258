"""Print one service's real ``GET /metrics`` answer (``python -m tests.deploy.metrics_exposition
syncer``).

Runs in its own interpreter so that only the modules of that service register their
instruments; the app is built as ``serve`` builds it, and its lifespan is not entered, so no Kafka
or PostgreSQL is needed.
"""

from __future__ import annotations

import asyncio
import importlib
import sys

import httpx

from koalr_runtime.settings import load_settings

SERVICES = {
    "connector": ("koalr_connector.app", "koalr_connector.settings", "ConnectorSettings"),
    "syncer": ("koalr_syncer.app", "koalr_syncer.settings", "SyncerSettings"),
    "metrics": ("koalr_metrics.app", "koalr_metrics.settings", "MetricsSettings"),
}


async def exposition(service: str) -> str:
    app_module, settings_module, settings_class = SERVICES[service]
    settings = load_settings(getattr(importlib.import_module(settings_module), settings_class))
    app = importlib.import_module(app_module).create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        response = await client.get("/metrics")
    response.raise_for_status()
    return response.text


if __name__ == "__main__":
    sys.stdout.write(asyncio.run(exposition(sys.argv[1])))
