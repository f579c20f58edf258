-- The message of the last sync status (the syncer's fixed sentence for its reason code), so the
-- summary can say why an integration is in error and what to do. Applied with search_path set to
-- the service's schema.
ALTER TABLE sync_status ADD COLUMN message text;
