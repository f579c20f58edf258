-- Integrations of organisations with providers, and the transactional outbox of their events.
-- Applied with search_path set to the connector's schema.

CREATE TABLE integrations (
    id                   uuid PRIMARY KEY,
    org_id               text NOT NULL,
    provider             text NOT NULL CHECK (provider IN ('cursor', 'github_copilot')),
    external_id          text NOT NULL,
    plan                 text NOT NULL CHECK (plan IN ('team', 'business', 'enterprise')),
    status               text NOT NULL CHECK (status IN ('active', 'degraded', 'failed')),
    -- AES-GCM sealed provider key (koalr_runtime.sealing); NULL once disconnected.
    sealed_credential    text,
    correlation_id       uuid NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    disconnected_at      timestamptz,
    -- Sync state, from koalr.sync-status.v1.
    sync_state           text NOT NULL DEFAULT 'pending'
                         CHECK (sync_state IN ('pending', 'syncing', 'idle', 'error')),
    sync_last_success_at timestamptz,
    sync_data_through    date,
    sync_progress        jsonb,
    sync_error_code      text,
    sync_error_message   text,
    -- occurred_at of the last applied SyncStatusChanged; older ones are ignored.
    sync_status_at       timestamptz,
    CHECK ((disconnected_at IS NULL) = (sealed_credential IS NOT NULL))
);

-- One live integration per (org, provider, team or GitHub org).
CREATE UNIQUE INDEX integrations_live_unique
    ON integrations (org_id, provider, external_id)
    WHERE disconnected_at IS NULL;

CREATE INDEX integrations_live_by_org
    ON integrations (org_id, created_at)
    WHERE disconnected_at IS NULL;

CREATE TABLE outbox (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    integration_id uuid NOT NULL,
    -- Contract topic name (koalr_contracts.topics); the namespace is applied when publishing.
    topic          text NOT NULL,
    event_id       uuid NOT NULL UNIQUE,
    event_type     text NOT NULL,
    message_key    bytea NOT NULL,
    payload        bytea NOT NULL,
    headers        jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    published_at   timestamptz,
    attempts       integer NOT NULL DEFAULT 0,
    last_error     text
);

CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_unpublished_by_integration
    ON outbox (integration_id, id) WHERE published_at IS NULL;
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;
