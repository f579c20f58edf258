"""Thin HTTP routes and the sync-status subscriber: decode, authorise, call the service.

Every route authenticates the caller before anything else (even before the body is parsed):
a JWT with the path's ``org_id`` and the ``admin`` role, else 401/403 with the contract's body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any, TypeVar, cast

import asyncpg
import stamina
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Body, Depends, FastAPI, Request, Response, Security
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage

from koalr_connector.errors import ConnectorError
from koalr_connector.instruments import SYNC_STATUS_EVENTS
from koalr_connector.repository import Repository
from koalr_connector.schemas import (
    ConnectRequest,
    CredentialsUpdate,
    CursorConnect,
    ErrorBody,
    IntegrationList,
    IntegrationOut,
    SyncAccepted,
    SyncRequest,
)
from koalr_connector.service import ConnectorService
from koalr_connector.settings import ConnectorSettings
from koalr_contracts import EventDecodeError, SyncStatusChanged, decode_event, topics
from koalr_providers.errors import ProviderError
from koalr_runtime import audit
from koalr_runtime.audit import AuditLogPage
from koalr_runtime.auth import JwtAuthenticator, Principal, authorize
from koalr_runtime.http import error_response
from koalr_runtime.kafka import dead_letter_for, publish_event
from koalr_runtime.logs import bind_correlation, get_logger

log = get_logger(__name__)

T = TypeVar("T")

ERROR_STATUS = {
    "invalid_request": 422,
    "invalid_api_key": 422,
    "insufficient_permissions": 422,
    "github_org_not_found": 422,
    "not_found": 404,
    "already_connected": 409,
    "provider_unavailable": 502,
}

# --- HTTP ---------------------------------------------------------------------------------------


class AdminRoute(APIRoute):
    """A route that authenticates and authorises (admin of the path's org) before anything."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def authenticated(request: Request) -> Response:
            authenticator = cast("JwtAuthenticator", request.app.state.authenticator)
            principal = await authenticator.authenticate(request.headers.get("authorization"))
            authorize(principal, str(request.path_params.get("org_id")), admin_only=True)
            request.state.principal = principal
            return await handler(request)

        return authenticated


def install_error_handler(app: FastAPI) -> None:
    """Map the service's errors onto the contract's statuses and error body."""

    async def on_connector_error(_: Request, exc: Exception) -> Response:
        if not isinstance(exc, ConnectorError | ProviderError):
            raise exc
        return error_response(ERROR_STATUS.get(exc.code, 500), exc.code, exc.message)

    app.add_exception_handler(ConnectorError, on_connector_error)
    app.add_exception_handler(ProviderError, on_connector_error)


def get_service(request: Request) -> ConnectorService:
    return cast("ConnectorService", request.app.state.service)


def get_caller(request: Request) -> Principal:
    """The caller :class:`AdminRoute` authenticated (the actor of the audit log)."""
    return cast("Principal", request.state.principal)


Service = Annotated[ConnectorService, Depends(get_service)]
Caller = Annotated[Principal, Depends(get_caller)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        401: "Missing, malformed, expired or wrongly signed token.",
        403: "Token for another organisation, or not an admin.",
        404: "No such integration in this organisation (`not_found`).",
        422: (
            "`invalid_request`, `invalid_api_key`; GitHub Copilot only: "
            "`insufficient_permissions`, `github_org_not_found`."
        ),
    }.items()
}

router = APIRouter(
    prefix="/v1/orgs/{org_id}/integrations",
    tags=["integrations"],
    route_class=AdminRoute,
    dependencies=[
        Security(
            HTTPBearer(
                auto_error=False,
                description="A platform JWT (HS256 or, from the JWKS, RS256/EdDSA).",
            )
        )
    ],
    responses=_ERRORS,
)


@router.post(
    "",
    status_code=201,
    response_model=IntegrationOut,
    summary="Connect a provider",
    responses={
        409: {"model": ErrorBody, "description": "`already_connected`"},
        502: {"model": ErrorBody, "description": "`provider_unavailable`"},
    },
)
async def connect(
    org_id: str,
    body: Annotated[ConnectRequest, Body()],
    service: Service,
    actor: Caller,
    response: Response,
) -> IntegrationOut:
    if isinstance(body, CursorConnect):
        integration = await service.connect_cursor(
            org_id, body.api_key.get_secret_value(), body.team_id, actor=actor
        )
    else:
        integration = await service.connect_github_copilot(
            org_id, body.token.get_secret_value(), body.github_org, actor=actor
        )
    response.headers["Location"] = f"/v1/orgs/{org_id}/integrations/{integration.id}"
    return IntegrationOut.of(integration)


@router.get("", response_model=IntegrationList, summary="List the organisation's integrations")
async def list_integrations(org_id: str, service: Service) -> IntegrationList:
    found = await service.list_integrations(org_id)
    return IntegrationList(integrations=[IntegrationOut.of(i) for i in found])


@router.get("/{integration_id}", response_model=IntegrationOut, summary="One integration")
async def get_integration(org_id: str, integration_id: str, service: Service) -> IntegrationOut:
    return IntegrationOut.of(await service.get_integration(org_id, integration_id))


@router.put(
    "/{integration_id}/credentials",
    response_model=IntegrationOut,
    summary="Rotate the provider credential",
    responses={502: {"model": ErrorBody, "description": "`provider_unavailable`"}},
)
async def rotate_credentials(
    org_id: str,
    integration_id: str,
    body: Annotated[CredentialsUpdate, Body()],
    service: Service,
    actor: Caller,
) -> IntegrationOut:
    integration = await service.rotate_credentials(
        org_id,
        integration_id,
        api_key=body.api_key.get_secret_value() if body.api_key else None,
        token=body.token.get_secret_value() if body.token else None,
        actor=actor,
    )
    return IntegrationOut.of(integration)


