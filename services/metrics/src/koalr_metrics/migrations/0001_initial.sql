-- Metrics store: usage facts, their daily rollups, and the projections the API is scoped by.
-- Applied with search_path set to the service's schema; money is numeric cents, never float.

-- Projection of koalr.integrations.v1. A usage record for an integration not seen there yet
-- creates an 'unconfirmed' row (org from the record's envelope) that IntegrationConnected
-- later confirms; 'purged' rows stay as tombstones so late records are dropped.
CREATE TABLE integrations (
    integration_id uuid PRIMARY KEY,
    org_id text NOT NULL,
    provider text NOT NULL,
    external_id text,
    status text NOT NULL
        CHECK (status IN ('unconfirmed', 'connected', 'disconnected', 'purged')),
    connected_at timestamptz,
    changed_at timestamptz NOT NULL -- occurred_at of the last event applied ('-infinity' if none)
);
CREATE INDEX integrations_by_org ON integrations (org_id, provider);

-- One UsageRecord: a member's day with one integration. Natural key (integration, day, member).
CREATE TABLE member_days (
    integration_id uuid NOT NULL,
    day date NOT NULL,
    member_key text NOT NULL,
    email text,
    name text,
    is_active boolean NOT NULL,
    requests bigint NOT NULL CHECK (requests >= 0),
    charged_cents numeric NOT NULL CHECK (charged_cents >= 0),
    fetched_at timestamptz NOT NULL,
    PRIMARY KEY (integration_id, day, member_key)
);

-- The per-model breakdown of a member's day; replaced whole with its member_days row.
CREATE TABLE member_day_models (
    integration_id uuid NOT NULL,
    day date NOT NULL,
    member_key text NOT NULL,
    model text NOT NULL,
    requests bigint NOT NULL CHECK (requests >= 0),
    charged_cents numeric NOT NULL CHECK (charged_cents >= 0),
    PRIMARY KEY (integration_id, day, member_key, model)
);

-- Rollups per (integration, day) and per (integration, day, model); recomputed from the member
-- rows of every touched day in the transaction that changed them, so they always add up.
CREATE TABLE daily_rollups (
    integration_id uuid NOT NULL,
    day date NOT NULL,
    member_days integer NOT NULL,
    active_users integer NOT NULL,
    requests bigint NOT NULL,
    charged_cents numeric NOT NULL,
    PRIMARY KEY (integration_id, day)
);

CREATE TABLE daily_model_rollups (
    integration_id uuid NOT NULL,
    day date NOT NULL,
    model text NOT NULL,
    requests bigint NOT NULL,
    charged_cents numeric NOT NULL,
    PRIMARY KEY (integration_id, day, model)
);

-- The newest CycleSpendSnapshot per integration (by fetched_at) and its per-member rows.
CREATE TABLE cycle_snapshots (
    integration_id uuid PRIMARY KEY,
    cycle_start date NOT NULL,
    total_cents numeric NOT NULL,
    spenders integer NOT NULL, -- members with a non-zero overall spend
    fetched_at timestamptz NOT NULL
);

CREATE TABLE cycle_snapshot_members (
    integration_id uuid NOT NULL REFERENCES cycle_snapshots ON DELETE CASCADE,
    member_key text NOT NULL,
    email text,
    name text,
    spend_cents numeric,
    overall_spend_cents numeric NOT NULL,
    PRIMARY KEY (integration_id, member_key)
);

-- Projection of koalr.sync-status.v1: the latest state per integration (freshness).
CREATE TABLE sync_status (
    integration_id uuid PRIMARY KEY,
    state text NOT NULL,
    reason_code text,
    data_through date,
    last_success_at timestamptz,
    changed_at timestamptz NOT NULL
);

-- Privacy policy per org, set by its admins (defaults apply while no row exists).
CREATE TABLE org_settings (
    org_id text PRIMARY KEY,
    members_can_see_spend boolean NOT NULL,
    min_group_size integer NOT NULL CHECK (min_group_size BETWEEN 1 AND 100),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL
);
