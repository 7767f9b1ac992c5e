-- OAuth 2.0 clients (Kopo Kopo style) and their client_credentials access tokens (PostgreSQL).
-- Secrets and token values are never stored: only their SHA-256 (`secret_hash`, `hash`).
-- Times are milliseconds since the Unix epoch. Numbered as in the SQLite folder.
CREATE TABLE oauth_clients (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    secret_hash        BYTEA NOT NULL CHECK (octet_length(secret_hash) = 32),
    scopes             TEXT NOT NULL,          -- space-separated scope-tokens (RFC 6749 §3.3)
    created_at         BIGINT NOT NULL,
    secret_rotated_at  BIGINT,
    disabled_at        BIGINT
);

CREATE TABLE oauth_tokens (
    hash        BYTEA PRIMARY KEY CHECK (octet_length(hash) = 32),
    client_id   TEXT NOT NULL REFERENCES oauth_clients (id) ON DELETE CASCADE,
    scopes      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- Disable and delete find a client's tokens; the janitor finds expired ones.
CREATE INDEX oauth_tokens_by_client ON oauth_tokens (client_id);
CREATE INDEX oauth_tokens_by_expiry ON oauth_tokens (expires_at);

-- Cross-node invalidation, as for GNAP tokens: `oauth_token:<hex SHA-256>` when a token row
-- changes, `oauth_client:<id>` when a client changes (disabled, secret rotated, deleted), so a
-- node caching verified secrets drops them everywhere.
CREATE FUNCTION latchkey_notify_oauth_token() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('latchkey_invalidate', 'oauth_token:' || encode(OLD.hash, 'hex'));
    RETURN NULL;
END;
$$;

CREATE FUNCTION latchkey_notify_oauth_client() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('latchkey_invalidate', 'oauth_client:' || OLD.id);
    RETURN NULL;
END;
$$;

CREATE TRIGGER oauth_tokens_invalidate
    AFTER UPDATE OR DELETE ON oauth_tokens
    FOR EACH ROW EXECUTE FUNCTION latchkey_notify_oauth_token();

CREATE TRIGGER oauth_clients_invalidate
    AFTER UPDATE OR DELETE ON oauth_clients
    FOR EACH ROW EXECUTE FUNCTION latchkey_notify_oauth_client();
