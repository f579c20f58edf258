-- Erasure of a member on request (GDPR article 17) and the per-org retention of member days.
-- Applied with search_path set to the service's schema.

-- The one way a member identifier is hashed, here and at ingest: SHA-256 of the org id and the
-- normalised identifier (an email lower-cased, or 'github:' and the login lower-cased). An org id
-- never holds a newline (identifiers are validated at the edge), so the pair is unambiguous.
CREATE FUNCTION member_hash(org_id text, identifier text) RETURNS bytea
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN sha256(convert_to(org_id || E'\n' || identifier, 'UTF8'));

-- Tombstones: members erased from an org. The ingest drops their records (counted, not
-- dead-lettered), so a later sync or a replayed record cannot bring them back. Only the hash is
-- kept: the tombstone itself holds no email or login in clear.
CREATE TABLE erased_members (
    org_id      text NOT NULL,
    member_hash bytea NOT NULL CHECK (octet_length(member_hash) = 32),
    erased_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, member_hash)
);

-- Erasure requests, done by a job in the metrics service (one transaction each; a crash rolls
-- the attempt back and the request stays pending until a process picks it up again).
-- `member` is a masked form of the identifier (its first character and the email's domain),
-- enough for an admin to recognise the request, never the identifier itself.
CREATE TABLE erasures (
    erasure_id   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id       text NOT NULL,
    member_hash  bytea NOT NULL CHECK (octet_length(member_hash) = 32),
    member       text NOT NULL,
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done')),
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    rows_removed bigint CHECK (rows_removed >= 0),
    CHECK ((status = 'done') = (completed_at IS NOT NULL))
);
CREATE INDEX erasures_pending ON erasures (requested_at) WHERE status = 'pending';

-- Member days (and their rollups and day spend) older than this many days are deleted by the
-- retention job; PostgreSQL's clock (today as a UTC day) decides which days those are.
ALTER TABLE org_settings
    ADD COLUMN retention_days integer NOT NULL DEFAULT 400
        CHECK (retention_days BETWEEN 31 AND 3650);
