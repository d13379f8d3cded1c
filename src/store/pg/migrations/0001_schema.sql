-- bookcal on PostgreSQL, schema version 1.
--
-- Every table keeps the record itself in `doc`: the same versioned JSON record
-- (`{"v":"1",...}`) the sled engine stores, so both engines read and write one format
-- and `bookcal migrate` copies records unchanged. The other columns are derived from
-- the record in the same statement that writes it: what listing filters, sorts,
-- counts and joins on, each with the index it needs. Text that lists sort by is
-- `COLLATE "C"` (byte order, as the sled engine sorts).

CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE users (
    id uuid PRIMARY KEY,
    username text NOT NULL UNIQUE,
    doc jsonb NOT NULL
);

CREATE TABLE api_tokens (
    hash bytea PRIMARY KEY,
    user_id uuid NOT NULL
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE customers (
    id uuid PRIMARY KEY,
    name text COLLATE "C" NOT NULL,
    owners uuid[] NOT NULL,
    managers uuid[] NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX customers_owners ON customers USING gin (owners);
CREATE INDEX customers_managers ON customers USING gin (managers);

CREATE TABLE projects (
    id uuid PRIMARY KEY,
    customer uuid NOT NULL,
    name text COLLATE "C" NOT NULL,
    members uuid[] NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX projects_members ON projects USING gin (members);
CREATE INDEX projects_customer ON projects (customer);
CREATE INDEX projects_name_trgm ON projects USING gin (lower(name) gin_trgm_ops);

CREATE TABLE offerings (
    id uuid PRIMARY KEY,
    customer uuid NOT NULL,
    name text COLLATE "C" NOT NULL,
    slug text COLLATE "C" NOT NULL,
    category uuid NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX offerings_customer ON offerings (customer);
CREATE INDEX offerings_name ON offerings (name, id);

-- Booking resources. `customer` is the project's customer (the consumer) and
-- `provider` the offering's customer, as they were when the resource was written.
CREATE TABLE resources (
    id uuid PRIMARY KEY,
    offering uuid NOT NULL,
    project uuid NOT NULL,
    customer uuid NOT NULL,
    provider uuid NOT NULL,
    name text COLLATE "C" NOT NULL,
    slug text COLLATE "C" NOT NULL,
    backend_id text COLLATE "C" NOT NULL,
    state text COLLATE "C" NOT NULL,
    created timestamptz NOT NULL,
    modified timestamptz NOT NULL,
    created_by uuid NOT NULL,
    first_start timestamptz,
    creation_order uuid,
    doc jsonb NOT NULL
);
CREATE INDEX resources_name ON resources (name, id);
CREATE INDEX resources_offering ON resources (offering, name, id);
CREATE INDEX resources_project ON resources (project);
CREATE INDEX resources_customer ON resources (customer);
CREATE INDEX resources_provider ON resources (provider);
CREATE INDEX resources_created_by ON resources (created_by);
CREATE INDEX resources_state ON resources (state);
CREATE INDEX resources_created ON resources (created);
CREATE INDEX resources_modified ON resources (modified);
CREATE INDEX resources_backend_id ON resources (backend_id);
CREATE INDEX resources_name_trgm ON resources USING gin (lower(name) gin_trgm_ops);
CREATE INDEX resources_slug_trgm ON resources USING gin (lower(slug) gin_trgm_ops);
CREATE INDEX resources_backend_id_trgm ON resources USING gin (lower(backend_id) gin_trgm_ops);

-- The slots of booking resources, one row each. `live` while the resource holds its
-- slots (Creating or OK). The exclusion constraint is the invariant itself: no two
-- live slots of one offering overlap (half-open intervals), whichever replica
-- writes them.
CREATE TABLE slots (
    resource uuid NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    n integer NOT NULL,
    offering uuid NOT NULL,
    backend_id text COLLATE "C" NOT NULL,
    start_at timestamptz NOT NULL,
    end_at timestamptz NOT NULL,
    live boolean NOT NULL,
    PRIMARY KEY (resource, n),
    CONSTRAINT slots_no_overlap EXCLUDE USING gist (
        offering WITH =,
        tstzrange(start_at, end_at, '[)') WITH &&
    ) WHERE (live)
);
CREATE INDEX slots_offering ON slots (offering, start_at);
CREATE INDEX slots_backend_id ON slots (backend_id);

CREATE TABLE orders (
    id uuid PRIMARY KEY,
    offering uuid NOT NULL,
    project uuid NOT NULL,
    customer uuid NOT NULL,
    provider uuid NOT NULL,
    resource uuid NOT NULL,
    state text COLLATE "C" NOT NULL,
    kind text NOT NULL,
    created timestamptz NOT NULL,
    modified timestamptz NOT NULL,
    created_by uuid NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX orders_created ON orders (created, id);
CREATE INDEX orders_offering ON orders (offering, state);
CREATE INDEX orders_project ON orders (project);
CREATE INDEX orders_customer ON orders (customer);
CREATE INDEX orders_provider ON orders (provider);
CREATE INDEX orders_resource ON orders (resource);
CREATE INDEX orders_created_by ON orders (created_by);
CREATE INDEX orders_state ON orders (state);

-- An order's attachment (one per order).
CREATE TABLE attachments (
    order_id uuid PRIMARY KEY,
    doc jsonb NOT NULL
);

-- Busy time imported from an offering's calendar, replaced as one generation.
CREATE TABLE busy (
    offering uuid PRIMARY KEY,
    generation bigint NOT NULL,
    doc jsonb NOT NULL
);

-- The Google side: calendar records, the slot mapping, external events.
CREATE TABLE calendars (
    offering uuid PRIMARY KEY,
    doc jsonb NOT NULL
);

CREATE TABLE slot_map (
    offering uuid NOT NULL,
    backend_id text COLLATE "C" NOT NULL,
    doc jsonb NOT NULL,
    PRIMARY KEY (offering, backend_id)
);

CREATE TABLE externals (
    offering uuid PRIMARY KEY,
    doc jsonb NOT NULL
);

-- Feed tokens (by the SHA-256 of their secret) and the feeds' slot sequences.
CREATE TABLE feed_tokens (
    hash bytea PRIMARY KEY,
    scope_kind text NOT NULL,
    scope_id uuid NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX feed_tokens_scope ON feed_tokens (scope_kind, scope_id);

CREATE TABLE slot_sequences (
    backend_id text PRIMARY KEY,
    doc jsonb NOT NULL
);

-- The job queue. A replica claims a job by setting a lease (owner and expiry) with
-- FOR UPDATE SKIP LOCKED; a job whose lease expired is free again.
CREATE TABLE jobs (
    seq bigint PRIMARY KEY,
    offering uuid NOT NULL,
    doc jsonb NOT NULL,
    lease_owner text,
    lease_until timestamptz
);
CREATE INDEX jobs_offering ON jobs (offering);

-- Named values of the installation (the feeds' UID key).
CREATE TABLE meta (
    name text PRIMARY KEY,
    value bytea NOT NULL
);

-- Unique increasing numbers (job sequence numbers, busy generations).
CREATE SEQUENCE ids;

-- The data version feed caches compare with; bumped (and announced with NOTIFY
-- bookcal_generation) by every transaction that changes what feeds show.
CREATE TABLE generation (
    id integer PRIMARY KEY CHECK (id = 1),
    value bigint NOT NULL
);
INSERT INTO generation VALUES (1, 0);
