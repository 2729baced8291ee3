-- Users, their API keys, the environments (container engines) and who may use them.
-- Times are Unix seconds. AUTOINCREMENT keeps a deleted row's id from being reused,
-- so a client holding an old id never reaches a different user or environment.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE,
    -- Argon2id hash in PHC string format.
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'user')),
    created_at    INTEGER NOT NULL DEFAULT (unixepoch())
);

CREATE TABLE api_keys (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Lowercase hex SHA-256 of the raw key; the raw key is never stored.
    key_hash    TEXT    NOT NULL UNIQUE,
    description TEXT    NOT NULL,
    created_at  INTEGER NOT NULL DEFAULT (unixepoch())
);

CREATE INDEX api_keys_user_id ON api_keys (user_id);

CREATE TABLE environments (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    -- unix:///path/to/socket or tcp://host:port
    url         TEXT    NOT NULL,
    -- 1 when a tcp:// engine is reached over TLS. The PEM columns are optional with TLS
    -- (no CA means the system roots, no cert and key means no client certificate).
    tls         INTEGER NOT NULL DEFAULT 0 CHECK (tls IN (0, 1)),
    -- NOTE: tls_key is stored in plain text until the store gets the credential
    -- encryption key that sealed registry passwords will use.
    tls_ca_cert TEXT,
    tls_cert    TEXT,
    tls_key     TEXT,
    created_at  INTEGER NOT NULL DEFAULT (unixepoch())
);

-- Standard users reach only the environments granted here; admins reach all.
CREATE TABLE environment_access (
    environment_id INTEGER NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    user_id        INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (environment_id, user_id)
);

CREATE INDEX environment_access_user_id ON environment_access (user_id);
