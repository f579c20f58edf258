"""``koalr-sandbox``: serve the sandbox on ``SANDBOX_HOST``:``SANDBOX_PORT`` (default 8010)."""

from __future__ import annotations

import uvicorn

from koalr_sandbox.app import create_app
from koalr_sandbox.settings import SandboxSettings


def main() -> None:
    settings = SandboxSettings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
    )


if __name__ == "__main__":
    main()