@router.post(
    "/{integration_id}/sync",
    status_code=202,
    response_model=SyncAccepted,
    summary="Request a manual resync of the last `days` days",
)
async def request_sync(
    org_id: str,
    integration_id: str,
    service: Service,
    actor: Caller,
    body: Annotated[SyncRequest | None, Body()] = None,
) -> SyncAccepted:
    days = body.days if body is not None else SyncRequest().days
    job_id = await service.request_sync(org_id, integration_id, days, actor=actor)
    return SyncAccepted(job_id=job_id)


@router.delete(
    "/{integration_id}",
    status_code=204,
    response_class=Response,
    summary="Disconnect (with `purge=true`, stored usage is deleted too)",
)
async def disconnect(
    org_id: str, integration_id: str, service: Service, actor: Caller, purge: bool = False
) -> Response:
    await service.disconnect(org_id, integration_id, purge=purge, actor=actor)
    return Response(status_code=204)


audit_router = APIRouter(
    prefix="/v1/orgs/{org_id}/audit-log",
    tags=["audit"],
    route_class=AdminRoute,
    dependencies=[Security(HTTPBearer(auto_error=False, description="A platform JWT."))],
    responses={k: v for k, v in _ERRORS.items() if k in (401, 403, 422)},
)


@audit_router.get(
    "",
    response_model=AuditLogPage,
    summary="The connector's audit log of the organisation (newest first)",
    description="Admin actions this service performed for the organisation: connect, rotate, "
    "resync, disconnect, and the operator's credential re-seal. Page with `before` set to the "
    "previous page's `next_before`.",
)
async def get_audit_log(
    org_id: str,
    request: Request,
    limit: audit.PageLimit = 50,
    before: audit.PageBefore = None,
) -> AuditLogPage:
    repository = cast("Repository", request.app.state.repository)
    return await repository.audit_page(org_id, limit=limit, before=before)


# --- Kafka --------------------------------------------------------------------------------------

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    KafkaError,
)


async def retry_transient(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    initial_s: float = 0.5,
    max_s: float = 10.0,
) -> T:
    """Run ``operation`` until it succeeds, backing off (``stamina``) while it fails transiently.

    A non-transient error propagates at once; cancellation (shutdown) stops the retries.
    """

    def transient(exc: Exception) -> bool:
        if not isinstance(exc, TRANSIENT_ERRORS):
            return False
        log.warning("retrying_after_transient_error", operation=what, error_type=type(exc).__name__)
        return True

    async for attempt in stamina.retry_context(
        on=transient, attempts=None, timeout=None, wait_initial=initial_s, wait_max=max_s
    ):
        with attempt:
            return await operation()
    raise AssertionError("stamina ended without an attempt")  # pragma: no cover


def _decode_sync_status(topic: str, body: bytes) -> SyncStatusChanged:
    event = decode_event(topic, body)
    if not isinstance(event, SyncStatusChanged):
        raise EventDecodeError(topic, f"unexpected event type {event.event_type}")
    return event


def register_sync_status_subscriber(
    broker: KafkaBroker, settings: ConnectorSettings, service: ConnectorService
) -> None:
    """Consume ``SyncStatusChanged`` into the integrations; bad messages go to dead letters.

    Manual acks: a message is committed once applied, ignored or dead-lettered; transient
    failures (database or Kafka unreachable) are retried, never skipped.
    """
    topic = settings.topic(topics.SYNC_STATUS)
    group = settings.group("connector-sync-status")
    dead_letters = settings.topic(topics.DEAD_LETTERS)

    async def dead_letter(msg: KafkaMessage, error: BaseException, event: Any = None) -> None:
        letter = dead_letter_for(
            msg.raw_message,
            consumer_group=group,
            error=error,
            org_id=getattr(event, "org_id", None),
            integration_id=getattr(event, "integration_id", None),
        )
        await retry_transient(
            lambda: publish_event(broker, dead_letters, letter), what="dead_letter"
        )
        SYNC_STATUS_EVENTS.labels("dead_lettered").inc()
        log.warning(
            "sync_status.dead_lettered",
            error_type=type(error).__name__,
            reason=letter.reason[:300],
            partition=letter.source_partition,
            offset=letter.source_offset,
        )

    @broker.subscriber(
        topic, group_id=group, ack_policy=AckPolicy.MANUAL, auto_offset_reset="earliest"
    )
    async def on_sync_status(msg: KafkaMessage) -> None:
        try:
            event = _decode_sync_status(topic, msg.body)
        except EventDecodeError as exc:
            await dead_letter(msg, exc)
            await msg.ack()
            return
        bind_correlation(
            str(event.correlation_id), integration_id=str(event.integration_id), topic=topic
        )
        try:
            outcome = await retry_transient(
                lambda: service.apply_sync_status(event), what="apply_sync_status"
            )
        except Exception as exc:  # a message that cannot be applied is parked
            log.exception("sync_status.apply_failed", error_type=type(exc).__name__)
            await dead_letter(msg, exc, event)
            await msg.ack()
            return
        SYNC_STATUS_EVENTS.labels(outcome).inc()
        log.info("sync_status.consumed", outcome=outcome, state=event.state)
        await msg.ack()
