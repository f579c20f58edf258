-- A disconnect with purge=true deletes everything the syncer holds about the integration (its
-- row, schedule, runs, jobs, member directory, completed days, status sequence) and leaves only
-- this tombstone: the integration id and the sequence of the purge event, so a redelivered or
-- overtaken event of that integration is recognised as stale and registers nothing again. It
-- holds no org, no team and no person. Applied with search_path set to the syncer's schema.
CREATE TABLE purged_integrations (
    integration_id uuid PRIMARY KEY,
    purge_seq      bigint NOT NULL CHECK (purge_seq >= 0),
    purged_at      timestamptz NOT NULL DEFAULT now()
);
