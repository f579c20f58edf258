"""Erasure of a member (GDPR article 17) in the syncer: on ``MemberErased`` the member's row of
the provider's member directory is deleted and the member tombstoned, so the next listing of the
provider's members does not store them again."""

from __future__ import annotations

from koalr_contracts import MemberErased
from koalr_runtime.logs import get_logger
from koalr_syncer.repository import MemberRepository

log = get_logger(__name__)


class Erasures:
    def __init__(self, members: MemberRepository) -> None:
        self._members = members

    async def apply(self, event: MemberErased) -> str:
        """Idempotent: a redelivered event deletes nothing more."""
        removed = await self._members.erase(
            event.org_id, event.integration_id, bytes.fromhex(event.member_hash)
        )
        log.info("erasure.applied", erasure_id=str(event.erasure_id), rows_removed=removed)
        return "erased"
