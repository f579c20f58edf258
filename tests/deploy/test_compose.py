"""docker-compose.yml is checked against the services' own settings (no Docker engine needed).

Every required setting is provided, every prefixed variable names a real setting, ports, hosts,
credentials and topics agree across services, and start-up order is guarded by healthchecks and a
migration step.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
APP_SERVICES = ["sandbox", "connector", "syncer", "metrics"]
SETTINGS_CLASSES = {
    "koalr_sandbox": ("koalr_sandbox.settings", "SandboxSettings"),
    "koalr_connector": ("koalr_connector.settings", "ConnectorSettings"),
    "koalr_syncer": ("koalr_syncer.settings", "SyncerSettings"),
    "koalr_metrics": ("koalr_metrics.settings", "MetricsSettings"),
}
_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?P<op>:?[-?])?(?P<arg>[^}]*)\}")


def _module(service: str) -> str:
    module: str = SERVICES[service]["build"]["args"]["MODULE"]
    return module


def _settings_class(service: str) -> type[BaseSettings]:
    module_name, class_name = SETTINGS_CLASSES[_module(service)]
    cls: type[BaseSettings] = getattr(importlib.import_module(module_name), class_name)
    return cls


def _env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in (SERVICES[service].get("environment") or {}).items()}


def _resolve(value: str) -> str:
    """Compose interpolation with the defaults written in the file (`${X:-default}`)."""

    def sub(match: re.Match[str]) -> str:
        op = match["op"] or ""
        return match["arg"] if op.endswith("-") else f"<required {match['name']}>"

    return _INTERPOLATION.sub(sub, value)


def _env_names(cls: type[BaseSettings], field_name: str) -> set[str]:
    field = cls.model_fields[field_name]
    alias = field.validation_alias
    prefix = str(cls.model_config.get("env_prefix") or "")
    if alias is None:
        return {(prefix + field_name).upper()}
    choices = getattr(alias, "choices", [alias])
    return {str(c).upper() for c in choices if isinstance(c, str)}


@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_required_setting_is_provided(service: str) -> None:
    cls = _settings_class(service)
    env = _env(service)
    missing = [
        name
        for name, field in cls.model_fields.items()
        if field.is_required() and not (_env_names(cls, name) & set(env))
    ]
    assert not missing, f"{service}: required settings without a value in compose: {missing}"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_prefixed_variables_name_real_settings(service: str) -> None:
    cls = _settings_class(service)
    prefix = str(cls.model_config.get("env_prefix") or "")
    known = set().union(*(_env_names(cls, n) for n in cls.model_fields))
    unknown = [k for k in _env(service) if k.startswith(prefix) and k not in known]
    assert not unknown, f"{service}: variables that no setting reads: {unknown}"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_settings_validate_with_the_compose_environment(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in _env(service).items():
        resolved = _resolve(value)
        if resolved.startswith("<required "):
            resolved = {
                "KOALR_JWT_SECRET": "x" * 48,
                "KOALR_SEALING_KEYS": "k1:" + "A" * 43,
            }[key]
        monkeypatch.setenv(key, resolved)
    settings: Any = _settings_class(service)()
    port = int(settings.port)
    assert settings.host == "0.0.0.0", f"{service} must listen on all interfaces in a container"
    health = " ".join(SERVICES[service]["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/" in health, f"{service}: healthcheck does not probe port {port}"
    published = [str(p) for p in SERVICES[service].get("ports", [])]
    assert all(p.endswith(f":{port}") for p in published), f"{service}: ports {published} != {port}"


@pytest.mark.parametrize("service", ["connector", "syncer", "metrics"])
def test_infrastructure_addresses_agree(service: str) -> None:
    env = {k: _resolve(v) for k, v in _env(service).items()}
    host, _, port = env["KAFKA_BOOTSTRAP_SERVERS"].partition(":")
    assert host in SERVICES, f"{service}: Kafka host {host} is not a compose service"
    advertised = SERVICES[host]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert f"//{host}:{port}" in advertised

    db = urlparse(env["DATABASE_URL"])
    assert db.hostname in SERVICES, f"{service}: database host {db.hostname} is not a service"
    pg_env = {k: _resolve(str(v)) for k, v in SERVICES[str(db.hostname)]["environment"].items()}
    assert db.username == pg_env["POSTGRES_USER"]
    assert db.password == pg_env["POSTGRES_PASSWORD"]
    assert db.path.lstrip("/") == pg_env["POSTGRES_DB"]

    for dependency in (host, db.hostname):
        condition = SERVICES[service]["depends_on"][dependency]["condition"]
        assert condition == "service_healthy", f"{service} must wait for a healthy {dependency}"


def test_provider_url_and_topics_agree() -> None:
    urls = {s: _resolve(_env(s)["CURSOR_API_BASE_URL"]) for s in ("connector", "syncer")}
    assert len(set(urls.values())) == 1, f"connector and syncer call different providers: {urls}"
    sandbox = urlparse(urls["connector"])
    assert sandbox.hostname == "sandbox"
    assert str(sandbox.port) == _env("sandbox")["SANDBOX_PORT"]
    namespaces = {s: _env(s).get("KOALR_TOPIC_NAMESPACE", "") for s in APP_SERVICES[1:]}
    assert len(set(namespaces.values())) == 1, f"services would use different topics: {namespaces}"
    partitions = {int(_env(s).get("KOALR_TOPIC_PARTITIONS", "6")) for s in APP_SERVICES[1:]}
    replicas = SERVICES["syncer"]["deploy"]["replicas"]
    assert replicas == 2
    assert min(partitions) >= replicas, "more syncer replicas than partitions would sit idle"


@pytest.mark.parametrize("service", ["connector", "syncer", "metrics"])
def test_a_migration_step_runs_first(service: str) -> None:
    step = f"migrate-{service}"
    assert SERVICES[step]["command"] == ["migrate"]
    assert SERVICES[step]["build"]["args"] == SERVICES[service]["build"]["args"]
    assert SERVICES[service]["depends_on"][step]["condition"] == "service_completed_successfully"


def test_every_long_running_service_has_a_healthcheck() -> None:
    long_running = [
        n for n, s in SERVICES.items() if s.get("command") != ["migrate"] and "profiles" not in s
    ]
    assert set(long_running) == {"kafka", "postgres", *APP_SERVICES}
    assert all("healthcheck" in SERVICES[n] for n in long_running)
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:4.")


def test_the_image_recipe_copies_every_workspace_member() -> None:
    dockerfile = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    members = sorted(p.parent.relative_to(ROOT) for p in ROOT.glob("*/*/pyproject.toml"))
    assert members, "no workspace members found"
    for member in members:
        assert f"COPY {member}/pyproject.toml {member}/pyproject.toml" in dockerfile
    assert "--no-install-workspace" in dockerfile
    assert dockerfile.count("uv sync --frozen") == 2


OBSERVABILITY = {"kafka-exporter", "prometheus", "grafana", "otel-collector"}


def _mounts(service: str) -> dict[str, Path]:
    """Container path -> file in the repository, for the service's bind mounts."""
    mounts = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target, *_ = str(volume).split(":")
        if source.startswith("./"):
            mounts[target] = ROOT / source
    return mounts


