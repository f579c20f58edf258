-- A connect in progress. Its claim on (org, provider, external id lower-cased) is taken before
-- the provider is asked, so concurrent connects of the same team or GitHub organisation ask the
-- provider once: the others find the claim (or the integration it became) and get 409. A
-- refused key removes its claim; a claim left by a crashed process lapses at expires_at, which
-- PostgreSQL sets and compares with its own now(). Applied with search_path set to the
-- connector's schema.
CREATE TABLE connect_claims (
    org_id       text NOT NULL,
    provider     text NOT NULL CHECK (provider IN ('cursor', 'github_copilot')),
    external_key text NOT NULL CHECK (external_key = lower(external_key)),
    claim_id     uuid NOT NULL UNIQUE,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (org_id, provider, external_key)
);

-- The live-twin check of a claim compares external ids lower-cased.
CREATE INDEX integrations_live_by_external_key
    ON integrations (org_id, provider, lower(external_id))
    WHERE disconnected_at IS NULL;

-- A disconnect with purge=true deletes the integration's row and its published outbox rows in
-- its transaction; its outbox rows still to be published (the purge event last) are marked so
-- that the relay deletes them once on Kafka instead of keeping them for outbox_retention_h.
ALTER TABLE outbox ADD COLUMN purge_when_published boolean NOT NULL DEFAULT false;
