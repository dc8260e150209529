-- The ledger stores what C2SP tlog-tiles serves (docs/ledger.md): hash
-- tiles (level >= 0: the 256 hashes of one row of a height-8 tile) and
-- entry bundles (level -1: up to 256 records, each after its length as
-- two big-endian bytes). The newest tile of each level is partial and is
-- rewritten as the log grows; a full one never changes again. An append
-- of a batch writes a handful of these rows instead of a row per record
-- and per stored hash.
--
-- A log stored in the layout of 0004 is not converted: the migration
-- refuses to run on one that holds records (store/migrate.go).
DROP TABLE ledger_leaves;
DROP TABLE ledger_hashes;

CREATE TABLE ledger_tiles (
    level INTEGER NOT NULL,
    n     BIGINT  NOT NULL,
    data  BYTEA   NOT NULL,
    PRIMARY KEY (level, n)
);

-- The root of the tree of ledger_state.size records, written with it.
ALTER TABLE ledger_state ADD COLUMN root BYTEA NOT NULL DEFAULT ''::bytea;

-- The lookup rows carry the record itself, so that listing a patient's
-- records reads no entry bundle.
DROP TABLE ledger_lookup;
CREATE TABLE ledger_lookup (
    idx       BIGINT NOT NULL PRIMARY KEY,
    leaf_hash BYTEA  NOT NULL,
    rec_type  TEXT   NOT NULL,
    patient   TEXT   NOT NULL, -- '' when the record is about no patient
    time_us   BIGINT NOT NULL,
    data      BYTEA  NOT NULL
);
CREATE INDEX ledger_lookup_hash ON ledger_lookup (leaf_hash);
CREATE INDEX ledger_lookup_patient ON ledger_lookup (patient, time_us, idx);
ALTER TABLE ledger_tiles ALTER COLUMN data SET STORAGE EXTERNAL;
