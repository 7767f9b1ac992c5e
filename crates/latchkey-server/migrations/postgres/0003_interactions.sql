-- Interactions: a resource owner's consent to a pending grant (one per interactive grant).
-- Numbered as in the SQLite folder, so one version means the same schema step on both stores.
CREATE TABLE interactions (
    id            TEXT PRIMARY KEY,
    nonce         TEXT NOT NULL,
    grant_id      TEXT NOT NULL UNIQUE REFERENCES grants (id) ON DELETE CASCADE,
    finish_uri    TEXT,
    client_nonce  TEXT,
    interact_ref  TEXT UNIQUE,
    session_hash  BYTEA CHECK (octet_length(session_hash) = 32),
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);

-- The janitor finds abandoned interactions by expiry.
CREATE INDEX interactions_by_expiry ON interactions (expires_at);
