-- Current state of every resource: which version is current and whether it
-- is deleted. Bodies live only in resource_versions.
CREATE TABLE resources (
    res_type   TEXT    NOT NULL,
    res_id     TEXT    NOT NULL,
    version_id BIGINT  NOT NULL,
    updated_us BIGINT  NOT NULL, -- meta.lastUpdated, microseconds since the Unix epoch
    deleted    BOOLEAN NOT NULL,
    PRIMARY KEY (res_type, res_id)
);

-- Every version ever written, the current one included. body is the stored
-- JSON exactly as served (NULL for a delete).
CREATE TABLE resource_versions (
    res_type   TEXT    NOT NULL,
    res_id     TEXT    NOT NULL,
    version_id BIGINT  NOT NULL,
    updated_us BIGINT  NOT NULL,
    method     TEXT    NOT NULL, -- POST, PUT, PATCH or DELETE
    deleted    BOOLEAN NOT NULL,
    body       BYTEA,
    PRIMARY KEY (res_type, res_id, version_id)
);
CREATE INDEX resource_versions_system ON resource_versions (updated_us, res_type, res_id, version_id);
CREATE INDEX resource_versions_type ON resource_versions (res_type, updated_us, res_id, version_id);

-- Token values of the current version used to match conditional
-- interactions (identifier=system|value).
CREATE TABLE resource_tokens (
    res_type TEXT NOT NULL,
    res_id   TEXT NOT NULL,
    param    TEXT NOT NULL,
    system   TEXT NOT NULL,
    code     TEXT NOT NULL
);
CREATE INDEX resource_tokens_lookup ON resource_tokens (res_type, param, code, system);
CREATE INDEX resource_tokens_owner ON resource_tokens (res_type, res_id);
