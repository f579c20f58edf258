"""Command line of the connector service.

- ``koalr-connector serve`` (default): the HTTP API, the sync-status consumer and the outbox relay.
- ``koalr-connector migrate``: apply the SQL migrations and exit.
- ``koalr-connector reseal``: re-seal stored credentials with the newest sealing key (the events
  announcing them are published by the running service's outbox relay).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import httpx
import uvicorn

from koalr_connector.settings import ConnectorSettings
from koalr_runtime.logs import configure_logging
from koalr_runtime.migrations import migrate
from koalr_runtime.settings import load_settings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


async def reseal(settings: ConnectorSettings) -> int:
    from koalr_connector.providers.cursor import CursorClient
    from koalr_connector.repository import Repository
    from koalr_connector.service import ConnectorService
    from koalr_runtime.db import create_pool
    from koalr_runtime.sealing import Sealer

    await migrate(settings.database_url, settings.db_schema, MIGRATIONS)
    pool = await create_pool(settings.database_url, max_size=2)
    try:
        async with httpx.AsyncClient(base_url=settings.cursor_api_base_url) as http:
            service = ConnectorService(
                Repository(pool, settings.db_schema),
                CursorClient(http, timeout_s=settings.provider_timeout_s),
                Sealer.from_config(settings.sealing_keys.get_secret_value()),
            )
            return await service.reseal_credentials()
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="koalr-connector", description=__doc__)
    parser.add_argument(
        "command", nargs="?", default="serve", choices=["serve", "migrate", "reseal"]
    )
    args = parser.parse_args(argv)
    settings = load_settings(ConnectorSettings)
    configure_logging(settings.log_level, settings.log_format, service="connector")
    if args.command == "migrate":
        applied = asyncio.run(migrate(settings.database_url, settings.db_schema, MIGRATIONS))
        print(f"connector: applied migrations {applied or 'none (up to date)'}")
        return 0
    if args.command == "reseal":
        count = asyncio.run(reseal(settings))
        print(f"connector: re-sealed {count} credential(s) with the newest key")
        return 0
    from koalr_connector.app import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
