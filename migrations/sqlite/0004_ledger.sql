-- The disclosure ledger: an RFC 6962 Merkle log (docs/ledger.md).
--
-- Records wait in ledger_queue (written in the same transaction as what
-- they record) until the sequencer integrates a batch of them: it gives
-- each the next index, stores it in ledger_leaves with the Merkle hashes it
-- adds (ledger_hashes, indexed as golang.org/x/mod/sumdb/tlog stores them)
-- and advances ledger_state.size, all in one transaction.
CREATE TABLE ledger_queue (
    queue_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    data       BLOB  NOT NULL,
    queued_us  BIGINT NOT NULL
);

-- rec_type, patient (the pseudonym) and time_us repeat fields of the
-- record so that a patient's records can be listed (AuditEvent search).
CREATE TABLE ledger_leaves (
    idx       BIGINT NOT NULL PRIMARY KEY,
    queue_id  BIGINT, -- NULL for records integrated straight from memory
    leaf_hash BLOB  NOT NULL,
    data      BLOB  NOT NULL,
    rec_type  TEXT   NOT NULL,
    patient   TEXT   NOT NULL, -- '' when the record is about no patient
    time_us   BIGINT NOT NULL
);
CREATE UNIQUE INDEX ledger_leaves_queue ON ledger_leaves (queue_id);
CREATE INDEX ledger_leaves_hash ON ledger_leaves (leaf_hash);
CREATE INDEX ledger_leaves_patient ON ledger_leaves (patient, time_us, idx);

CREATE TABLE ledger_hashes (
    idx  BIGINT NOT NULL PRIMARY KEY, -- tlog.StoredHashIndex(level, n)
    hash BLOB  NOT NULL
);

-- One row: the tree size, and the sequencer's lease (several replicas on
-- one database: only the holder integrates).
CREATE TABLE ledger_state (
    id           INTEGER NOT NULL PRIMARY KEY,
    size         BIGINT  NOT NULL,
    lease_holder TEXT    NOT NULL,
    lease_until  BIGINT  NOT NULL
);
INSERT INTO ledger_state (id, size, lease_holder, lease_until) VALUES (1, 0, '', 0);

-- Every checkpoint the log signed, kept: a later one must be consistent
-- with all of them.
CREATE TABLE ledger_checkpoints (
    size       BIGINT NOT NULL PRIMARY KEY,
    root       BLOB  NOT NULL,
    note       BLOB  NOT NULL,
    signed_us  BIGINT NOT NULL
);
