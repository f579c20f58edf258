"""Kafka topic names. Every topic is keyed by ``integration_id``.

Services never spell a topic name themselves: they import these constants (and may prefix them
with a namespace, see ``koalr_runtime.settings``), so a rename is one change here.
"""

from typing import Final

INTEGRATIONS: Final = "koalr.integrations.v1"
"""IntegrationConnected, IntegrationCredentialsRotated, IntegrationDisconnected (connector)."""

SYNC_JOBS: Final = "koalr.sync-jobs.v1"
"""SyncJobRequested (syncer scheduler, connector for manual resyncs) -> syncer workers."""

USAGE_RECORDS: Final = "koalr.usage-records.v1"
"""UsageRecord and CycleSpendSnapshot (syncer) -> metrics."""

SYNC_STATUS: Final = "koalr.sync-status.v1"
"""SyncStatusChanged (syncer) -> metrics, connector."""

MEMBER_ERASURES: Final = "koalr.member-erasures.v1"
"""MemberErased (metrics, once per integration of the org) -> syncer."""

DEAD_LETTERS: Final = "koalr.dead-letters.v1"
"""DeadLetter: any message a consumer could not process, with its origin and the reason."""

ALERTS: Final = "koalr.alerts.v1"
"""Alert (metrics): spend anomalies and newly idle seats, once per ``alert_key``."""

ALL_TOPICS: Final = (
    INTEGRATIONS,
    SYNC_JOBS,
    USAGE_RECORDS,
    SYNC_STATUS,
    MEMBER_ERASURES,
    DEAD_LETTERS,
    ALERTS,
)
