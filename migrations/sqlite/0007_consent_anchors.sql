-- Where each Consent version's ledger record was queued, so that a
-- decision can cite the ledger index of the consent version it used
-- (through ledger_placed, once the record is integrated).
CREATE TABLE consent_anchors (
    res_id     TEXT   NOT NULL,
    version_id BIGINT NOT NULL,
    queue_id   BIGINT NOT NULL,
    PRIMARY KEY (res_id, version_id)
);
