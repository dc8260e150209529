-- Ledger records of format 2 (docs/ledger.md): a leaf commits to whom and
-- what it is about without saying; the commitment's opening is kept here,
-- sealed under the data key of whose data the record is about, and goes
-- with that key when it is erased. Rows are keyed by the record's index,
-- so that integrating a batch appends them in order. patient_key and
-- time_us feed the lookup table (by patient and time), which the server
-- fills from here, never from a leaf.
CREATE TABLE ledger_openings (
    idx         BIGINT NOT NULL PRIMARY KEY,
    owner       TEXT   COLLATE "C" NOT NULL,
    patient_key BIGINT NOT NULL,
    time_us     BIGINT NOT NULL,
    sealed      BYTEA  NOT NULL
);
CREATE INDEX ledger_openings_owner ON ledger_openings (owner);

-- A queued record's opening waits with it (sealed NULL: none).
ALTER TABLE ledger_queue
    ADD COLUMN owner TEXT COLLATE "C" NOT NULL DEFAULT '',
    ADD COLUMN patient_key BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN time_us BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN sealed BYTEA;
