"""Which provider base URLs the stack and ``make up`` hand to each service process."""

from __future__ import annotations

from pathlib import Path

import pytest

from koalr_devstack import up
from koalr_devstack.stack import Stack, StackConfig


def _config(tmp_path: Path, cursor: str | None = None, github: str | None = None) -> StackConfig:
    return StackConfig(
        kafka_bootstrap_servers="127.0.0.1:1",
        database_url="postgresql://nobody@127.0.0.1:1/none",
        log_dir=tmp_path,
        cursor_api_base_url=cursor,
        github_api_base_url=github,
    )


def _provider_urls(stack: Stack, name: str) -> tuple[str, str]:
    process = next(p for p in stack.processes if p.name == name)
    return process.env["CURSOR_API_BASE_URL"], process.env["GITHUB_API_BASE_URL"]


def test_the_sandbox_serves_both_providers_to_the_connector_and_every_syncer(
    tmp_path: Path,
) -> None:
    stack = Stack(_config(tmp_path))
    assert stack.sandbox is not None
    sandbox = stack.sandbox.base_url
    for name in ("connector", "syncer-1", "syncer-2"):
        assert _provider_urls(stack, name) == (sandbox, sandbox), name


def test_real_providers_need_no_sandbox(tmp_path: Path) -> None:
    stack = Stack(_config(tmp_path, "https://api.cursor.com", "https://api.github.com"))
    assert stack.sandbox is None
    assert [p.name for p in stack.processes] == ["connector", "syncer-1", "syncer-2", "metrics"]
    assert _provider_urls(stack, "syncer-2") == ("https://api.cursor.com", "https://api.github.com")


def test_a_real_cursor_beside_the_sandbox_github(tmp_path: Path) -> None:
    stack = Stack(_config(tmp_path, cursor="https://api.cursor.com"))
    assert stack.sandbox is not None
    assert _provider_urls(stack, "connector") == ("https://api.cursor.com", stack.sandbox.base_url)


def test_make_up_passes_both_base_urls_to_the_connector_and_the_syncers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CURSOR_API_BASE_URL", raising=False)
    monkeypatch.setenv("GITHUB_API_BASE_URL", "http://127.0.0.1:8010")
    monkeypatch.setenv("SYNCER_WORKERS", "2")
    envs = {service.name: service.env for service in up._services()}
    for name in ("connector", "syncer-1", "syncer-2"):
        assert envs[name]["CURSOR_API_BASE_URL"] == "https://api.cursor.com", name
        assert envs[name]["GITHUB_API_BASE_URL"] == "http://127.0.0.1:8010", name
    assert "GITHUB_API_BASE_URL" not in envs["metrics"]


def test_make_up_defaults_to_githubs_real_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_API_BASE_URL", raising=False)
    envs = {service.name: service.env for service in up._services()}
    assert envs["connector"]["GITHUB_API_BASE_URL"] == "https://api.github.com"
