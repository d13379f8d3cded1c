-- bookcal on PostgreSQL, schema version 3: the job queue.
--
-- One row per job. `doc` is the job's versioned record (the same JSON the sled
-- engine stores); `offering`, `kind` and `due` are derived from it for the queue's
-- indexes. A job is *pending* while `lease_owner` is NULL and *running* while a
-- replica holds it: `lease_owner` names that replica (a random id per process) and
-- `lease_until` (the database's clock) when its lease ends unless renewed. A job
-- whose lease ended is free again: the next claim by any replica makes it pending
-- (merged with a follow-up queued during the run) and may take it.
--
-- The invariants are indexes:
-- - one pending job per offering and kind (requests coalesce into it with
--   INSERT .. ON CONFLICT on `jobs_pending`);
-- - one running job per offering across all replicas (`jobs_running`): a replica
--   claiming a second job of a running offering fails to commit.
--
-- Version 1 created an unused table of this name (no engine wrote to it).
DROP TABLE jobs;

CREATE TABLE jobs (
    seq bigint PRIMARY KEY,
    offering uuid NOT NULL,
    kind text NOT NULL,
    due timestamptz NOT NULL,
    doc jsonb NOT NULL,
    lease_owner text,
    lease_until timestamptz,
    CHECK ((lease_owner IS NULL) = (lease_until IS NULL))
);
CREATE UNIQUE INDEX jobs_pending ON jobs (offering, kind) WHERE lease_owner IS NULL;
CREATE UNIQUE INDEX jobs_running ON jobs (offering) WHERE lease_owner IS NOT NULL;
CREATE INDEX jobs_due ON jobs (due, seq) WHERE lease_owner IS NULL;
CREATE INDEX jobs_lease ON jobs (lease_until) WHERE lease_owner IS NOT NULL;
