//! The OAuth store on PostgreSQL: clients and their `client_credentials` tokens, shared by every
//! node. Same rules as the SQLite implementation (`store/oauth.rs`), plus the locking that makes
//! them hold between nodes (READ COMMITTED; see `postgres.rs` for the two facts used here).
//!
//! The one race that needs care: a token issued while its client is being disabled (or its
//! secret rotated, or the client deleted). Issuing takes a `FOR SHARE` lock on the client row
//! and re-checks that it is enabled and still has the secret the caller authenticated with;
//! disabling updates that row (a conflicting lock) and then revokes the client's tokens in a
//! later statement. So either the disable comes
//! first and the issue sees the client disabled (no token), or the issue commits first and the
//! disable's sweep, with its fresh snapshot, sees and revokes the new token. Without the lock an
//! insert could commit just after the sweep's snapshot: a live token of a disabled client, which
//! would come back to life when the client is enabled again.

use async_trait::async_trait;
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::Row;
use std::time::Duration;

use super::coalesce::Coalesced;
use super::oauth::{OAuthStore, OAuthWrite};
use super::postgres::{db_error, PgKeyedReads, PostgresStore};
use super::{hash_from, StoreError};
use crate::domain::clock::Millis;
use crate::oauth::client::OAuthClient;
use crate::oauth::token::OAuthTokenRecord;
use crate::token_format::TokenHash;

const CLIENT_COLUMNS: &str = "c.id AS c_id, c.name AS c_name, c.secret_hash AS c_secret_hash, \
    c.scopes AS c_scopes, c.created_at AS c_created_at, \
    c.secret_rotated_at AS c_secret_rotated_at, c.disabled_at AS c_disabled_at";

const TOKEN_COLUMNS: &str = "t.hash AS t_hash, t.client_id AS t_client_id, t.scopes AS t_scopes, \
    t.created_at AS t_created_at, t.expires_at AS t_expires_at, t.revoked_at AS t_revoked_at";

fn corrupt(e: sqlx::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn scopes_from(text: &str) -> Vec<String> {
    text.split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn client_from_row(row: &PgRow) -> Result<OAuthClient, StoreError> {
    let scopes: String = row.try_get("c_scopes").map_err(corrupt)?;
    Ok(OAuthClient {
        id: row.try_get("c_id").map_err(corrupt)?,
        name: row.try_get("c_name").map_err(corrupt)?,
        secret_hash: hash_from(row.try_get("c_secret_hash").map_err(corrupt)?)?,
        scopes: scopes_from(&scopes),
        created_at: row.try_get("c_created_at").map_err(corrupt)?,
        secret_rotated_at: row.try_get("c_secret_rotated_at").map_err(corrupt)?,
        disabled_at: row.try_get("c_disabled_at").map_err(corrupt)?,
    })
}

fn token_from_row(row: &PgRow) -> Result<OAuthTokenRecord, StoreError> {
    let scopes: String = row.try_get("t_scopes").map_err(corrupt)?;
    Ok(OAuthTokenRecord {
        hash: hash_from(row.try_get("t_hash").map_err(corrupt)?)?,
        client_id: row.try_get("t_client_id").map_err(corrupt)?,
        scopes: scopes_from(&scopes),
        created_at: row.try_get("t_created_at").map_err(corrupt)?,
        expires_at: row.try_get("t_expires_at").map_err(corrupt)?,
        revoked_at: row.try_get("t_revoked_at").map_err(corrupt)?,
    })
}

/// Revokes every unrevoked token of the client; run after the client row is locked.
async fn revoke_all(
    conn: &mut PgConnection,
    client_id: &str,
    now: Millis,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "UPDATE oauth_tokens SET revoked_at = $2 WHERE client_id = $1 AND revoked_at IS NULL",
    )
    .bind(client_id)
    .bind(now)
    .execute(conn)
    .await
    .map_err(db_error)?
    .rows_affected())
}

