-- Bulk Data exports (docs/export.md). Each kick-off is a job that a
-- worker on any replica claims under a lease (lease_us) and runs batch by
-- batch; resume_at and the counters advance with each batch's files, in
-- one transaction, so that another worker can take over where a stopped
-- one left off. spec is what the client asked and who it is, sealed with
-- the job's data key (it may name patients).
CREATE TABLE export_jobs (
    id             TEXT    NOT NULL PRIMARY KEY,
    client         TEXT    NOT NULL,
    spec           BLOB    NOT NULL,
    status         TEXT    NOT NULL, -- accepted, in-progress, completed, failed
    resume_at      TEXT    NOT NULL, -- where the next batch starts
    batch          BIGINT  NOT NULL, -- the number of the next batch
    patients_done  BIGINT  NOT NULL,
    patients_total BIGINT  NOT NULL,
    resources      BIGINT  NOT NULL,
    error          TEXT    NOT NULL,
    created_us     BIGINT  NOT NULL,
    updated_us     BIGINT  NOT NULL,
    expires_us     BIGINT  NOT NULL, -- 0 until it ends
    worker         TEXT    NOT NULL,
    lease_us       BIGINT  NOT NULL  -- until when worker holds it
);
CREATE INDEX export_jobs_due ON export_jobs (status, lease_us);

-- The output: ndjson of one resource type, sealed with the job's own data
-- key (owner export/<id>), in parts numbered within the job's batches.
-- A file is its type's parts in order.
CREATE TABLE export_parts (
    job      TEXT    NOT NULL,
    res_type TEXT    NOT NULL,
    seq      BIGINT  NOT NULL,
    n        INTEGER NOT NULL, -- resources in the part
    data     BLOB    NOT NULL,
    PRIMARY KEY (job, res_type, seq)
);
