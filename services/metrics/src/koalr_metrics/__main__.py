"""Command line of the metrics service: ``koalr-metrics serve`` (default) or ``koalr-metrics migrate``.

``serve`` also starts the ingest's decoding worker processes (started with ``spawn``), which is why
programs that build the app themselves need an ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from koalr_metrics.settings import MetricsSettings
from koalr_runtime.cli import run_service

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _create_app(settings: MetricsSettings) -> Any:
    from koalr_metrics.app import create_app

    return create_app(settings)


def main(argv: list[str] | None = None) -> int:
    return run_service(
        name="metrics",
        description=__doc__,
        settings_class=MetricsSettings,
        migrations=MIGRATIONS,
        create_app=_create_app,
        argv=argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
