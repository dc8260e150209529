-- The ledger stores what C2SP tlog-tiles serves (docs/ledger.md): hash
-- tiles (level >= 0: the 256 hashes of one row of a height-8 tile) and
-- entry bundles (level -1: up to 256 records, each after its length as
-- two big-endian bytes).
--
-- A tile is stored as parts, one per batch of appends that extended it:
-- a part holds the hashes or entries the batch added, from number pos of
-- the tile on, and the tile is its parts joined in order. An append
-- writes only what it adds, once; nothing stored is rewritten.
--
-- A log stored in the layout of 0004 is not converted: the migration
-- refuses to run on one that holds records (store/migrate.go).
DROP TABLE ledger_leaves;
DROP TABLE ledger_hashes;

CREATE TABLE ledger_tiles (
    level INTEGER NOT NULL,
    n     BIGINT  NOT NULL,
    pos   INTEGER NOT NULL,
    data  BYTEA  NOT NULL,
    PRIMARY KEY (level, n, pos)
);

-- How far work derived from the log has gone through it, by name: the
-- write AuditEvents the server stores from write records
-- (server/auditwrites.go).
CREATE TABLE ledger_cursors (
    name    TEXT   NOT NULL PRIMARY KEY,
    through BIGINT NOT NULL
);

-- The root of the tree of ledger_state.size records, written with it.
ALTER TABLE ledger_state ADD COLUMN root BYTEA NOT NULL DEFAULT ''::bytea;

-- The lookups by leaf hash (proofs by hash) and by patient and time
-- (AuditEvent search), filled shortly after each append, off its path
-- (store/lookups.go). A row holds a record's index and time and 64-bit
-- keys: the first eight bytes of its leaf hash, and of a hash of its
-- patient's pseudonym. Small rows make the random index pages every batch
-- of lookups writes few (BENCHMARKS.md); the record itself is read from
-- the log and checked. ledger_lookup_state says how far the table goes.
DROP TABLE ledger_lookup;
CREATE TABLE ledger_lookup (
    idx         BIGINT NOT NULL,
    hash_key    BIGINT NOT NULL,
    patient_key BIGINT NOT NULL, -- 0 when the record is about no patient
    time_us     BIGINT NOT NULL
);
CREATE INDEX ledger_lookup_hash ON ledger_lookup (hash_key);
CREATE INDEX ledger_lookup_patient ON ledger_lookup (patient_key, time_us, idx);
CREATE TABLE ledger_lookup_state (
    id        INTEGER NOT NULL PRIMARY KEY,
    looked_up BIGINT  NOT NULL
);
INSERT INTO ledger_lookup_state (id, looked_up) VALUES (1, -1);
