-- GitHub Copilot: member logins, seat snapshots and spend that belongs to no member's day.
-- Applied with search_path set to the service's schema.

-- A Copilot member is its login; kept beside the email (Cursor) so both can be listed.
ALTER TABLE member_days ADD COLUMN login text;

-- The newest SeatsSnapshot per integration (by fetched_at), reduced to what the summary reads:
-- the seats block and the seat cost as a step function (cost_monthly_cents[i] is the sum of
-- the monthly prices of the seats billed from cost_from[i] until the next step).
CREATE TABLE seat_snapshots (
    integration_id uuid PRIMARY KEY,
    plan text NOT NULL,
    total integer NOT NULL CHECK (total >= 0),
    never_used integer NOT NULL CHECK (never_used >= 0),
    active_30d integer NOT NULL CHECK (active_30d >= 0),
    monthly_cents bigint NOT NULL CHECK (monthly_cents >= 0),
    cost_from date[] NOT NULL,
    cost_monthly_cents bigint[] NOT NULL,
    fetched_at timestamptz NOT NULL,
    CHECK (cardinality(cost_from) = cardinality(cost_monthly_cents))
);

-- The seats of that snapshot (per-member seat cost), replaced with it.
CREATE TABLE seats (
    integration_id uuid NOT NULL REFERENCES seat_snapshots ON DELETE CASCADE,
    member_key text NOT NULL,
    login text,
    email text,
    name text,
    plan_type text NOT NULL,
    price_cents integer NOT NULL CHECK (price_cents >= 0),
    created_day date NOT NULL,
    pending_cancellation_date date,
    last_activity_at timestamptz,
    PRIMARY KEY (integration_id, member_key)
);

-- DaySpend: spend of a day outside the member rows (Copilot premium requests), newest by
-- fetched_at per (integration, day, source). The primary key serves the summary's range read.
CREATE TABLE day_spend (
    integration_id uuid NOT NULL,
    day date NOT NULL,
    source text NOT NULL,
    cents numeric NOT NULL CHECK (cents >= 0),
    fetched_at timestamptz NOT NULL,
    PRIMARY KEY (integration_id, day, source)
);
