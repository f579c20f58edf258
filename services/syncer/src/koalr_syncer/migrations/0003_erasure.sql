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

-- Erasure of a member (GDPR article 17), told by the metrics service with MemberErased. The same
-- hash as there: SHA-256 of the org id, a newline and the normalised identifier. The tombstone
-- keeps the member out of the member directory when the provider lists them again.
CREATE FUNCTION member_hash(org_id text, identifier text) RETURNS bytea
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN sha256(convert_to(org_id || E'\n' || identifier, 'UTF8'));

CREATE TABLE erased_members (
    org_id      text NOT NULL,
    member_hash bytea NOT NULL CHECK (octet_length(member_hash) = 32),
    erased_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, member_hash)
);
