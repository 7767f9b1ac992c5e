-- Grants and access tokens. Token values are never stored: only their SHA-256 (`hash`).
CREATE TABLE grants (
    id                  TEXT PRIMARY KEY,
    continue_id         TEXT NOT NULL UNIQUE,
    continue_token_hash BLOB NOT NULL,
    client_kind         TEXT NOT NULL CHECK (client_kind IN ('wallet_address', 'jwk')),
    client_value        TEXT NOT NULL,
    access              TEXT NOT NULL,
    state               TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'issued', 'revoked', 'rejected')),
    wait_secs           INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    last_continued_at   INTEGER,
    finalized_at        INTEGER
);

CREATE TABLE access_tokens (
    manage_id   TEXT PRIMARY KEY,
    grant_id    TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    hash        BLOB NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    rotated_to  TEXT
);

CREATE INDEX access_tokens_by_grant ON access_tokens (grant_id);
