-- bookcal on PostgreSQL, schema version 2: the push state of each offering (its
-- Google watch channel, what it received, whether its calendar was unshared), kept
-- as the same versioned record (`doc`) the sled engine stores in its channels tree.
-- The channel id is derived from the record for the webhook's lookup of a delivery.
CREATE TABLE push_channels (
    offering uuid PRIMARY KEY,
    channel_id text UNIQUE,
    doc jsonb NOT NULL
);
