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

-- The root of the tree of ledger_state.size records, written with it.
ALTER TABLE ledger_state ADD COLUMN root BYTEA NOT NULL DEFAULT ''::bytea;

-- The lookups by leaf hash (proofs by hash) and by patient and time
-- (AuditEvent search), filled shortly after each append, off its path.
-- Their indexes are keyed by 64-bit integers (the first eight bytes of the
-- leaf hash; of a hash of the patient's pseudonym): random keys, so every
-- batch of lookups writes pages all over both indexes, and small keys make
-- those pages few (BENCHMARKS.md). A query checks the full leaf hash or
-- pseudonym in the row. The row carries the record itself, so that
-- listing a patient's records reads no entry bundle.
DROP TABLE ledger_lookup;
CREATE TABLE ledger_lookup (
    idx         BIGINT  NOT NULL PRIMARY KEY,
    hash_key    BIGINT  NOT NULL,
    patient_key BIGINT  NOT NULL, -- 0 when the record is about no patient
    leaf_hash   BYTEA   NOT NULL,
    patient     TEXT    NOT NULL, -- the pseudonym; '' for none
    rec_type    TEXT    NOT NULL,
    time_us     BIGINT  NOT NULL,
    data        BYTEA   NOT NULL
);
CREATE INDEX ledger_lookup_hash ON ledger_lookup (hash_key);
CREATE INDEX ledger_lookup_patient ON ledger_lookup (patient_key, time_us, idx);
