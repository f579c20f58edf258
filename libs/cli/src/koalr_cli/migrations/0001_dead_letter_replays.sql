-- Dead letters the operator command line has put back on their source topic: each at most once.
CREATE TABLE dead_letter_replays (
    dead_letter_topic text NOT NULL,
    dead_letter_partition integer NOT NULL,
    dead_letter_offset bigint NOT NULL,
    source_topic text NOT NULL,
    replayed_partition integer,
    replayed_offset bigint,
    replayed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dead_letter_topic, dead_letter_partition, dead_letter_offset)
);
