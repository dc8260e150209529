-- The embedded authorization server's state, shared by every replica
-- (docs/auth.md).
--
-- Registered clients, each as the JSON document of its registration
-- (auth.Client): public keys, actor, roles, purposes, scopes.
CREATE TABLE auth_clients (
    id         TEXT   NOT NULL PRIMARY KEY,
    doc        TEXT   NOT NULL,
    updated_us BIGINT NOT NULL
);

-- The client assertions the token endpoint accepted, kept until they
-- expire so that none is used twice, even across a restart or on another
-- replica.
CREATE TABLE auth_assertions (
    client     TEXT   NOT NULL,
    jti        TEXT   NOT NULL,
    expires_us BIGINT NOT NULL,
    PRIMARY KEY (client, jti)
);
CREATE INDEX auth_assertions_expiry ON auth_assertions (expires_us);
