-- The syncer's registry of integrations, its schedules, and the progress of sync runs and jobs.
-- Applied with search_path set to the syncer's schema.

CREATE TABLE integrations (
    integration_id    uuid PRIMARY KEY,
    org_id            text NOT NULL,
    provider          text NOT NULL,
    external_id       text NOT NULL,
    plan              text NOT NULL CHECK (plan IN ('team', 'business', 'enterprise')),
    status            text NOT NULL CHECK (status IN ('active', 'degraded', 'failed')),
    status_reason     text,
    -- Sealed with AES-GCM (koalr_runtime.sealing); opened only for a provider call.
    -- NULL once the integration is disconnected.
    sealed_credential text,
    backfill_days     integer NOT NULL CHECK (backfill_days BETWEEN 1 AND 90),
    correlation_id    uuid NOT NULL,
    last_event_id     uuid NOT NULL,
    last_event_at     timestamptz NOT NULL,
    data_through      date,
    last_success_at   timestamptz,
    connected_at      timestamptz NOT NULL,
    disconnected_at   timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- One periodic incremental sync per connected integration. Claimed by the scheduler loop of any
-- syncer process with SELECT ... FOR UPDATE SKIP LOCKED.
CREATE TABLE schedules (
    integration_id uuid PRIMARY KEY REFERENCES integrations (integration_id) ON DELETE CASCADE,
    next_run_at    timestamptz NOT NULL,
    interval_s     double precision NOT NULL CHECK (interval_s > 0),
    paused         boolean NOT NULL DEFAULT false,
    last_job_id    uuid,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE NOT paused;

-- A run syncs one window of days (a backfill, a scheduled incremental, a manual resync). It is
-- worked through newest day first by one or more jobs; next_day is the newest day not yet read,
-- so a redelivered or continued job resumes after the last completed chunk.
CREATE TABLE runs (
    run_id         uuid PRIMARY KEY,
    integration_id uuid NOT NULL REFERENCES integrations (integration_id) ON DELETE CASCADE,
    reason         text NOT NULL CHECK (reason IN ('backfill', 'scheduled', 'manual')),
    window_start   date NOT NULL,
    window_end     date NOT NULL,
    next_day       date NOT NULL,
    status         text NOT NULL
        CHECK (status IN ('running', 'retrying', 'blocked', 'done', 'failed', 'cancelled')),
    attempt        integer NOT NULL DEFAULT 0,
    retry_at       timestamptz,
    members_synced boolean NOT NULL DEFAULT false,
    error_code     text,
    error_message  text,
    correlation_id uuid NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz,
    CHECK (window_start <= window_end)
);
CREATE INDEX runs_by_integration ON runs (integration_id, status);
CREATE INDEX runs_retry_due ON runs (retry_at) WHERE status = 'retrying';

-- Every job message seen, so a job delivered twice (a redelivery, a re-published schedule or
-- continuation with the same deterministic id) is done once.
CREATE TABLE jobs (
    job_id         uuid PRIMARY KEY,
    run_id         uuid NOT NULL,
    integration_id uuid NOT NULL,
    status         text NOT NULL CHECK (status IN ('running', 'done')),
    outcome        text,
    deliveries     integer NOT NULL DEFAULT 1,
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz
);
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE status = 'done';

-- The provider's member list (names and ids for the usage records; all a Team plan exposes).
CREATE TABLE members (
    integration_id uuid NOT NULL REFERENCES integrations (integration_id) ON DELETE CASCADE,
    email          text NOT NULL,
    name           text,
    external_id    text,
    role           text,
    is_removed     boolean NOT NULL DEFAULT false,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, email)
);
