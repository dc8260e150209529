-- Tile parts are written once and read whole: keep the large ones (a
-- batch's entries) out of line uncompressed (EXTERNAL), so that writing
-- one costs no compression: records of hashes and pseudonyms barely
-- compress, and pglz took a fifth of PostgreSQL's time at 256 appenders
-- (BENCHMARKS.md).
ALTER TABLE ledger_tiles ALTER COLUMN data SET STORAGE EXTERNAL;
