"""OpenTelemetry traces across the services, off unless the standard ``OTEL_*`` variables ask.

One trace follows a connect: the connector's HTTP request (FastAPI instrumentation), the outbox row
(the context is stored with it and the relay continues it), Kafka (FastStream's
``KafkaTelemetryMiddleware`` puts the W3C ``traceparent`` in the message headers and continues it
on the consuming side), the syncer's provider calls (httpx instrumentation) and the metrics write
(asyncpg instrumentation, under :class:`BatchTraceMiddleware` for batch consumers).

Tracing is on when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is
set, unless ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``. The exporter is OTLP over
HTTP/protobuf and reads the other standard variables itself (headers, timeout, protocol, ...), the
resource reads ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``. Off, nothing is exported and
nothing is instrumented: the broker middlewares use OpenTelemetry's no-op tracer.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from faststream import BaseMiddleware
from opentelemetry import context, propagate, trace
from opentelemetry.trace import Link, SpanKind

if TYPE_CHECKING:
    from fastapi import FastAPI
    from faststream.message import StreamMessage
    from opentelemetry.sdk.trace import TracerProvider

_TRACER = trace.get_tracer("koalr")


def tracing_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces (see the module's docstring)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure_tracing(service: str, environ: Mapping[str, str] | None = None) -> bool:
    """Export traces by OTLP when enabled; returns whether it is. Call once per process."""
    if not tracing_enabled(environ):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    env = os.environ if environ is None else environ
    named = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": f"koalr-{service}"}
    provider = TracerProvider(resource=Resource.create(named))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    instrument_clients(provider)
    return True


def instrument_clients(provider: TracerProvider) -> None:
    """Spans for every httpx request and asyncpg query of this process."""
    from opentelemetry.instrumentation import asyncpg as asyncpg_instrumentation
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    asyncpg_instrumentor: Any = asyncpg_instrumentation.AsyncPGInstrumentor  # untyped package
    asyncpg_instrumentor().instrument(tracer_provider=provider)


def instrument_app(app: FastAPI, provider: TracerProvider | None = None) -> None:
    """A server span per HTTP request (``/healthz``, ``/readyz`` and ``/metrics`` left out)."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, excluded_urls="healthz,readyz,metrics"
    )


def current_carrier() -> dict[str, str]:
    """The current trace context as headers (``traceparent``), empty outside a trace."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextmanager
def continued(carrier: Mapping[str, str]) -> Iterator[None]:
    """Run the block in the trace context stored in ``carrier`` (e.g. with an outbox row)."""
    token = context.attach(propagate.extract(dict(carrier)))
    try:
        yield
    finally:
        context.detach(token)


class BatchTraceMiddleware(BaseMiddleware[Any, Any]):
    """Keeps a batch consumer's work in the trace of the batch's first message.

    FastStream's telemetry starts a new trace for a batch and links its messages; the work done
    for the batch (the metrics write) then belongs to no producer's trace. This span continues the
    first message's trace and links the others, so a connect's trace reaches the database.
    """

    async def consume_scope(
        self, call_next: Callable[[StreamMessage[Any]], Awaitable[Any]], msg: StreamMessage[Any]
    ) -> Any:
        batch: list[dict[str, str]] = list(getattr(msg, "batch_headers", None) or [])
        traced = [h for h in batch if "traceparent" in h]
        if not traced:
            return await call_next(msg)
        parent = propagate.extract(traced[0])
        links = [
            Link(span_context)
            for headers in traced[1:]
            if (
                span_context := trace.get_current_span(
                    propagate.extract(headers)
                ).get_span_context()
            ).is_valid
        ]
        with _TRACER.start_as_current_span(
            "batch process",
            context=parent,
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={"messaging.batch.message_count": len(batch)},
        ):
            return await call_next(msg)
