"""One trace follows a connect across the three services: the connector's HTTP request, its
outbox, Kafka, the syncer's provider calls and the metrics write.

The services run in this process (connector and metrics apps with their lifespans, a syncer
runtime) on the real Kafka and PostgreSQL and the provider sandbox; spans go to an in-memory
exporter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.instrumentation import asyncpg as asyncpg_instrumentation
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from koalr_connector.app import create_app as create_connector
from koalr_connector.outbox import OutboxMessage
from koalr_contracts import IntegrationDisconnected, topics
from koalr_devstack.databases import scratch_database
from koalr_runtime.tracing import continued, instrument_app, instrument_clients, tracing_enabled
from koalr_sandbox.testing import SandboxClient, run_sandbox
from koalr_syncer.app import SyncerRuntime
from koalr_syncer.settings import SyncerSettings
from tests.connector.conftest import SEALING_KEYS, TEAM_DEFAULTS, auth, new_org, wait_until
from tests.connector.conftest import make_settings as connector_settings
from tests.contracts.factories import INTEGRATION_ID
from tests.metrics.support import make_settings as metrics_settings
from tests.metrics.support import running_app as running_metrics


def test_tracing_is_off_unless_an_otlp_endpoint_is_configured() -> None:
    assert tracing_enabled({}) is False
    assert tracing_enabled({"OTEL_SERVICE_NAME": "x"}) is False
    assert tracing_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) is True
    assert tracing_enabled({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"})
    assert not tracing_enabled(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}
    )
    assert not tracing_enabled(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}
    )


def test_an_outbox_message_keeps_the_trace_it_was_written_in() -> None:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    event = IntegrationDisconnected(
        org_id="org_1", integration_id=INTEGRATION_ID, provider="cursor"
    )
    assert OutboxMessage.of(topics.INTEGRATIONS, event).trace_context == {}

    with tracer.start_as_current_span("request") as request:
        message = OutboxMessage.of(topics.INTEGRATIONS, event)
    ids = request.get_span_context()

    assert message.trace_context == {
        "traceparent": f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{ids.trace_flags:02x}",
    }
    with continued(message.trace_context), tracer.start_as_current_span("relay"):
        pass
    [relay] = [s for s in exporter.get_finished_spans() if s.name == "relay"]
    assert relay.context.trace_id == ids.trace_id
    assert relay.parent is not None
    assert relay.parent.span_id == ids.span_id
    assert not trace.get_current_span().get_span_context().is_valid


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """The process's tracer provider with an in-memory exporter; httpx and asyncpg instrumented
    for the duration of the test."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        provider = current
    else:
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument_clients(provider)
    try:
        yield provider, exporter
    finally:
        HTTPXClientInstrumentor().uninstrument()
        asyncpg_instrumentor: Any = asyncpg_instrumentation.AsyncPGInstrumentor
        asyncpg_instrumentor().uninstrument()
        exporter.shutdown()


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[str, SandboxClient]]:
    with run_sandbox() as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            yield url, SandboxClient(http, defaults=TEAM_DEFAULTS)


def _chain(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    """The names of ``span`` and its ancestors, root first."""
    names = [span.name]
    parent = span.parent
    while parent is not None and parent.span_id in by_id:
        span = by_id[parent.span_id]
        names.append(span.name)
        parent = span.parent
    return names[::-1]


@pytest.mark.integration
async def test_one_trace_from_the_connect_request_to_the_metrics_write(
    spans: tuple[TracerProvider, InMemorySpanExporter],
    sandbox: tuple[str, SandboxClient],
    kafka_bootstrap_servers: str,
    database_url: str,
    topic_namespace: str,
) -> None:
    provider, exporter = spans
    sandbox_url, sandbox_client = sandbox
    ns = topic_namespace
    async with scratch_database(database_url) as dsn:
        connector = create_connector(
            connector_settings(
                kafka_bootstrap_servers=kafka_bootstrap_servers,
                database_url=dsn,
                topic_namespace=ns,
                cursor_api_base_url=sandbox_url,
            )
        )
        instrument_app(connector, provider)
        syncer = SyncerRuntime(
            SyncerSettings(
                kafka_bootstrap_servers=kafka_bootstrap_servers,
                database_url=dsn,
                topic_namespace=ns,
                topic_partitions=2,
                sealing_keys=SecretStr(SEALING_KEYS),
                cursor_api_base_url=sandbox_url,
                consumer_session_timeout_ms=6000,
                consumer_heartbeat_interval_ms=1000,
            )
        )
        await syncer.start(run_scheduler=False)
        try:
            async with (
                running_metrics(metrics_settings(kafka_bootstrap_servers, dsn, ns)),
                connector.router.lifespan_context(connector),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=connector), base_url="http://connector"
                ) as http,
            ):
                await wait_until(lambda: connector.state.kafka.is_started, timeout_s=60)
                org = new_org()
                team = await sandbox_client.create_team(plan="business")
                response = await http.post(
                    f"/v1/orgs/{org}/integrations",
                    json={"provider": "cursor", "api_key": team.api_key, "team_id": team.team_id},
                    headers=auth(org),
                )
                assert response.status_code == 201, response.text
                [request] = [
                    s
                    for s in exporter.get_finished_spans()
                    if s.name == "POST /v1/orgs/{org_id}/integrations"
                    and s.kind == trace.SpanKind.SERVER
                ]
                trace_id = request.context.trace_id

                def metrics_writes() -> list[tuple[ReadableSpan, list[str]]]:
                    finished = [
                        s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id
                    ]
                    by_id = {s.context.span_id: s for s in finished}
                    return [
                        (s, chain)
                        for s in finished
                        if (s.attributes or {}).get("db.system") == "postgresql"
                        and f"{ns}.{topics.USAGE_RECORDS} create" in (chain := _chain(s, by_id))
                        and chain[0] == request.name  # every ancestor has ended
                    ]

                writes = await wait_until(metrics_writes, timeout_s=90)
        finally:
            await syncer.stop()

    finished = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]
    by_id = {s.context.span_id: s for s in finished}
    _, chain = writes[0]
    # A consumer's span is the child of the "create" span its producer put in the headers.
    hops = [n for n in chain if n.endswith((" create", " process")) or n.startswith("POST ")]
    # connector: the HTTP request, then the outbox relay publishes in the request's trace
    assert hops[:3] == [
        "POST /v1/orgs/{org_id}/integrations",
        f"{ns}.{topics.INTEGRATIONS} create",
        f"{ns}.{topics.INTEGRATIONS} process",  # the syncer's registry
    ]
    # syncer: the registry asks for the backfill, a worker runs it (and its continuations)
    assert hops[3:5] == [f"{ns}.{topics.SYNC_JOBS} create", f"{ns}.{topics.SYNC_JOBS} process"]
    assert set(hops[5:-2]) <= {
        f"{ns}.{topics.SYNC_JOBS} create",
        f"{ns}.{topics.SYNC_JOBS} process",
    }
    # metrics: the batch of usage records is stored in the trace of its first record
    assert hops[-2:] == [f"{ns}.{topics.USAGE_RECORDS} create", "batch process"]
    assert chain[0] == "POST /v1/orgs/{org_id}/integrations"
    # the syncer's provider calls are in the trace, under the sync job
    provider_calls = [
        _chain(s, by_id)
        for s in finished
        if s.kind == trace.SpanKind.CLIENT
        and str(
            (s.attributes or {}).get("url.full", (s.attributes or {}).get("http.url", ""))
        ).startswith(sandbox_url)
    ]
    assert any(f"{ns}.{topics.SYNC_JOBS} process" in c for c in provider_calls), provider_calls