/// [`OAuthStore::insert_token`] in a transaction of its own (a write replayed alone, or a
/// group of one).
pub(super) async fn insert_token_alone(
    pool: &PgPool,
    token: &OAuthTokenRecord,
    secret: &TokenHash,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await.map_err(db_error)?;
    // A locking read returns the newest committed version after any wait: a client
    // disabled (or deleted, or given a new secret) a moment ago is seen as such.
    let enabled = sqlx::query(
        "SELECT 1 FROM oauth_clients WHERE id = $1 AND disabled_at IS NULL \
         AND secret_hash = $2 FOR SHARE",
    )
    .bind(&token.client_id)
    .bind(secret.as_bytes())
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_error)?
    .is_some();
    if !enabled {
        tx.rollback().await.map_err(db_error)?;
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO oauth_tokens (hash, client_id, scopes, created_at, expires_at, \
         revoked_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(token.hash.as_bytes())
    .bind(&token.client_id)
    .bind(token.scopes.join(" "))
    .bind(token.created_at)
    .bind(token.expires_at)
    .bind(token.revoked_at)
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    Ok(true)
}

/// [`OAuthStore::revoke_token`] as a statement of its own.
pub(super) async fn revoke_token_alone(
    pool: &PgPool,
    hash: &TokenHash,
    client_id: &str,
    now: Millis,
) -> Result<bool, StoreError> {
    let revoked = sqlx::query(
        "UPDATE oauth_tokens SET revoked_at = $3 \
         WHERE hash = $1 AND client_id = $2 AND revoked_at IS NULL",
    )
    .bind(hash.as_bytes())
    .bind(client_id)
    .bind(now)
    .execute(pool)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(revoked == 1)
}

/// Client lookups (every OAuth request authenticates its client), coalesced (never cached)
/// by [`Coalesced`]: a lookup's read starts after it arrived, so a client disabled or a secret
/// rotated before it is seen at once. Each read is bounded by the operation timeout.
pub(super) fn client_reads(
    pool: PgPool,
    operation_timeout: Duration,
) -> Coalesced<PgKeyedReads<String, OAuthClient>> {
    PgKeyedReads::start(
        pool,
        operation_timeout,
        &format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients c WHERE c.id"),
        client_from_row,
        |c: &OAuthClient| c.id.clone(),
        "PostgreSQL OAuth client reader",
    )
}

/// An OAuth token's row with its client's, as introspection needs both.
pub(super) type OAuthTokenAndClient = (OAuthTokenRecord, OAuthClient);

fn token_and_client_from_row(row: &PgRow) -> Result<OAuthTokenAndClient, StoreError> {
    Ok((token_from_row(row)?, client_from_row(row)?))
}

/// Token lookups by hash with the token's client (OAuth introspection), coalesced like
/// [`client_reads`]: never cached, each read started after its lookup arrived.
pub(super) fn oauth_token_reads(
    pool: PgPool,
    operation_timeout: Duration,
) -> Coalesced<PgKeyedReads<TokenHash, OAuthTokenAndClient>> {
    PgKeyedReads::start(
        pool,
        operation_timeout,
        &format!(
            "SELECT {TOKEN_COLUMNS}, {CLIENT_COLUMNS} FROM oauth_tokens t \
             JOIN oauth_clients c ON c.id = t.client_id WHERE t.hash"
        ),
        token_and_client_from_row,
        |(token, _): &OAuthTokenAndClient| token.hash,
        "PostgreSQL OAuth token reader",
    )
}

#[async_trait]
impl OAuthStore for PostgresStore {
    async fn insert_client(&self, client: &OAuthClient) -> Result<(), StoreError> {
        self.bounded(async {
            sqlx::query(
                "INSERT INTO oauth_clients (id, name, secret_hash, scopes, created_at, \
                 secret_rotated_at, disabled_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&client.id)
            .bind(&client.name)
            .bind(client.secret_hash.as_bytes())
            .bind(client.scopes.join(" "))
            .bind(client.created_at)
            .bind(client.secret_rotated_at)
            .bind(client.disabled_at)
            .execute(self.pool())
            .await
            .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn client_by_id(&self, id: &str) -> Result<Option<OAuthClient>, StoreError> {
        self.bounded(self.client_lookups().lookup(id.to_string()))
            .await
    }

    async fn list_clients(&self) -> Result<Vec<OAuthClient>, StoreError> {
        self.bounded(async {
            let sql =
                format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients c ORDER BY c.created_at, c.id");
            let rows = sqlx::query(&sql)
                .fetch_all(self.pool())
                .await
                .map_err(db_error)?;
            rows.iter().map(client_from_row).collect()
        })
        .await
    }

    async fn disable_client(&self, id: &str, now: Millis) -> Result<Option<u64>, StoreError> {
        self.bounded(async {
            let mut tx = self.pool().begin().await.map_err(db_error)?;
            // The update locks the client row (see the module comment), even when the client
            // was already disabled.
            let found = sqlx::query(
                "UPDATE oauth_clients SET disabled_at = COALESCE(disabled_at, $2) WHERE id = $1",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
            if found == 0 {
                tx.rollback().await.map_err(db_error)?;
                return Ok(None);
            }
            let revoked = revoke_all(&mut tx, id, now).await?;
            tx.commit().await.map_err(db_error)?;
            Ok(Some(revoked))
        })
        .await
    }

    async fn enable_client(&self, id: &str) -> Result<bool, StoreError> {
        self.bounded(async {
            let found = sqlx::query("UPDATE oauth_clients SET disabled_at = NULL WHERE id = $1")
                .bind(id)
                .execute(self.pool())
                .await
                .map_err(db_error)?
                .rows_affected();
            Ok(found == 1)
        })
        .await
    }

    async fn set_client_secret(
        &self,
        id: &str,
        secret_hash: &TokenHash,
        now: Millis,
        revoke_tokens: bool,
    ) -> Result<Option<u64>, StoreError> {
        self.bounded(async {
            let mut tx = self.pool().begin().await.map_err(db_error)?;
            let found = sqlx::query(
                "UPDATE oauth_clients SET secret_hash = $2, secret_rotated_at = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(secret_hash.as_bytes())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
            if found == 0 {
                tx.rollback().await.map_err(db_error)?;
                return Ok(None);
            }
            let revoked = if revoke_tokens {
                revoke_all(&mut tx, id, now).await?
            } else {
                0
            };
            tx.commit().await.map_err(db_error)?;
            Ok(Some(revoked))
        })
        .await
    }

    async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        self.bounded(async {
            // Tokens go with the client (ON DELETE CASCADE), in the same statement.
            let found = sqlx::query("DELETE FROM oauth_clients WHERE id = $1")
                .bind(id)
                .execute(self.pool())
                .await
                .map_err(db_error)?
                .rows_affected();
            Ok(found == 1)
        })
        .await
    }

    async fn insert_token(
        &self,
        token: &OAuthTokenRecord,
        secret: &TokenHash,
    ) -> Result<bool, StoreError> {
        self.queued(self.oauth_writes().submit(OAuthWrite::Insert {
            token: token.clone(),
            secret: *secret,
        }))
        .await
    }

    async fn token_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<(OAuthTokenRecord, OAuthClient)>, StoreError> {
        self.bounded(self.oauth_token_lookups().lookup(*hash)).await
    }

    async fn revoke_token(
        &self,
        hash: &TokenHash,
        client_id: &str,
        now: Millis,
    ) -> Result<bool, StoreError> {
        self.queued(self.oauth_writes().submit(OAuthWrite::Revoke {
            hash: *hash,
            client_id: client_id.to_string(),
            now,
        }))
        .await
    }

    async fn delete_expired_tokens(&self, before: Millis) -> Result<u64, StoreError> {
        // Batch by batch, each its own short transaction, so a large backlog never holds many
        // row locks at once. Nodes running this together only skip each other's rows.
        const BATCH: i64 = 5000;
        self.bounded(async {
            let mut deleted = 0;
            loop {
                let batch = sqlx::query(
                    "DELETE FROM oauth_tokens WHERE hash IN \
                     (SELECT hash FROM oauth_tokens WHERE expires_at < $1 LIMIT $2)",
                )
                .bind(before)
                .bind(BATCH)
                .execute(self.pool())
                .await
                .map_err(db_error)?
                .rows_affected();
                deleted += batch;
                if batch < BATCH.unsigned_abs() {
                    return Ok(deleted);
                }
            }
        })
        .await
    }
}
