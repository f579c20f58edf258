-- The audit log of admin actions (see koalr_runtime.audit): who (the token's `sub` and `email`),
-- when (the database's clock), what (action, target, non-secret details), ordered by a
-- database-assigned sequence. Rows are appended in the transaction of the action they describe.
-- Applied with search_path set to the service's schema.
CREATE TABLE audit_log (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id text NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor_sub text NOT NULL,
    actor_email text,
    action text NOT NULL,
    target text,
    details jsonb NOT NULL DEFAULT '{}'::jsonb
);

-- Listing: one org's entries newest first, continuing before a sequence number.
CREATE INDEX audit_log_org_seq ON audit_log (org_id, seq DESC);
