"""Prometheus instruments of the connector (served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CONNECTS = Counter(
    "koalr_connector_connects_total",
    "Connect requests by provider and outcome (connected, degraded or the error code).",
    ["provider", "outcome"],
)
VALIDATIONS = Counter(
    "koalr_connector_key_validations_total",
    "Credential validations against the provider, by result (the plan or the error code).",
    ["provider", "result"],
)
OUTBOX_PUBLISHED = Counter(
    "koalr_connector_outbox_published_total",
    "Outbox events acknowledged by Kafka, by event type.",
    ["event_type"],
)
OUTBOX_FAILURES = Counter(
    "koalr_connector_outbox_publish_failures_total",
    "Outbox publish attempts that failed and will be retried.",
)
OUTBOX_PENDING = Gauge(
    "koalr_connector_outbox_pending", "Outbox events not yet acknowledged by Kafka."
)
SYNC_STATUS_EVENTS = Counter(
    "koalr_connector_sync_status_events_total",
    "Consumed SyncStatusChanged events by outcome (applied, stale, unknown, dead_lettered).",
    ["outcome"],
)
