-- The ledger stores what C2SP tlog-tiles serves (docs/ledger.md): hash
-- tiles (level >= 0: the 256 hashes of one row of a height-8 tile) and
-- entry bundles (level -1: up to 256 records, each after its length as
-- two big-endian bytes).
--
-- A full tile is one row of ledger_tiles, written once. The newest tile
-- of each level is partial: it is kept as parts in ledger_tile_parts, one
-- per batch that extended it, so that an append writes what it adds and
-- never rewrites what is stored; the batch that fills the tile writes it
-- whole to ledger_tiles and deletes its parts.
--
-- A log stored in the layout of 0004 is not converted: the migration
-- refuses to run on one that holds records (store/migrate.go).
DROP TABLE ledger_leaves;
DROP TABLE ledger_hashes;

CREATE TABLE ledger_tiles (
    level INTEGER NOT NULL,
    n     BIGINT  NOT NULL,
    data  BLOB    NOT NULL,
    PRIMARY KEY (level, n)
);

CREATE TABLE ledger_tile_parts (
    level INTEGER NOT NULL,
    n     BIGINT  NOT NULL,
    pos   INTEGER NOT NULL, -- the part's first entry or hash in the tile
    data  BLOB   NOT NULL,
    PRIMARY KEY (level, n, pos)
);

-- The root of the tree of ledger_state.size records, written with it.
ALTER TABLE ledger_state ADD COLUMN root BLOB NOT NULL DEFAULT x'';

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
    idx         INTEGER NOT NULL PRIMARY KEY,
    hash_key    BIGINT  NOT NULL,
    patient_key BIGINT  NOT NULL, -- 0 when the record is about no patient
    leaf_hash   BLOB    NOT NULL,
    patient     TEXT    NOT NULL, -- the pseudonym; '' for none
    rec_type    TEXT    NOT NULL,
    time_us     BIGINT  NOT NULL,
    data        BLOB    NOT NULL
);
CREATE INDEX ledger_lookup_hash ON ledger_lookup (hash_key);
CREATE INDEX ledger_lookup_patient ON ledger_lookup (patient_key, time_us);
