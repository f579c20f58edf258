-- The trace context (W3C `traceparent`, `tracestate`) of the request that wrote an outbox row, so
-- the relay publishes the event in that request's trace. Empty when tracing is off.
ALTER TABLE outbox ADD COLUMN trace_context jsonb NOT NULL DEFAULT '{}'::jsonb;
