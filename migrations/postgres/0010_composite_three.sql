-- Composites of three parts (MolecularSequence's coordinates: a token and
-- two numbers): the third part in the columns its type uses, as the second.
-- MolecularSequences stored before this migration have no composite rows;
-- updating one indexes it.
ALTER TABLE search_composite
    ADD COLUMN c3_system TEXT COLLATE "C" NOT NULL DEFAULT '',
    ADD COLUMN c3_code   TEXT COLLATE "C" NOT NULL DEFAULT '',
    ADD COLUMN c3_value  DOUBLE PRECISION,
    ADD COLUMN c3_low    DOUBLE PRECISION,
    ADD COLUMN c3_high   DOUBLE PRECISION,
    ADD COLUMN c3_low_us  BIGINT,
    ADD COLUMN c3_high_us BIGINT,
    ADD COLUMN c3_text   TEXT COLLATE "C" NOT NULL DEFAULT '';
