-- Per-integration sequence numbers: events are ordered by them, never by clocks.
-- Applied with search_path set to the connector's schema.

-- The sequence of the last event announcing a change of this integration (outbox); the next
-- one takes event_seq + 1 in the transaction that writes its outbox row. 0: none yet.
ALTER TABLE integrations ADD COLUMN event_seq bigint NOT NULL DEFAULT 0 CHECK (event_seq >= 0);

-- The sequence of the last applied SyncStatusChanged (assigned by the syncer); an event is
-- applied only above it (or when both are 0: unordered events of schema version 1).
ALTER TABLE integrations
    ADD COLUMN sync_status_seq bigint NOT NULL DEFAULT 0 CHECK (sync_status_seq >= 0);

-- Replaced by sync_status_seq: two machines' clocks no longer decide which status wins.
ALTER TABLE integrations DROP COLUMN sync_status_at;
