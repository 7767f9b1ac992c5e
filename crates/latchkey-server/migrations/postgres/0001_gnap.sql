-- Grants and access tokens (PostgreSQL). Token values are never stored: only their SHA-256
-- (`hash`, 32 bytes). Times are milliseconds since the Unix epoch, as in the SQLite schema.
CREATE TABLE grants (
    id                  TEXT PRIMARY KEY,
    continue_id         TEXT NOT NULL UNIQUE,
    continue_token_hash BYTEA NOT NULL CHECK (octet_length(continue_token_hash) = 32),
    client_kind         TEXT NOT NULL CHECK (client_kind IN ('wallet_address', 'jwk')),
    client_value        TEXT NOT NULL,
    access              TEXT NOT NULL,
    state               TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'issued', 'revoked', 'rejected')),
    wait_secs           BIGINT NOT NULL,
    created_at          BIGINT NOT NULL,
    last_continued_at   BIGINT,
    finalized_at        BIGINT
);

CREATE TABLE access_tokens (
    manage_id   TEXT PRIMARY KEY,
    grant_id    TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    hash        BYTEA NOT NULL UNIQUE CHECK (octet_length(hash) = 32),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    rotated_to  TEXT
);

CREATE INDEX access_tokens_by_grant ON access_tokens (grant_id);

-- The janitor finds dead state by time.
CREATE INDEX access_tokens_by_expiry ON access_tokens (expires_at);
CREATE INDEX access_tokens_by_revocation ON access_tokens (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX grants_by_creation ON grants (created_at);

-- Cross-node cache invalidation. Every change that can make a token or a grant less usable
-- notifies the channel `latchkey_invalidate`, from a trigger so that no writer (another node, the
-- janitor, an operator's manual UPDATE) can forget. NOTIFY is transactional: listeners hear it
-- only after the change committed, and PostgreSQL folds identical payloads of one transaction.
-- Payloads: `token:<hex SHA-256 of the value>` and `grant:<grant id>`.
CREATE FUNCTION latchkey_notify_token() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('latchkey_invalidate', 'token:' || encode(OLD.hash, 'hex'));
    RETURN NULL;
END;
$$;

CREATE FUNCTION latchkey_notify_grant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('latchkey_invalidate', 'grant:' || OLD.id);
    RETURN NULL;
END;
$$;

CREATE TRIGGER access_tokens_invalidate
    AFTER UPDATE OR DELETE ON access_tokens
    FOR EACH ROW EXECUTE FUNCTION latchkey_notify_token();

CREATE TRIGGER grants_invalidate
    AFTER UPDATE OR DELETE ON grants
    FOR EACH ROW EXECUTE FUNCTION latchkey_notify_grant();
