-- Per-owner data keys, stored only as the KMS wrapped them. owner is
-- "Patient/<id>", "provider" (resources outside every patient's
-- compartment) or "blind-index" (the HMAC key of blind search values).
-- Erasure sets wrapped to NULL and erased_us: the tombstone keeps the
-- owner from ever getting a new key and says why reads answer 410.
CREATE TABLE data_keys (
    owner       TEXT    NOT NULL PRIMARY KEY,
    kms         TEXT    NOT NULL, -- the KMS that wrapped it (local, vault:...)
    kms_version INTEGER NOT NULL, -- the KMS key version that wrapped it
    wrapped     BLOB,
    created_us  BIGINT  NOT NULL,
    erased_us   BIGINT
);
-- Rotation lists the keys wrapped under an older KMS key version.
CREATE INDEX data_keys_stale ON data_keys (kms, kms_version, owner);

-- The owner whose data key seals a version's body (NULL for a delete), and
-- on resources that of the current version. An erased resource is withdrawn
-- (deleted and erased both true) and answers 410 saying it was erased.
ALTER TABLE resource_versions ADD COLUMN key_owner TEXT;
ALTER TABLE resources ADD COLUMN key_owner TEXT;
ALTER TABLE resources ADD COLUMN erased BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX resources_key_owner ON resources (key_owner);

-- Blind strings add a row per prefix length (plen > 0) whose exact column
-- is empty: :exact only ever looks at whole values, so its index leaves
-- the prefix rows out (a third of the index writes of a blind Patient).
DROP INDEX search_string_exact;
CREATE INDEX search_string_exact ON search_string (res_type, param, exact, res_id) WHERE plen = 0;
