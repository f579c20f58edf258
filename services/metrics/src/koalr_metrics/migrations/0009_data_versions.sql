-- A counter per org, bumped by every transaction that changes what the org's summary reads
-- (rollups, snapshots, seats, day spend, integrations, sync status, privacy policy), so a cached
-- summary is served only while the counter it was rendered at is still current. The bump is the
-- last statement of each writing transaction, rows in org order: a transaction holding a row
-- lock here waits for nothing else, so the counters add no deadlock. Applied with search_path
-- set to the service's schema.
CREATE TABLE data_versions (
    org_id text PRIMARY KEY,
    version bigint NOT NULL
);
