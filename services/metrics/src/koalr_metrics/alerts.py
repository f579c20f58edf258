"""Alerts on ``koalr.alerts.v1``: spend anomalies and newly idle seats, each published once.

What is an alert (pure, :func:`find_alerts`):

- ``spend_anomaly``: a day of the last ``alerts_lookback_days`` (up to ``data_through``) that
  the insights call anomalous; its subject is the day.
- ``idle_seat``: a seat the insights call idle whose idle period has begun by ``data_through``
  (today when there is none): 30 days after its last activity, or after the seat was assigned
  when it was never used. Its subject is the member and that first idle day, so a seat that is
  used again and goes idle again is a new alert, and the same idle period never alerts twice.

How it is published (:class:`AlertsPublisher`), an outbox in PostgreSQL: every alert found is
inserted into ``alerts`` unless its ``alert_key`` is there already (the key is a hash of kind,
org, integration and subject: :func:`koalr_contracts.alert_key`), with the encoded event; then
every row not yet marked published is published and marked. A crash between the publish and
the mark publishes the same event (same ``event_id`` and ``alert_key``) again on the next run:
delivery is at least once, and consumers dedupe on ``alert_key``. One replica runs an
evaluation at a time (a PostgreSQL advisory lock), so two replicas do not publish the same rows
concurrently.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

from faststream.kafka import KafkaBroker
from prometheus_client import Counter

from koalr_contracts import (
    Alert,
    IdleSeatDetails,
    MemberRef,
    SpendAnomalyDetails,
    alert_key,
)
from koalr_metrics.analytics import DayRange, ProviderData
from koalr_metrics.insights import (
    Anomaly,
    AnomalyRule,
    InsightsData,
    SeatHolder,
    idle_holders,
    integration_anomalies,
)
from koalr_metrics.repository import InsightsRepository
from koalr_metrics.service import InsightsService
from koalr_runtime.kafka import publish_events
from koalr_runtime.logs import get_logger

log = get_logger(__name__)

ALERTS = Counter(
    "koalr_metrics_alerts_total",
    "Alerts of koalr.alerts.v1: found, new (first found) and published",
    ["outcome"],
)

Publish = Callable[[Sequence[Alert]], Awaitable[None]]


EVENT_CENTS_EXPONENT: Final = -8
EVENT_CENTS_QUANTUM: Final = Decimal(1).scaleb(EVENT_CENTS_EXPONENT)


def event_cents(value: Decimal) -> Decimal:
    """An amount as the contract's ``Cents`` holds it (at most 8 decimals): a median of amounts
    with 8 decimals, or k times it, can have more; rounded half-even (no change otherwise)."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= EVENT_CENTS_EXPONENT:
        return value
    return value.quantize(EVENT_CENTS_QUANTUM, rounding=ROUND_HALF_EVEN)


def _member(holder: SeatHolder) -> MemberRef:
    return MemberRef(email=holder.email, login=holder.login, name=holder.name)


def anomaly_alert(org_id: str, data: ProviderData, anomaly: Anomaly) -> Alert:
    return Alert(
        alert_key=alert_key("spend_anomaly", org_id, data.integration_id, anomaly.day.isoformat()),
        org_id=org_id,
        integration_id=data.integration_id,
        kind="spend_anomaly",
        provider=data.provider,
        day=anomaly.day,
        details=SpendAnomalyDetails(
            spend_cents=event_cents(anomaly.spend_cents),
            baseline_median_cents=event_cents(anomaly.median_cents),
            baseline_mad_cents=event_cents(anomaly.mad_cents),
            threshold_cents=event_cents(anomaly.threshold_cents),
        ),
    )


def idle_seat_alert(org_id: str, data: ProviderData, holder: SeatHolder, since: date) -> Alert:
    subject = f"{holder.member_key}\x1f{since.isoformat()}"
    return Alert(
        alert_key=alert_key("idle_seat", org_id, data.integration_id, subject),
        org_id=org_id,
        integration_id=data.integration_id,
        kind="idle_seat",
        provider=data.provider,
        day=since,
        details=IdleSeatDetails(
            member=_member(holder),
            last_active=holder.last_active,
            monthly_cents=Decimal(holder.monthly_cents),
        ),
    )


def find_alerts(
    org_id: str,
    data: ProviderData,
    inputs: InsightsData,
    day_range: DayRange,
    rule: AnomalyRule,
) -> list[Alert]:
    """The alerts of one integration: anomalies among the range's days, idle seats whose idle
    period has begun by ``data_through`` (the range's end when there is none)."""
    _, anomalies = integration_anomalies(data, inputs, day_range, rule)
    as_of = data.data_through or day_range.end
    idle = [
        (holder, since)
        for holder in idle_holders(inputs.holders)
        if (since := holder.idle_since) is not None and since <= as_of
    ]
    return [anomaly_alert(org_id, data, a) for a in anomalies] + [
        idle_seat_alert(org_id, data, holder, since) for holder, since in idle
    ]


@dataclass(frozen=True, slots=True)
class AlertsOutcome:
    found: int
    new: int
    published: int
    ran: bool = True
    """False when another replica held the evaluation lock."""


class AlertsPublisher:
    """Evaluates every org's alerts and publishes the new ones through the outbox."""

    def __init__(
        self,
        service: InsightsService,
        repository: InsightsRepository,
        publish: Publish,
        *,
        lookback_days: int,
    ) -> None:
        self._service = service
        self._repo = repository
        self._publish = publish
        self._lookback_days = lookback_days

    async def run_once(self) -> AlertsOutcome:
        """One evaluation: find, insert the new ones, publish every unpublished one."""
        async with self._repo.alerts_lock() as held:
            if not held:
                return AlertsOutcome(0, 0, 0, ran=False)
            day_range = DayRange.ending(self._service.today(), self._lookback_days)
            found: list[Alert] = []
            for org_id in await self._repo.orgs_with_integrations():
                try:
                    found.extend(await self._org_alerts(org_id, day_range))
                except Exception:  # one org's failure must not stop the others
                    log.exception("alerts.org_failed", org_id=org_id)
            new = await self._repo.insert_alerts(found)
            published = await self.publish_pending()
        ALERTS.labels("found").inc(len(found))
        ALERTS.labels("new").inc(new)
        ALERTS.labels("published").inc(published)
        if new or published:
            log.info("alerts.published", found=len(found), new=new, published=published)
        return AlertsOutcome(len(found), new, published)

    async def _org_alerts(self, org_id: str, day_range: DayRange) -> list[Alert]:
        found: list[Alert] = []
        for data, inputs in await self._service.read(org_id, None, day_range):
            found.extend(find_alerts(org_id, data, inputs, day_range, self._service.rule))
        return found

    async def publish_pending(self) -> int:
        """Publish the recorded alerts Kafka has not acknowledged yet, then mark them."""
        published = 0
        while pending := await self._repo.unpublished_alerts():
            alerts = [Alert.model_validate_json(event) for _, event in pending]
            await self._publish(alerts)
            await self._repo.mark_published([key for key, _ in pending])
            published += len(pending)
        return published


def kafka_publisher(broker: KafkaBroker, topic: str) -> Publish:
    """Publish alerts on ``topic`` and wait for Kafka's acknowledgement of each."""

    async def publish(alerts: Sequence[Alert]) -> None:
        await publish_events(broker, topic, alerts)

    return publish
