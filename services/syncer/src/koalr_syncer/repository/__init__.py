"""All SQL of the syncer (schema ``settings.db_schema``, reached through the pool's search_path),
one repository per role: the registry's integrations, the member directory, runs and jobs, the
scheduler's claims."""

from koalr_syncer.repository.integrations import IntegrationRepository
from koalr_syncer.repository.members import MemberRepository
from koalr_syncer.repository.runs import RunRepository
from koalr_syncer.repository.schedules import ScheduleRepository
from koalr_syncer.repository.status import StatusRepository

__all__ = [
    "IntegrationRepository",
    "MemberRepository",
    "RunRepository",
    "ScheduleRepository",
    "StatusRepository",
]
