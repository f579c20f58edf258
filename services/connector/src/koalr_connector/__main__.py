"""Command line of the connector service: ``koalr-connector serve`` (default) or ``koalr-connector migrate``."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import uvicorn

from koalr_connector.settings import ConnectorSettings
from koalr_runtime.logs import configure_logging
from koalr_runtime.migrations import migrate

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="koalr-connector", description=__doc__)
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate"])
    args = parser.parse_args(argv)
    settings = ConnectorSettings()
    configure_logging(settings.log_level, settings.log_format, service="connector")
    if args.command == "migrate":
        applied = asyncio.run(migrate(settings.database_url, settings.db_schema, MIGRATIONS))
        print(f"connector: applied migrations {applied or 'none (up to date)'}")
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
