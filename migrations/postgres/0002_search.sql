-- Search index of the current version of every live resource, one table
-- per search parameter type. Lookup indexes end in res_id so that a search
-- criterion (res_id IN (SELECT res_id ... WHERE res_type, param, value))
-- is one covering index range scan; owner indexes serve sort keys and the
-- replacement of a resource's rows. Each row belongs to (res_type, res_id) and one
-- parameter; all rows of a resource are replaced when it is written and
-- removed when it is deleted. Text columns compare bytewise (COLLATE "C")
-- so that a prefix is a range: norm >= 'smi' AND norm < 'smj'.

-- string parameters, and the :text form of token parameters (param
-- "code:text"). norm is case-folded and accent-stripped. plen is 0 for a
-- whole value; it is reserved for prefix rows (plen = prefix length) that
-- keep prefix search working when values are stored as keyed blind indexes.
CREATE TABLE search_string (
    res_type TEXT NOT NULL,
    res_id   TEXT NOT NULL,
    param    TEXT NOT NULL,
    plen     SMALLINT NOT NULL DEFAULT 0,
    norm     TEXT COLLATE "C" NOT NULL,
    exact    TEXT COLLATE "C" NOT NULL
);
CREATE INDEX search_string_norm ON search_string (res_type, param, plen, norm, res_id);
CREATE INDEX search_string_exact ON search_string (res_type, param, exact, res_id);
CREATE INDEX search_string_owner ON search_string (res_type, res_id, param);

-- token parameters: system and code (identifier values, codings, booleans).
-- Identifier types for :of-type are rows of param "identifier:of-type" with
-- code "TYPECODE|value".
CREATE TABLE search_token (
    res_type TEXT NOT NULL,
    res_id   TEXT NOT NULL,
    param    TEXT NOT NULL,
    system   TEXT COLLATE "C" NOT NULL,
    code     TEXT COLLATE "C" NOT NULL
);
CREATE INDEX search_token_code ON search_token (res_type, param, code, system, res_id);
CREATE INDEX search_token_owner ON search_token (res_type, res_id, param);

-- reference parameters: target type and id for relative (and resolvable
-- absolute) references, url for the reference as written.
CREATE TABLE search_reference (
    res_type    TEXT NOT NULL,
    res_id      TEXT NOT NULL,
    param       TEXT NOT NULL,
    target_type TEXT COLLATE "C" NOT NULL,
    target_id   TEXT COLLATE "C" NOT NULL,
    url         TEXT COLLATE "C" NOT NULL
);
CREATE INDEX search_reference_target ON search_reference (res_type, param, target_id, target_type, res_id);
CREATE INDEX search_reference_reverse ON search_reference (target_type, target_id, param, res_type, res_id);
CREATE INDEX search_reference_url ON search_reference (res_type, param, url, res_id);
CREATE INDEX search_reference_owner ON search_reference (res_type, res_id, param);

-- date parameters as the half-open range [low_us, high_us) in microseconds
-- since the epoch that the value's precision implies.
CREATE TABLE search_date (
    res_type TEXT   NOT NULL,
    res_id   TEXT   NOT NULL,
    param    TEXT   NOT NULL,
    low_us   BIGINT NOT NULL,
    high_us  BIGINT NOT NULL
);
CREATE INDEX search_date_low ON search_date (res_type, param, low_us, high_us, res_id);
CREATE INDEX search_date_high ON search_date (res_type, param, high_us, low_us, res_id);
CREATE INDEX search_date_owner ON search_date (res_type, res_id, param);

-- number and quantity parameters: the value and the range its precision
-- implies; quantities add the unit system, code and display unit.
CREATE TABLE search_quantity (
    res_type TEXT NOT NULL,
    res_id   TEXT NOT NULL,
    param    TEXT NOT NULL,
    value    DOUBLE PRECISION NOT NULL,
    low      DOUBLE PRECISION NOT NULL,
    high     DOUBLE PRECISION NOT NULL,
    system   TEXT COLLATE "C" NOT NULL,
    code     TEXT COLLATE "C" NOT NULL,
    unit     TEXT NOT NULL
);
CREATE INDEX search_quantity_value ON search_quantity (res_type, param, value, res_id);
CREATE INDEX search_quantity_owner ON search_quantity (res_type, res_id, param);

-- uri parameters.
CREATE TABLE search_uri (
    res_type TEXT NOT NULL,
    res_id   TEXT NOT NULL,
    param    TEXT NOT NULL,
    value    TEXT COLLATE "C" NOT NULL
);
CREATE INDEX search_uri_value ON search_uri (res_type, param, value, res_id);
CREATE INDEX search_uri_owner ON search_uri (res_type, res_id, param);

-- composite parameters of two components: the first a token (system,
-- code) or reference (type in system, id in code), the second of any type,
-- in the columns its type uses.
CREATE TABLE search_composite (
    res_type  TEXT NOT NULL,
    res_id    TEXT NOT NULL,
    param     TEXT NOT NULL,
    c1_system TEXT COLLATE "C" NOT NULL,
    c1_code   TEXT COLLATE "C" NOT NULL,
    c2_system TEXT COLLATE "C" NOT NULL DEFAULT '',
    c2_code   TEXT COLLATE "C" NOT NULL DEFAULT '',
    c2_value  DOUBLE PRECISION,
    c2_low    DOUBLE PRECISION,
    c2_high   DOUBLE PRECISION,
    c2_low_us  BIGINT,
    c2_high_us BIGINT,
    c2_text   TEXT COLLATE "C" NOT NULL DEFAULT ''
);
CREATE INDEX search_composite_c1 ON search_composite (res_type, param, c1_code, c1_system, res_id);
CREATE INDEX search_composite_owner ON search_composite (res_type, res_id, param);

-- Live resources by type, for listing a type in id order.
CREATE INDEX resources_live ON resources (res_type, deleted, res_id);

-- Conditional interactions now match through search_token.
DROP TABLE resource_tokens;
