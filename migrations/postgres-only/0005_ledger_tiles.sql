-- Tiles and their parts are written once and read whole: keep them out of
-- line uncompressed (EXTERNAL), so that writing one costs no compression
-- (an entry bundle of random-looking hashes barely compresses; pglz cost a
-- fifth of PostgreSQL's time at 256 appenders, BENCHMARKS.md).
ALTER TABLE ledger_tiles ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE ledger_tile_parts ALTER COLUMN data SET STORAGE EXTERNAL;
