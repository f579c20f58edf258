"""The command line every service shares: ``serve`` (default), ``migrate`` and extra commands.

``koalr-<service> serve`` runs the HTTP app (and with it the service's consumers and background
tasks) under uvicorn; ``koalr-<service> migrate`` applies the SQL migrations and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

from koalr_runtime.logs import configure_logging
from koalr_runtime.migrations import migrate
from koalr_runtime.settings import EdgeSettings, ServiceSettings, load_settings
from koalr_runtime.tracing import configure_tracing, instrument_app
from koalr_runtime.wire import json_error_protocol

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


def _keep_alive_s(settings: ServiceSettings) -> int:
    """uvicorn's keep-alive timeout: the service's setting, else uvicorn's 5 seconds."""
    return settings.http_keep_alive_timeout_s if isinstance(settings, EdgeSettings) else 5


def run_service(
    *,
    name: str,
    description: str | None,
    settings_class: type[SettingsT],
    migrations: Path,
    create_app: Callable[[SettingsT], Any],
    commands: Mapping[str, Callable[[SettingsT], str | tuple[str, int]]] | None = None,
    argv: list[str] | None = None,
) -> int:
    """Parse the command, read settings, configure logging and run the command.

    An extra command returns the line to print, or the line and the exit status.
    """
    extra = dict(commands or {})
    parser = argparse.ArgumentParser(prog=f"koalr-{name}", description=description)
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate", *extra])
    args = parser.parse_args(argv)
    settings = load_settings(settings_class)
    served: Any = settings
    configure_logging(settings.log_level, settings.log_format, service=name)
    if args.command == "migrate":
        applied = asyncio.run(migrate(settings.database_url, served.db_schema, migrations))
        sys.stdout.write(f"{name}: applied migrations {applied or 'none (up to date)'}\n")
        return 0
    if args.command in extra:
        result = extra[args.command](settings)
        text, status = (result, 0) if isinstance(result, str) else result
        sys.stdout.write(text + "\n")
        return status
    app = create_app(settings)
    if configure_tracing(name):
        instrument_app(app)
    # What is built by now lives as long as the process: keep it out of the cyclic collector's
    # full passes, which would otherwise rescan it over and over under load.
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=served.host,
        port=served.port,
        log_config=None,
        access_log=False,
        http=json_error_protocol(),
        timeout_keep_alive=_keep_alive_s(settings),
    )
    return 0
