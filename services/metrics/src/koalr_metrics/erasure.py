"""Erasure of a member on request (GDPR article 17): the identifier rules, the request and its
status, and the job that carries requests out.

A request tombstones the member at once (a keyed row in ``erased_members``: the ingest drops the
member's records from then on, so no later sync brings the member back) and queues the deletion
of what is already stored. The job deletes it in one transaction per request; a crash rolls the
attempt back and the request is taken up again, by this process or another replica.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final
from uuid import UUID

from prometheus_client import Counter

from koalr_contracts import MemberErased
from koalr_metrics.privacy_repository import (
    ErasureDone,
    ErasureNotice,
    ErasureRow,
    PrivacyRepository,
)
from koalr_metrics.schemas import ErasureAcceptedOut, ErasureOut
from koalr_runtime.auth import Principal, authorize
from koalr_runtime.http import ApiError
from koalr_runtime.logs import get_logger

log = get_logger(__name__)

GITHUB_PREFIX: Final = "github:"
_LOGIN: Final = re.compile(r"[a-z0-9][a-z0-9_.-]{0,99}")
_MAX_EMAIL: Final = 320

ERASURES = Counter("koalr_metrics_erasures_total", "Member erasures, by outcome", ["outcome"])


@dataclass(frozen=True, slots=True)
class MemberIdentifier:
    """A member as an admin names it: normalised the way the usage records are (emails
    lower-cased, GitHub logins lower-cased behind ``github:``), and a masked form to show."""

    normalised: str
    masked: str


def parse_member(text: str) -> MemberIdentifier:
    """The member of an erasure request: an email, or ``github:<login>``; 422 otherwise."""
    value = text.strip().lower()
    if value.startswith(GITHUB_PREFIX):
        login = value.removeprefix(GITHUB_PREFIX)
        if not _LOGIN.fullmatch(login):
            raise _invalid(
                "The GitHub login after `github:` may hold only letters, digits, `-`, `_` and "
                "`.` (at most 100 characters)."
            )
        return MemberIdentifier(value, f"{GITHUB_PREFIX}{login[0]}***")
    local, at, domain = value.partition("@")
    if (
        not at
        or not local
        or not domain
        or "@" in domain
        or len(value) > _MAX_EMAIL
        or any(c.isspace() or not c.isprintable() for c in value)
    ):
        raise _invalid(
            "Name the member by email address (as the Cursor members list shows it) or as "
            "`github:<login>` for a GitHub Copilot member."
        )
    return MemberIdentifier(value, f"{local[0]}***@{domain}")


def _invalid(message: str) -> ApiError:
    return ApiError(422, "invalid_request", message)


class ErasureService:
    """The erasure routes: request (admins of the org) and status."""

    def __init__(
        self, repository: PrivacyRepository, *, on_request: Callable[[], None] = lambda: None
    ) -> None:
        self._repo = repository
        self._on_request = on_request

    async def request(self, principal: Principal, org_id: str, member: str) -> ErasureAcceptedOut:
        authorize(principal, org_id, admin_only=True)
        identifier = parse_member(member)
        row = await self._repo.request_erasure(
            org_id, identifier.normalised, identifier.masked, actor=principal
        )
        ERASURES.labels("requested").inc()
        # Never the identifier itself in the logs: the masked form and the request id.
        log.info(
            "erasure.requested",
            org_id=org_id,
            erasure_id=str(row.erasure_id),
            member=row.member,
            requested_by=principal.sub,
        )
        self._on_request()
        return {"erasure_id": row.erasure_id, "status": "pending"}

    async def status(self, principal: Principal, org_id: str, erasure_id: str) -> ErasureOut:
        authorize(principal, org_id, admin_only=True)
        try:
            uid = UUID(erasure_id)
        except ValueError:
            uid = None
        row = None if uid is None else await self._repo.erasure(org_id, uid)
        if row is None:
            raise ApiError(
                404, "not_found", f"No erasure {erasure_id[:64]} exists in this organisation."
            )
        return erasure_document(row)


def erasure_document(row: ErasureRow) -> ErasureOut:
    return {
        "erasure_id": row.erasure_id,
        "member": row.member,
        "status": "done" if row.status == "done" else "pending",
        "requested_at": row.requested_at,
        "completed_at": row.completed_at,
        "rows_removed": row.rows_removed,
    }


Announce = Callable[[ErasureNotice], Awaitable[None]]


def member_erased_events(notice: ErasureNotice) -> list[MemberErased]:
    """One ``MemberErased`` per integration of the org (the topic is keyed by integration)."""
    return [
        MemberErased(
            org_id=notice.org_id,
            integration_id=integration_id,
            erasure_id=notice.erasure_id,
            member_hash=notice.member_hash.hex(),
        )
        for integration_id in notice.integrations
    ]


async def run_pending_erasures(repository: PrivacyRepository, announce: Announce) -> int:
    """Carry out every pending erasure (one transaction each); returns how many were done."""
    done = 0
    while True:
        result: ErasureDone | None = await repository.erase_next(announce)
        if result is None:
            return done
        done += 1
        ERASURES.labels("done").inc()
        log.info(
            "erasure.done",
            org_id=result.org_id,
            erasure_id=str(result.erasure_id),
            rows_removed=result.rows_removed,
            member_days=result.member_days,
            days_recomputed=result.days_recomputed,
        )
