-- Integration events are applied in the order of their producer's sequence, not of clocks;
-- SyncStatusChanged gets a per-integration sequence; the days of each backfill window that were
-- read completely are kept, so the scheduler repairs the others; a job for an integration not
-- registered yet is retried for a while, measured from its first delivery.

ALTER TABLE integrations
    ADD COLUMN last_event_seq bigint NOT NULL DEFAULT 0 CHECK (last_event_seq >= 0),
    -- The backfill window of the last connect; NULL for integrations connected before this
    -- migration (their days were never tracked, so nothing is repaired for them).
    ADD COLUMN backfill_start date,
    ADD COLUMN backfill_end date,
    ADD CHECK (backfill_start <= backfill_end);

-- The last sequence given to a SyncStatusChanged of an integration (also for integrations the
-- registry never applied, whose jobs are answered with a status).
CREATE TABLE status_sequences (
    integration_id uuid PRIMARY KEY,
    last_sequence  bigint NOT NULL CHECK (last_sequence > 0)
);

-- Days whose usage was read completely and published at least once.
CREATE TABLE complete_days (
    integration_id uuid NOT NULL REFERENCES integrations (integration_id) ON DELETE CASCADE,
    day            date NOT NULL,
    completed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, day)
);

-- The repair of incomplete backfill days: due at repair_at once the last repair job (the
-- backfill job first) is done; repair_attempt counts repairs of the same newest missing day
-- (repair_day), each reading a smaller window.
ALTER TABLE schedules
    ADD COLUMN repair_at timestamptz,
    ADD COLUMN repair_job_id uuid,
    ADD COLUMN repair_published_at timestamptz,
    ADD COLUMN repair_day date,
    ADD COLUMN repair_attempt integer NOT NULL DEFAULT 0 CHECK (repair_attempt >= 0);
CREATE INDEX schedules_repair_due ON schedules (repair_at) WHERE repair_at IS NOT NULL;

-- Jobs whose integration was not registered when they arrived, with their first delivery.
CREATE TABLE awaited_jobs (
    job_id         uuid PRIMARY KEY,
    integration_id uuid NOT NULL,
    first_seen_at  timestamptz NOT NULL DEFAULT now()
);
