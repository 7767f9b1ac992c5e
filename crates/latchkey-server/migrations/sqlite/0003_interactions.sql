-- Interactions: a resource owner's consent to a pending grant (one per interactive grant).
CREATE TABLE interactions (
    id            TEXT PRIMARY KEY,
    nonce         TEXT NOT NULL,
    grant_id      TEXT NOT NULL UNIQUE REFERENCES grants (id) ON DELETE CASCADE,
    finish_uri    TEXT,
    client_nonce  TEXT,
    interact_ref  TEXT UNIQUE,
    session_hash  BLOB,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);
