-- The projections apply events by their per-integration sequence, never by producers' clocks.
-- Applied with search_path set to the service's schema.

-- Whether an event numbered `seq` is applied after the one numbered `last_seq`: above it, or
-- both 0 (unordered events of schema version 1, applied in arrival order). An equal sequence is
-- a redelivery, a lower one was overtaken: both are skipped.
CREATE FUNCTION sequence_follows(seq bigint, last_seq bigint) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN seq > last_seq OR (seq = 0 AND last_seq = 0);

-- Sequence of the last koalr.integrations.v1 event applied (0: none, or only unordered ones).
ALTER TABLE integrations ADD COLUMN event_seq bigint NOT NULL DEFAULT 0 CHECK (event_seq >= 0);
ALTER TABLE integrations DROP COLUMN changed_at;

-- Sequence of the last SyncStatusChanged applied (0: none, or only unordered ones).
ALTER TABLE sync_status ADD COLUMN status_seq bigint NOT NULL DEFAULT 0 CHECK (status_seq >= 0);
ALTER TABLE sync_status DROP COLUMN changed_at;
