"""Command line of the connector service.

- ``koalr-connector serve`` (default): the HTTP API, the sync-status consumer and the outbox relay.
- ``koalr-connector migrate``: apply the SQL migrations and exit.
- ``koalr-connector reseal``: re-seal stored credentials with the newest sealing key, in batches of
  ``CONNECTOR_RESEAL_BATCH_SIZE`` (the events announcing them are published by the running
  service's outbox relay). Prints the counts; exits 1 if a credential could not be opened.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from koalr_connector.settings import ConnectorSettings
from koalr_runtime.cli import run_service
from koalr_runtime.migrations import migrate

if TYPE_CHECKING:
    from koalr_connector.service import ResealReport

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


async def reseal(settings: ConnectorSettings) -> ResealReport:
    from koalr_connector.copilot import CopilotValidator
    from koalr_connector.repository import Repository
    from koalr_connector.service import ConnectorService
    from koalr_providers.cursor import CursorPlanDetector
    from koalr_providers.github import GitHubDetector
    from koalr_runtime.db import create_pool
    from koalr_runtime.sealing import Sealer

    await migrate(settings.database_url, settings.db_schema, MIGRATIONS)
    pool = await create_pool(settings.database_url, max_size=2)
    try:
        async with (
            httpx.AsyncClient(base_url=settings.cursor_api_base_url) as http,
            httpx.AsyncClient(base_url=settings.github_api_base_url) as github_http,
        ):
            service = ConnectorService(
                Repository(pool, settings.db_schema),
                CursorPlanDetector(http, timeout_s=settings.provider_timeout_s),
                CopilotValidator(
                    GitHubDetector(github_http, timeout_s=settings.provider_timeout_s)
                ),
                Sealer.from_config(settings.sealing_keys.get_secret_value()),
            )
            return await service.reseal_credentials(batch_size=settings.reseal_batch_size)
    finally:
        await pool.close()


def _reseal(settings: ConnectorSettings) -> tuple[str, int]:
    report = asyncio.run(reseal(settings))
    return f"connector: {report.summary()}", 1 if report.failed else 0


def _create_app(settings: ConnectorSettings) -> Any:
    from koalr_connector.app import create_app

    return create_app(settings)


def main(argv: list[str] | None = None) -> int:
    return run_service(
        name="connector",
        description=__doc__,
        settings_class=ConnectorSettings,
        migrations=MIGRATIONS,
        create_app=_create_app,
        commands={"reseal": _reseal},
        argv=argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
