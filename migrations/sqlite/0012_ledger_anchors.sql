-- Where the write record of each stored version was queued (of every
-- type, not only Consent as consent_anchors noted), so that the provider
-- can find, through ledger_placed, the record a version's write committed
-- to and prove the version is the one it names (GET /ledger/written).
-- A patient's rows go when their key is erased.
CREATE TABLE ledger_anchors (
    res_type   TEXT   NOT NULL,
    res_id     TEXT   NOT NULL,
    version_id BIGINT NOT NULL,
    queue_id   BIGINT NOT NULL,
    PRIMARY KEY (res_type, res_id, version_id)
);
INSERT INTO ledger_anchors (res_type, res_id, version_id, queue_id)
    SELECT 'Consent', res_id, version_id, queue_id FROM consent_anchors;
DROP TABLE consent_anchors;
