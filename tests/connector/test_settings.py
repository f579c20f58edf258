"""Configuration read from the environment."""

from __future__ import annotations

import pytest

from koalr_connector.settings import ConnectorSettings
from tests.connector.conftest import JWT_SECRET, SEALING_KEYS


@pytest.fixture
def required_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("CURSOR_API_BASE_URL", "KOALR_TOPIC_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KOALR_JWT_SECRET", JWT_SECRET)
    monkeypatch.setenv("KOALR_SEALING_KEYS", SEALING_KEYS)
    return monkeypatch


def test_defaults(required_env: pytest.MonkeyPatch) -> None:
    settings = ConnectorSettings()
    assert settings.port == 8001
    assert settings.db_schema == "connector"
    assert settings.cursor_api_base_url == "https://api.cursor.com"
    assert settings.provider_timeout_s == 10.0
    assert settings.outbox_relay_interval_s == 1.0
    assert settings.backfill_days == 30


def test_the_provider_url_is_unprefixed_and_the_rest_prefixed(
    required_env: pytest.MonkeyPatch,
) -> None:
    required_env.setenv("CURSOR_API_BASE_URL", "http://127.0.0.1:8010")
    required_env.setenv("CONNECTOR_PROVIDER_TIMEOUT_S", "2.5")
    required_env.setenv("CONNECTOR_OUTBOX_RELAY_INTERVAL_S", "0.25")
    required_env.setenv("CONNECTOR_PORT", "9001")
    settings = ConnectorSettings()
    assert settings.cursor_api_base_url == "http://127.0.0.1:8010"
    assert settings.provider_timeout_s == 2.5
    assert settings.outbox_relay_interval_s == 0.25
    assert settings.port == 9001
    assert settings.sealing_keys.get_secret_value() == SEALING_KEYS
    assert SEALING_KEYS not in repr(settings)


def test_secrets_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KOALR_SEALING_KEYS", raising=False)
    monkeypatch.setenv("KOALR_JWT_SECRET", JWT_SECRET)
    with pytest.raises(ValueError, match="KOALR_SEALING_KEYS"):
        ConnectorSettings()


def test_edge_limits_are_prefixed_and_outlast_the_provider_budget(
    required_env: pytest.MonkeyPatch,
) -> None:
    required_env.setenv("CONNECTOR_HTTP_MAX_BODY_BYTES", "4096")
    required_env.setenv("CONNECTOR_HTTP_RATE_LIMIT_PER_S", "5")
    settings = ConnectorSettings()
    assert (settings.http_max_body_bytes, settings.http_rate_limit_per_s) == (4096, 5.0)
    assert (settings.http_rate_limit_burst, settings.http_request_timeout_s) == (100, 30.0)
    required_env.setenv("CONNECTOR_HTTP_REQUEST_TIMEOUT_S", "10")
    with pytest.raises(ValueError, match="CONNECTOR_PROVIDER_TIMEOUT_S"):
        ConnectorSettings()
