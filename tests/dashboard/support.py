"""Helpers for the dashboard tests: the built page, the metrics service on a real port, Chromium."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Browser, async_playwright

from koalr_metrics.app import DASHBOARD, create_app
from koalr_metrics.settings import MetricsSettings

ROOT = Path(__file__).resolve().parents[2]
#: Screenshots of every test (git-ignored), kept as the run's artefacts.
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def build_dashboard() -> None:
    """`make dashboard`: a no-op when the built page is newer than its sources."""
    result = subprocess.run(
        ["make", "--no-print-directory", "dashboard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not (DASHBOARD / "index.html").is_file():
        pytest.fail(
            f"`make dashboard` failed; run it to see why (Node 20 and npm are needed):\n"
            f"{result.stdout}{result.stderr}",
            pytrace=False,
        )


def chromium_path() -> str:
    """Debian's chromium (or ``KOALR_CHROMIUM``); Playwright never downloads a browser here."""
    path = os.environ.get("KOALR_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail(
            "chromium is not installed; run `make browser` (apt-get install chromium), or set "
            "KOALR_CHROMIUM to a Chromium binary.",
            pytrace=False,
        )
    return path


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(),
            headless=True,
            # Containers often run as root, where Chromium's sandbox cannot start.
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        try:
            yield browser
        finally:
            await browser.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def serving(settings: MetricsSettings) -> AsyncIterator[str]:
    """The metrics service (lifespan included) listening on a real port; yields its base URL."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                pytest.fail("the metrics service stopped while starting", pytrace=False)
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def dollars(cents: Decimal) -> str:
    """What the page prints for an amount of cents: whole cents (half up), as dollars."""
    whole = int(cents.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return f"{whole // 100}.{whole % 100:02d}"
