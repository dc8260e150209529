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
    data  BLOB   NOT NULL,
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
ALTER TABLE ledger_state ADD COLUMN root BLOB NOT NULL DEFAULT x'';

-- The lookups by leaf hash and by patient move to a database file of
-- their own beside this one (store/lookups.go).
DROP TABLE ledger_lookup;
