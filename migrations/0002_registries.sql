-- Registries with their credentials and connection options, and the check value that
-- tells whether the credential key is the one the passwords were sealed with.

CREATE TABLE registries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT    NOT NULL UNIQUE,
    -- Host and port as in normalised image references (docker.io for Docker Hub), lowercase.
    host            TEXT    NOT NULL,
    -- Repository path prefix the entry covers; '' covers the whole host.
    path_prefix     TEXT    NOT NULL DEFAULT '',
    username        TEXT,
    -- 24-byte nonce followed by the XChaCha20-Poly1305 ciphertext and tag of the password.
    -- The associated data binds it to this row's id, host and username.
    password_sealed BLOB,
    insecure        INTEGER NOT NULL DEFAULT 0 CHECK (insecure IN (0, 1)),
    -- PEM CA certificates trusted for this host besides the system roots.
    ca_cert         TEXT,
    created_at      INTEGER NOT NULL DEFAULT (unixepoch()),
    UNIQUE (host, path_prefix),
    CHECK ((username IS NULL) = (password_sealed IS NULL))
);

-- One row: the known plaintext sealed with the credential key.
CREATE TABLE credential_key_check (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    sealed BLOB NOT NULL
);
