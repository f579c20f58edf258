"""Every metric the alert rules and the Grafana dashboard query is one the services really export.

Each service's ``GET /metrics`` answer comes from its own interpreter
(``tests.deploy.metrics_exposition``); the only other names allowed are the Kafka exporter's,
listed in ``EXTERNAL``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "koalr.json"
SERVICES = ("connector", "syncer", "metrics")
EXTERNAL = {
    # danielqsj/kafka-exporter: consumer-group lag and topic end offsets, read from the brokers.
    "kafka_consumergroup_lag": "kafka-exporter",
    "kafka_topic_partition_current_offset": "kafka-exporter",
}
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w.$])[a-zA-Z_:][\w:]*(?![\w:]|\s*\()")
_LABEL_VALUES = re.compile(r"^label_values\(\s*([a-zA-Z_:][\w:]*)\s*,")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", bare)
    bare = _GROUPING.sub(" ", bare)
    return {name for name in _NAME.findall(bare) if name.lower() not in _KEYWORDS}


def _exposition(service: str) -> str:
    env = {
        **os.environ,
        "KOALR_JWT_SECRET": "x" * 48,
        "KOALR_SEALING_KEYS": "k1:" + "A" * 43,
        "LOG_LEVEL": "ERROR",
    }
    return subprocess.run(
        [sys.executable, "-m", "tests.deploy.metrics_exposition", service],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


@pytest.fixture(scope="module")
def exported() -> dict[str, set[str]]:
    """Per service, every series name its /metrics can carry (a histogram's _bucket, ...)."""
    names: dict[str, set[str]] = {}
    for service in SERVICES:
        families = text_string_to_metric_families(_exposition(service))
        names[service] = {
            family.name + suffix
            for family in families
            for suffix in _SUFFIXES.get(family.type, ("",))
        }
    return names


def _rule_exprs() -> Iterator[tuple[str, str]]:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            yield rule["alert"], rule["expr"]


def _dashboard_exprs() -> Iterator[tuple[str, str]]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = _LABEL_VALUES.match(variable["query"]["query"])
            assert match, f"variable {variable['name']}: expected label_values(metric, label)"
            yield f"variable {variable['name']}", match[1]


def _unknown(exprs: Iterator[tuple[str, str]], exported: dict[str, set[str]]) -> list[str]:
    known = set(EXTERNAL).union(*exported.values())
    return [
        f"{where}: {name}" for where, expr in exprs for name in sorted(metric_names(expr) - known)
    ]


def test_metric_names_are_read_from_promql() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, stream) (rate(koalr_metrics_batch_seconds_bucket"
        '{stream=~"usage|x"}[$__rate_interval]))) > 1e6 and on (stream) '
        "(sum(increase(koalr_metrics_store_failures_total[3h] offset 5m)) or vector(0)) == bool 0"
    )
    assert metric_names(expr) == {
        "koalr_metrics_batch_seconds_bucket",
        "koalr_metrics_store_failures_total",
    }
    assert metric_names('kafka_consumergroup_lag{consumergroup=~"$group"}') == {
        "kafka_consumergroup_lag"
    }


def test_each_service_exports_its_own_instruments(exported: dict[str, set[str]]) -> None:
    assert "koalr_connector_outbox_pending" in exported["connector"]
    assert "koalr_syncer_jobs_total" in exported["syncer"]
    assert "koalr_syncer_jobs_total" not in exported["metrics"]
    assert "koalr_metrics_batch_seconds_bucket" in exported["metrics"]
    assert all("koalr_http_requests_total" in exported[s] for s in SERVICES)


def test_every_alert_rule_queries_exported_metrics(exported: dict[str, set[str]]) -> None:
    assert _unknown(_rule_exprs(), exported) == []


def test_every_dashboard_query_names_an_exported_metric(exported: dict[str, set[str]]) -> None:
    assert _unknown(_dashboard_exprs(), exported) == []


def test_every_exported_koalr_metric_is_on_the_dashboard(exported: dict[str, set[str]]) -> None:
    shown = set().union(*(metric_names(expr) for _, expr in _dashboard_exprs()))
    families = {n.removesuffix("_bucket") for n in shown}
    missing = sorted(
        name
        for name in set().union(*exported.values())
        if name.startswith("koalr_")
        and not name.endswith(("_sum", "_count", "_created"))
        and name.removesuffix("_bucket") not in families
    )
    assert missing == []


def test_dashboard_and_rules_name_only_the_listed_external_metrics() -> None:
    used = set().union(*(metric_names(e) for _, e in [*_rule_exprs(), *_dashboard_exprs()]))
    assert {n for n in used if not n.startswith("koalr_")} == set(EXTERNAL)
