-- OAuth 2.0 clients (Kopo Kopo style) and their client_credentials access tokens.
-- Secrets and token values are never stored: only their SHA-256 (`secret_hash`, `hash`).
-- Times are milliseconds since the Unix epoch.
CREATE TABLE oauth_clients (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    secret_hash        BLOB NOT NULL,
    scopes             TEXT NOT NULL,          -- space-separated scope-tokens (RFC 6749 §3.3)
    created_at         INTEGER NOT NULL,
    secret_rotated_at  INTEGER,
    disabled_at        INTEGER
);

CREATE TABLE oauth_tokens (
    hash        BLOB PRIMARY KEY,
    client_id   TEXT NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    scopes      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) WITHOUT ROWID;

-- Disable and delete find a client's tokens; the janitor finds expired ones.
CREATE INDEX oauth_tokens_by_client ON oauth_tokens (client_id);
CREATE INDEX oauth_tokens_by_expiry ON oauth_tokens (expires_at);
