"""Command line of the syncer service: ``koalr-syncer serve`` (default) or ``koalr-syncer migrate``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from koalr_runtime.cli import run_service
from koalr_syncer.settings import SyncerSettings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _create_app(settings: SyncerSettings) -> Any:
    from koalr_syncer.app import create_app

    return create_app(settings)


def main(argv: list[str] | None = None) -> int:
    return run_service(
        name="syncer",
        description=__doc__,
        settings_class=SyncerSettings,
        migrations=MIGRATIONS,
        create_app=_create_app,
        argv=argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
