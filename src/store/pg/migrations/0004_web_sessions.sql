-- bookcal on PostgreSQL, schema version 4: the web pages' sign-in sessions and
-- one-time sign-in links, keyed by the SHA-256 of their secret (the secret itself is
-- never stored), as the same versioned record (`doc`) the sled engine keeps in its
-- web_sessions tree. `kind` is 's' (a session) or 'l' (a one-time link); a link is
-- taken with DELETE ... RETURNING, so it signs in once however many race for it.
CREATE TABLE web_sessions (
    kind text NOT NULL,
    hash bytea NOT NULL,
    expires timestamptz NOT NULL,
    doc jsonb NOT NULL,
    PRIMARY KEY (kind, hash)
);
CREATE INDEX web_sessions_expires ON web_sessions (expires);
