-- Peer logs among providers (docs/peers.md): witness, evidence, mirror.
--
-- As a witness: for each peer log (origin), the newest checkpoint this
-- provider cosigned, with its size and root. An add-checkpoint request
-- advances it only from the size it names, so two requests never both
-- advance from one state.
CREATE TABLE witness_state (
    origin     TEXT   NOT NULL PRIMARY KEY,
    size       BIGINT NOT NULL,
    root       BYTEA  NOT NULL,
    note       TEXT   NOT NULL,
    updated_us BIGINT NOT NULL
);

-- Two checkpoints signed by one peer log that cannot both be true (one
-- size with two roots, or a tree its own log cannot prove consistent with
-- an earlier one): kept as evidence, the log untrusted until an operator
-- acts (cleared_us). The id is the SHA-256 of the two, so a pair is kept once.
CREATE TABLE witness_evidence (
    id       TEXT   NOT NULL PRIMARY KEY,
    origin   TEXT   NOT NULL,
    found_us BIGINT NOT NULL,
    reason   TEXT   NOT NULL,
    first    TEXT   NOT NULL,
    second   TEXT   NOT NULL,
    -- when an operator, having looked into it, trusted the log again
    cleared_us BIGINT
);
CREATE INDEX witness_evidence_origin ON witness_evidence (origin);

-- As a log: checkpoints of this provider's own log with the witnesses'
-- cosignatures, once enough of them are in to meet the witness policy.
CREATE TABLE ledger_cosigned (
    size      BIGINT NOT NULL PRIMARY KEY,
    note      TEXT   NOT NULL,
    signed_us BIGINT NOT NULL
);

-- As a mirror: a copy of each peer's log as of its newest checkpoint
-- this provider verified (with its cosignatures), so that the peer's
-- history stays available while the peer is down. Tiles are C2SP tlog-tiles
-- (level -1: entry bundles), each kept at the widest width seen.
CREATE TABLE mirror_state (
    origin     TEXT   NOT NULL PRIMARY KEY,
    size       BIGINT NOT NULL,
    root       BYTEA  NOT NULL,
    note       TEXT   NOT NULL,
    updated_us BIGINT NOT NULL
);
CREATE TABLE mirror_tiles (
    origin TEXT    NOT NULL,
    level  INTEGER NOT NULL,
    n      BIGINT  NOT NULL,
    width  INTEGER NOT NULL,
    data   BYTEA   NOT NULL,
    PRIMARY KEY (origin, level, n)
);