def test_the_observability_profile_is_optional() -> None:
    profiled = {n for n, s in SERVICES.items() if "profiles" in s}
    assert profiled == OBSERVABILITY
    assert all(SERVICES[n]["profiles"] == ["observability"] for n in profiled)
    for name, service in SERVICES.items():
        if name not in profiled:
            needs = set(service.get("depends_on", {}))
            assert not needs & profiled, f"{name} would need the observability profile"


def test_prometheus_scrapes_every_service_and_evaluates_the_rules() -> None:
    mounts = _mounts("prometheus")
    assert mounts["/etc/prometheus/rules.yml"] == ROOT / "deploy" / "prometheus" / "rules.yml"
    config = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    assert config["rule_files"] == ["rules.yml"]
    targets = {}
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            targets.update(dict.fromkeys(static["targets"], job["job_name"]))
        for dns in job.get("dns_sd_configs", []):
            targets.update({f"{n}:{dns['port']}": job["job_name"] for n in dns["names"]})
    ports = {s: _env(s)[f"{s.upper()}_PORT"] for s in ("connector", "syncer", "metrics")}
    assert targets == {
        f"connector:{ports['connector']}": "koalr-connector",
        f"syncer:{ports['syncer']}": "koalr-syncer",
        f"metrics:{ports['metrics']}": "koalr-metrics",
        "kafka-exporter:9308": "kafka-exporter",
    }
    assert "--kafka.server=kafka:9092" in SERVICES["kafka-exporter"]["command"]
    assert "kafka:9092" in SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard() -> None:
    mounts = _mounts("grafana")
    dashboard_dir = "/var/lib/grafana/dashboards"
    assert mounts[f"{dashboard_dir}/koalr.json"] == ROOT / "deploy" / "grafana" / "koalr.json"
    provisioning = mounts["/etc/grafana/provisioning"]
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert (source["type"], source["url"]) == ("prometheus", "http://prometheus:9090")
    published = {str(p).split(":")[1] for p in SERVICES["prometheus"]["ports"]}
    assert published == {"9090"}
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "koalr.yml").read_text())[
        "providers"
    ]
    assert provider["options"]["path"] == dashboard_dir


def test_the_collector_receives_otlp_on_the_standard_ports() -> None:
    mounts = _mounts("otel-collector")
    command = SERVICES["otel-collector"]["command"]
    config_path = next(c.split("=", 1)[1] for c in command if c.startswith("--config="))
    config = yaml.safe_load(mounts[config_path].read_text())
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    assert config["service"]["pipelines"]["traces"]["receivers"] == ["otlp"]
    assert sorted(str(p) for p in SERVICES["otel-collector"]["ports"]) == ["4317:4317", "4318:4318"]


def test_every_image_is_pinned_to_a_version() -> None:
    images = {n: s["image"] for n, s in SERVICES.items() if "image" in s}
    assert set(images) >= OBSERVABILITY | {"kafka", "postgres"}
    unpinned = {n: i for n, i in images.items() if ":" not in i or i.endswith(":latest")}
    assert unpinned == {}
