"""The Helm chart (deploy/helm/koalr) agrees with the services' settings and Kafka names.

Rendering and schema validation are `make deploy-check`'s job (it needs helm); these checks read
the chart's files and compare them with the code.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from koalr_connector.settings import ConnectorSettings
from koalr_contracts import topics
from koalr_metrics.settings import MetricsSettings
from koalr_syncer.settings import SyncerSettings

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "koalr"
VALUES: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
SETTINGS: dict[str, type[BaseSettings]] = {
    "connector": ConnectorSettings,
    "syncer": SyncerSettings,
    "metrics": MetricsSettings,
}
SYNCER_HANDLERS = (
    Path(__file__).resolve().parents[2] / "services/syncer/src/koalr_syncer/handlers.py"
)


def _components() -> dict[str, Any]:
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    block = re.search(r'define "koalr.components" -}}\n(.*?)\{\{- end -}}', helpers, re.DOTALL)
    assert block, "_helpers.tpl has no koalr.components block"
    components: dict[str, Any] = yaml.safe_load(block[1])
    return components


def _env_name(cls: type[BaseSettings], field_name: str) -> str:
    alias = cls.model_fields[field_name].validation_alias
    choices = [str(c) for c in getattr(alias, "choices", [alias]) if isinstance(c, str)]
    prefix = str(cls.model_config.get("env_prefix") or "")
    return (choices[0] if choices else prefix + field_name).upper()


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_every_required_setting_comes_from_the_existing_secret(service: str) -> None:
    cls = SETTINGS[service]
    required = {_env_name(cls, n) for n, f in cls.model_fields.items() if f.is_required()}
    secrets = _components()[service]["secrets"]
    assert required <= set(secrets), f"{service}: required settings not in the Secret"
    assert "DATABASE_URL" in secrets, "the DSN holds a password: it comes from the Secret"
    assert set(secrets.values()) <= set(VALUES["secrets"]), "a key the values do not name"
    assert _components()[service]["prefix"] == str(cls.model_config["env_prefix"]).rstrip("_")


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_ports_and_extra_settings_name_real_settings(service: str) -> None:
    cls: Any = SETTINGS[service]
    assert VALUES[service]["port"] == cls.model_fields["port"].default
    known = {_env_name(cls, n) for n in cls.model_fields}
    assert set(VALUES[service]["env"]) <= known


def test_keda_scales_the_real_consumer_groups_on_their_topics() -> None:
    template = (CHART / "templates" / "scaledobjects.yaml").read_text()
    syncer_source = SYNCER_HANDLERS.read_text()
    assert 'workers_group = settings.group("syncer-workers")' in syncer_source
    assert '"group" "syncer-workers" "topic" "koalr.sync-jobs.v1"' in template
    assert topics.SYNC_JOBS == "koalr.sync-jobs.v1"
    ingest_group = MetricsSettings.model_fields["ingest_group"].default
    assert f'(default "{ingest_group}" $root.Values.metrics.env.METRICS_INGEST_GROUP)' in template
    assert f'"topic" "{topics.USAGE_RECORDS}"' in template


def test_autoscaling_bounds_respect_the_partitions() -> None:
    partitions = VALUES["kafka"]["topicPartitions"]
    assert partitions == SyncerSettings.model_fields["topic_partitions"].default
    concurrency = VALUES["syncer"]["workerConcurrency"]
    assert concurrency == SyncerSettings.model_fields["worker_concurrency"].default
    scaling = VALUES["autoscaling"]
    assert scaling["syncer"]["maxReplicas"] == math.ceil(partitions / concurrency) == 2
    assert scaling["metrics"]["maxReplicas"] == partitions == 6
    assert 1 <= scaling["syncer"]["minReplicas"] <= scaling["syncer"]["maxReplicas"]
    assert 1 <= scaling["metrics"]["minReplicas"] <= scaling["metrics"]["maxReplicas"]


def test_values_hold_no_secret_material() -> None:
    text = (CHART / "values.yaml").read_text()
    assert VALUES["secrets"]["existingSecret"] == "koalr-secrets"
    assert not re.search(r"postgresql://[^:\s]+:[^@.\s]+@", text), "a DSN"
    assert not any(k.lower().endswith(("password", "token")) for k in VALUES["secrets"])
