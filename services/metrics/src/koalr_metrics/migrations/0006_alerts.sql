-- Insights and alerts: Cursor's per-seat price per org, and the alerts outbox.
-- Applied with search_path set to the service's schema.

-- What a Cursor seat costs the org per month (Teams list price by default), for idle seats.
ALTER TABLE org_settings
    ADD COLUMN cursor_seat_price_cents integer NOT NULL DEFAULT 4000
        CHECK (cursor_seat_price_cents BETWEEN 0 AND 1000000);

-- Every alert found, once per alert_key (insert-if-new), with the encoded event to publish;
-- published_at is set once Kafka acknowledged it. Rows still unpublished (a crash between the
-- insert and the publish) are published again by the next evaluation, with the same event.
CREATE TABLE alerts (
    alert_key text PRIMARY KEY,
    org_id text NOT NULL,
    integration_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN ('spend_anomaly', 'idle_seat')),
    day date NOT NULL,
    event text NOT NULL, -- the Alert as published (JSON), so a re-publish sends the same event
    created_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX alerts_unpublished ON alerts (created_at) WHERE published_at IS NULL;
CREATE INDEX alerts_by_org ON alerts (org_id, day);
