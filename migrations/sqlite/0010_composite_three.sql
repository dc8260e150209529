-- Composites of three parts (MolecularSequence's coordinates: a token and
-- two numbers): the third part in the columns its type uses, as the second.
-- MolecularSequences stored before this migration have no composite rows;
-- updating one indexes it.
ALTER TABLE search_composite ADD COLUMN c3_system TEXT NOT NULL DEFAULT '';
ALTER TABLE search_composite ADD COLUMN c3_code   TEXT NOT NULL DEFAULT '';
ALTER TABLE search_composite ADD COLUMN c3_value  REAL;
ALTER TABLE search_composite ADD COLUMN c3_low    REAL;
ALTER TABLE search_composite ADD COLUMN c3_high   REAL;
ALTER TABLE search_composite ADD COLUMN c3_low_us  BIGINT;
ALTER TABLE search_composite ADD COLUMN c3_high_us BIGINT;
ALTER TABLE search_composite ADD COLUMN c3_text   TEXT NOT NULL DEFAULT '';
