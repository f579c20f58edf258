from __future__ import annotations

import pytest

from koalr_runtime.settings import ServiceSettings


def test_env_vars_and_topic_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db/x")
    monkeypatch.setenv("KOALR_TOPIC_NAMESPACE", "ci42")
    settings = ServiceSettings()
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.database_url == "postgresql://u:p@db/x"
    assert settings.topic("koalr.usage-records.v1") == "ci42.koalr.usage-records.v1"
    assert settings.group("metrics-ingest") == "ci42.metrics-ingest"


def test_defaults_point_at_the_local_infrastructure(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "KOALR_TOPIC_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    settings = ServiceSettings()
    assert settings.kafka_bootstrap_servers == "127.0.0.1:19092"
    assert settings.database_url.endswith("@127.0.0.1:55432/koalr")
    assert settings.topic("koalr.sync-jobs.v1") == "koalr.sync-jobs.v1"


def test_configuration_errors_name_the_variable_and_never_echo_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from koalr_runtime.settings import AuthSettings, load_settings

    class Secrets(ServiceSettings, AuthSettings):
        pass

    monkeypatch.delenv("KOALR_JWT_SECRET", raising=False)
    monkeypatch.setenv("KOALR_TOPIC_PARTITIONS", "zero")
    monkeypatch.setenv("DATABASE_URL", "postgresql://koalr:very-secret-password@db/x")
    with pytest.raises(SystemExit) as exc:
        load_settings(Secrets)
    message = str(exc.value.code)
    assert "KOALR_TOPIC_PARTITIONS: Input should be a valid integer" in message
    assert "very-secret-password" not in message
    assert "zero" not in message

    # Once the fields are valid, the missing keys are named (the check spans two variables).
    monkeypatch.setenv("KOALR_TOPIC_PARTITIONS", "3")
    monkeypatch.delenv("KOALR_JWKS_URL", raising=False)
    with pytest.raises(SystemExit) as exc:
        load_settings(Secrets)
    message = str(exc.value.code)
    assert "set KOALR_JWT_SECRET, KOALR_JWKS_URL or both" in message
    assert "very-secret-password" not in message
