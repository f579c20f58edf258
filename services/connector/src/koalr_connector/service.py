"""The connector's logic: connect, rotate, resync, disconnect, and follow sync status.

No framework here: the HTTP routes and the Kafka subscriber in ``handlers.py`` call these methods.
Every change to an integration and the event announcing it are written in one transaction (the
outbox, see ``outbox.py``); credentials are sealed before they are stored or put on an event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, TypeVar
from uuid import UUID, uuid4

import asyncpg

from koalr_connector.copilot import CopilotCheck, CopilotValidator, github_login
from koalr_connector.errors import (
    AlreadyConnectedError,
    ConnectInProgressError,
    ConnectorError,
    InvalidRequestError,
    NotFoundError,
)
from koalr_connector.instruments import CONNECTS, VALIDATIONS
from koalr_connector.integrations import (
    Integration,
    SyncError,
    SyncSummary,
    apply_sync_status,
    plan_error,
)
from koalr_connector.outbox import OutboxMessage
from koalr_connector.repository import Conn, ConnectBlocked, Repository
from koalr_contracts import (
    ORG_ID_RULE,
    AnyEvent,
    ErrorCode,
    IntegrationConnected,
    IntegrationCredentialsRotated,
    IntegrationDisconnected,
    Plan,
    Provider,
    SyncJobRequested,
    SyncStatusChanged,
    is_org_id,
    topics,
)
from koalr_providers.cursor import CursorPlanDetector
from koalr_providers.errors import ProviderError
from koalr_runtime.audit import Actor, AuditAction
from koalr_runtime.logs import get_logger
from koalr_runtime.sealing import Sealer, SealingError

log = get_logger(__name__)


SyncStatusOutcome = Literal["applied", "stale", "unknown"]
Standing = tuple[ErrorCode, str] | None
"""The error an integration carries from the start (a Team plan, GitHub's metrics policy off)."""
T = TypeVar("T")

IntegrationEvent = IntegrationConnected | IntegrationCredentialsRotated | IntegrationDisconnected


@dataclass(frozen=True, slots=True)
class OperatorActor:
    """The actor of an operator command in the audit log (it has no token)."""

    sub: str
    email: str | None = None


RESEAL_ACTOR = OperatorActor(sub="operator:koalr-connector reseal")


@dataclass(slots=True)
class ResealReport:
    """What a re-seal run did (counts only; never a credential)."""

    key_id: str
    scanned: int = 0
    resealed: int = 0
    current: int = 0
    batches: int = 0
    failed: list[str] = field(default_factory=list)
    """Integration ids whose credential did not open."""

    def summary(self) -> str:
        line = (
            f"re-sealed {self.resealed} credential(s) with key {self.key_id}; "
            f"{self.current} already current; {len(self.failed)} could not be opened "
            f"({self.scanned} scanned in {self.batches} batch(es))"
        )
        if self.failed:
            line += "; not opened: " + ", ".join(self.failed)
        return line


def _today() -> date:
    return datetime.now(UTC).date()


class ConnectorService:
    def __init__(
        self,
        repository: Repository,
        cursor: CursorPlanDetector,
        copilot: CopilotValidator,
        sealer: Sealer,
        *,
        backfill_days: int = 30,
        claim_ttl_s: float = 60.0,
        on_outbox_write: Callable[[], None] = lambda: None,
        today: Callable[[], date] = _today,
    ) -> None:
        self._repository = repository
        self._cursor = cursor
        self._copilot = copilot
        self._sealer = sealer
        self._backfill_days = backfill_days
        self._claim_ttl_s = claim_ttl_s
        self._on_outbox_write = on_outbox_write
        self._today = today

    # --- connect ----------------------------------------------------------------------------

    async def connect_cursor(
        self, org_id: str, api_key: str, team_id: str, *, actor: Actor
    ) -> Integration:
        return await self._connect(
            org_id, "cursor", team_id, api_key, lambda: self._check_cursor(api_key), actor=actor
        )

    async def connect_github_copilot(
        self, org_id: str, token: str, github_org: str, *, actor: Actor
    ) -> Integration:
        login = github_login(github_org)
        return await self._connect(
            org_id,
            "github_copilot",
            login,
            token,
            lambda: self._check_copilot(token, login),
            actor=actor,
        )

    async def _connect(
        self,
        org_id: str,
        provider: Provider,
        external_id: str,
        secret: str,
        validate: Callable[[], Awaitable[tuple[Plan, Standing]]],
        *,
        actor: Actor,
    ) -> Integration:
        """Claim the key, ask the provider (nothing else is stored before), then store.

        The claim makes the duplicate check and the reservation one step: of concurrent
        connects of the same team only the claimant asks the provider; the others get 409 at
        once. A refused key (or any failure) releases the claim; storing releases it in the
        transaction that inserts the integration.
        """
        _check_org_id(org_id)
        try:
            claim = await self._repository.claim_connect(
                org_id, provider, external_id, self._claim_ttl_s
            )
            if isinstance(claim, ConnectBlocked):
                if claim.existing_id is None:
                    raise ConnectInProgressError(provider, external_id)
                raise AlreadyConnectedError(provider, external_id, claim.existing_id)
            try:
                plan, standing = await validate()
                integration = await self._store_new(
                    org_id,
                    provider,
                    external_id,
                    plan,
                    secret,
                    standing=standing,
                    actor=actor,
                    claim=claim,
                )
            except BaseException:
                await self._repository.release_claim(None, claim)
                raise
        except (ConnectorError, ProviderError) as exc:
            CONNECTS.labels(provider, exc.code).inc()
            raise
        CONNECTS.labels(
            provider, "connected" if integration.status == "active" else "degraded"
        ).inc()
        return integration

    async def _store_new(
        self,
        org_id: str,
        provider: Provider,
        external_id: str,
        plan: Plan,
        secret: str,
        *,
        standing: Standing,
        actor: Actor,
        claim: UUID,
    ) -> Integration:
        integration_id = uuid4()
        status: Literal["active", "degraded"] = "active" if standing is None else "degraded"
        error = None if standing is None else SyncError(*standing)
        sealed = self._sealer.seal(secret, context=str(integration_id))
        draft = Integration(
            id=integration_id,
            org_id=org_id,
            provider=provider,
            external_id=external_id,
            plan=plan,
            status=status,
            correlation_id=uuid4(),
            created_at=datetime.now(UTC),
            sync=SyncSummary(state="pending", last_error=error),
            sealed_credential=sealed,
        )
        event = IntegrationConnected(
            org_id=org_id,
            integration_id=integration_id,
            correlation_id=draft.correlation_id,
            provider=provider,
            external_id=external_id,
            plan=plan,
            status=status,
            status_reason=None if standing is None else standing[0],
            sealed_credential=sealed,
            backfill_days=self._backfill_days,
        )
        try:
            async with self._repository.transaction() as conn:
                stored = await self._repository.insert(conn, draft)
                await self._announce(conn, event)
                await self._audit(
                    conn,
                    stored,
                    actor,
                    "integration.connect",
                    {
                        "provider": provider,
                        "external_id": external_id,
                        "plan": plan,
                        "status": stored.status,
                    },
                )
                await self._repository.release_claim(conn, claim)
        except asyncpg.UniqueViolationError:
            async with self._repository.transaction() as conn:
                existing = await self._repository.find_live_id(conn, org_id, provider, external_id)
            raise AlreadyConnectedError(provider, external_id, existing or integration_id) from None
        self._on_outbox_write()
        log.info(
            "integration.connected",
            org_id=org_id,
            integration_id=str(stored.id),
            correlation_id=str(stored.correlation_id),
            provider=provider,
            plan=plan,
            status=stored.status,
        )
        return stored

    # --- read -------------------------------------------------------------------------------

    async def list_integrations(self, org_id: str) -> list[Integration]:
        async with self._repository.transaction() as conn:
            return await self._repository.list_live(conn, org_id)

    async def get_integration(self, org_id: str, integration_id: str) -> Integration:
        uid = _parse_id(integration_id)
        async with self._repository.transaction() as conn:
            found = await self._repository.get_live(conn, uid, org_id=org_id)
        if found is None:
            raise NotFoundError(integration_id)
        return found

    # --- rotate -----------------------------------------------------------------------------

    async def rotate_credentials(
        self,
        org_id: str,
        integration_id: str,
        *,
        api_key: str | None,
        token: str | None,
        actor: Actor,
    ) -> Integration:
        current = await self.get_integration(org_id, integration_id)
        if current.provider == "cursor":
            if api_key is None or token is not None:
                raise InvalidRequestError(
                    'A Cursor integration takes {"api_key": "..."}, not a token; '
                    "send the new Cursor Admin API key."
                )
            secret = api_key
            plan, standing = await self._check_cursor(secret)
        else:
            if token is None or api_key is not None:
                raise InvalidRequestError(
                    'A GitHub Copilot integration takes {"token": "..."}, not an api_key; '
                    "send the new GitHub token."
                )
            secret = token
            plan, standing = await self._check_copilot(secret, current.external_id)
        sealed = self._sealer.seal(secret, context=str(current.id))
        async with self._repository.transaction() as conn:
            locked = await self._repository.get_live(conn, current.id, org_id=org_id, lock=True)
            if locked is None:
                raise NotFoundError(integration_id)
            state = "pending" if locked.sync.state == "error" else locked.sync.state
            rotated = replace(
                locked,
                plan=plan,
                status="active" if standing is None else "degraded",
                sealed_credential=sealed,
                sync=replace(
                    locked.sync,
                    state=state,
                    last_error=None if standing is None else SyncError(*standing),
                ),
            )
            stored = await self._repository.save_state(conn, rotated)
            event = IntegrationCredentialsRotated(
                org_id=org_id,
                integration_id=stored.id,
                correlation_id=stored.correlation_id,
                provider=stored.provider,
                plan=plan,
                sealed_credential=sealed,
            )
            await self._announce(conn, event)
            await self._audit(
                conn,
                stored,
                actor,
                "integration.rotate_credentials",
                {"provider": stored.provider, "plan": plan, "status": stored.status},
            )
        self._on_outbox_write()
        log.info(
            "integration.credentials_rotated",
            org_id=org_id,
            integration_id=str(stored.id),
            correlation_id=str(stored.correlation_id),
            plan=plan,
            status=stored.status,
        )
        return stored

    # --- resync -----------------------------------------------------------------------------

    async def request_sync(
        self, org_id: str, integration_id: str, days: int, *, actor: Actor
    ) -> UUID:
        uid = _parse_id(integration_id)
        today = self._today()
        async with self._repository.transaction() as conn:
            current = await self._repository.get_live(conn, uid, org_id=org_id, lock=True)
            if current is None:
                raise NotFoundError(integration_id)
            event = SyncJobRequested(
                org_id=org_id,
                integration_id=current.id,
                correlation_id=current.correlation_id,
                provider=current.provider,
                reason="manual",
                window_start=today - timedelta(days=days - 1),
                window_end=today,
            )
            await self._enqueue(conn, topics.SYNC_JOBS, event)
            await self._audit(
                conn,
                current,
                actor,
                "integration.resync",
                {
                    "days": days,
                    "job_id": str(event.job_id),
                    "window_start": event.window_start.isoformat(),
                    "window_end": event.window_end.isoformat(),
                },
            )
        self._on_outbox_write()
        log.info(
            "integration.sync_requested",
            org_id=org_id,
            integration_id=str(current.id),
            correlation_id=str(current.correlation_id),
            job_id=str(event.job_id),
            days=days,
        )
        return event.job_id

    # --- disconnect -------------------------------------------------------------------------

    async def disconnect(
        self, org_id: str, integration_id: str, *, purge: bool, actor: Actor
    ) -> None:
        uid = _parse_id(integration_id)
        async with self._repository.transaction() as conn:
            gone = await self._repository.disconnect(conn, org_id, uid)
            if gone is None:
                raise NotFoundError(integration_id)
            event = IntegrationDisconnected(
                org_id=org_id,
                integration_id=gone.id,
                correlation_id=gone.correlation_id,
                provider=gone.provider,
                purge=purge,
            )
            await self._announce(conn, event)
            await self._audit(
                conn,
                gone,
                actor,
                "integration.disconnect",
                {"provider": gone.provider, "purge": purge},
            )
            if purge:
                # Nothing of it stays here: the row, and its events once they are on Kafka.
                await self._repository.purge(conn, gone.id)
        self._on_outbox_write()
        log.info(
            "integration.disconnected",
            org_id=org_id,
            integration_id=str(gone.id),
            correlation_id=str(gone.correlation_id),
            purge=purge,
        )

    # --- sync status ------------------------------------------------------------------------

    async def apply_sync_status(self, event: SyncStatusChanged) -> SyncStatusOutcome:
        """Fold a sync-status event into its integration (unknown and stale events are ignored)."""
        async with self._repository.transaction() as conn:
            current = await self._repository.get_live(
                conn, event.integration_id, org_id=event.org_id, lock=True
            )
            if current is None:
                return "unknown"
            updated = apply_sync_status(current, event)
            if updated is None:
                return "stale"
            await self._repository.save_state(conn, updated)
        return "applied"

    # --- sealing-key rotation ---------------------------------------------------------------

    async def reseal_credentials(self, *, batch_size: int = 100) -> ResealReport:
        """Re-seal every stored credential sealed with an older key than the active one.

        Works through the live integrations by id, ``batch_size`` at a time, one transaction per
        batch: an interrupted run keeps what it committed, and running again finishes the rest
        (credentials already under the active key are left alone, so a rerun is harmless).
        Each re-sealed credential is announced with ``IntegrationCredentialsRotated`` (same plan),
        so the syncer holds the new form before the old key is retired, and recorded in the
        org's audit log. A credential that does not open (its key is no longer configured, or it
        was tampered with) is counted and named by integration id, never by value.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        report = ResealReport(key_id=self._sealer.active_key_id)
        after: UUID | None = None
        while True:
            async with self._repository.transaction() as conn:
                batch = await self._repository.live_credentials_after(conn, after, limit=batch_size)
                resealed = [await self._reseal_one(conn, current, report) for current in batch]
            if not batch:
                break
            report.batches += 1
            after = batch[-1].id
            if any(resealed):
                self._on_outbox_write()
            log.info(
                "integration.reseal_batch",
                batch=report.batches,
                resealed=report.resealed,
                current=report.current,
                failed=len(report.failed),
            )
        log.info(
            "integration.credentials_resealed",
            key_id=report.key_id,
            resealed=report.resealed,
            current=report.current,
            failed=len(report.failed),
        )
        return report

    async def _reseal_one(self, conn: Conn, current: Integration, report: ResealReport) -> bool:
        sealed = current.sealed_credential
        report.scanned += 1
        if sealed is None or not self._sealer.needs_reseal(sealed):
            report.current += 1
            return False
        context = str(current.id)
        try:
            plaintext = self._sealer.open(sealed, context=context)
        except SealingError as exc:
            report.failed.append(context)
            log.warning("integration.reseal_failed", integration_id=context, reason=str(exc))
            return False
        resealed = self._sealer.seal(plaintext, context=context)
        stored = await self._repository.save_state(
            conn, replace(current, sealed_credential=resealed)
        )
        event = IntegrationCredentialsRotated(
            org_id=stored.org_id,
            integration_id=stored.id,
            correlation_id=stored.correlation_id,
            provider=stored.provider,
            plan=stored.plan,
            sealed_credential=resealed,
        )
        await self._announce(conn, event)
        await self._audit(
            conn,
            stored,
            RESEAL_ACTOR,
            "integration.reseal",
            {"sealing_key_id": report.key_id, "previous_sealing_key_id": sealed.split(".")[1]},
        )
        report.resealed += 1
        return True

    # --- helpers ----------------------------------------------------------------------------

    async def _check_cursor(self, api_key: str) -> tuple[Plan, Standing]:
        plan = await self._validated("cursor", lambda: self._cursor.detect_plan(api_key), str)
        return plan, _plan_standing(plan)

    async def _check_copilot(self, token: str, login: str) -> tuple[Plan, Standing]:
        check = await self._validated(
            "github_copilot", lambda: self._copilot.check(token, login), _copilot_label
        )
        return check.plan, check.degraded_by

    async def _validated(
        self, provider: Provider, ask: Callable[[], Awaitable[T]], label: Callable[[T], str]
    ) -> T:
        """The provider's answer about a credential; its refusals say that nothing was saved.

        ``label`` names a successful answer in the validations metric (the plan, or the
        standing error)."""
        try:
            answer = await ask()
        except (ProviderError, ConnectorError) as exc:
            VALIDATIONS.labels(provider, exc.code).inc()
            raise type(exc)(f"{exc.message} Nothing was saved.") from None
        VALIDATIONS.labels(provider, label(answer)).inc()
        return answer

    async def _audit(
        self,
        conn: Conn,
        integration: Integration,
        actor: Actor,
        action: AuditAction,
        details: dict[str, Any],
    ) -> None:
        """Record an admin action in the audit log, in the transaction that performs it."""
        await self._repository.audit(
            conn,
            org_id=integration.org_id,
            actor=actor,
            action=action,
            target=str(integration.id),
            details=details,
        )

    async def _announce(self, conn: Conn, event: IntegrationEvent) -> None:
        """Put an integration event in the outbox with the integration's next sequence.

        Called in the transaction that made the change: the sequence, the change and the
        outbox row commit together, so consumers can order the events by ``sequence``.
        """
        sequence = await self._repository.next_event_sequence(conn, event.integration_id)
        await self._enqueue(
            conn, topics.INTEGRATIONS, event.model_copy(update={"sequence": sequence})
        )

    async def _enqueue(self, conn: Conn, topic: str, event: AnyEvent) -> None:
        await self._repository.enqueue(conn, OutboxMessage.of(topic, event))


def _plan_standing(plan: Plan) -> Standing:
    error = plan_error(plan)
    return None if error is None else ("insufficient_plan", error.message)


def _copilot_label(check: CopilotCheck) -> str:
    return check.plan if check.degraded_by is None else check.degraded_by[0]


def _parse_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise NotFoundError(text[:64]) from None


def _check_org_id(org_id: str) -> None:
    if not is_org_id(org_id):
        raise InvalidRequestError(f"The organisation id may only contain {ORG_ID_RULE}.")
