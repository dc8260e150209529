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

-- The records by index: all an append writes besides the hashes, so that
-- its pages fill in order.
CREATE TABLE ledger_leaves (
    idx  BIGINT NOT NULL PRIMARY KEY,
    data BLOB  NOT NULL
);

-- Where each queued record landed.
CREATE TABLE ledger_placed (
    queue_id BIGINT NOT NULL PRIMARY KEY,
    idx      BIGINT NOT NULL
);

-- Lookups by leaf hash (proofs by hash) and by patient pseudonym and time
-- (AuditEvent search), filled shortly after each append, off its path:
-- their keys are random, and indexing them in the append's own
-- transaction made every append write pages all over both indexes.
CREATE TABLE ledger_lookup (
    idx       BIGINT NOT NULL PRIMARY KEY,
    leaf_hash BLOB  NOT NULL,
    rec_type  TEXT   NOT NULL,
    patient   TEXT   NOT NULL, -- '' when the record is about no patient
    time_us   BIGINT NOT NULL
);
CREATE INDEX ledger_lookup_hash ON ledger_lookup (leaf_hash);
CREATE INDEX ledger_lookup_patient ON ledger_lookup (patient, time_us, idx);

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
