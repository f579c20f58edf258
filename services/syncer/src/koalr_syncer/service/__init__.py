"""The syncer's logic, free of Kafka and HTTP frameworks, split by role:

- :mod:`.registry`: applies ``koalr.integrations.v1`` and starts a backfill on connect;
- :mod:`.runner`: runs one ``SyncJobRequested`` (a bounded chunk of a run);
- :mod:`.scheduler`: publishes due incremental syncs and retries;
- :mod:`.status`: publishes ``SyncStatusChanged``;
- :mod:`.erasures`: applies ``MemberErased`` to the member directory.
"""

from koalr_syncer.service.common import (
    BadMessageError,
    Clock,
    IntegrationBusyError,
    IntegrationNotRegisteredYetError,
    Publisher,
    utc_now,
)
from koalr_syncer.service.erasures import Erasures
from koalr_syncer.service.registry import Registry
from koalr_syncer.service.runner import JobRunner
from koalr_syncer.service.scheduler import Scheduler
from koalr_syncer.service.status import StatusReporter

__all__ = [
    "BadMessageError",
    "Clock",
    "Erasures",
    "IntegrationBusyError",
    "IntegrationNotRegisteredYetError",
    "JobRunner",
    "Publisher",
    "Registry",
    "Scheduler",
    "StatusReporter",
    "utc_now",
]
