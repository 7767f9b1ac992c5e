//! Storage of OAuth clients and their access tokens: the [`OAuthStore`] trait and its SQLite
//! implementation on [`SqliteStore`] (same database, same writer connection as the GNAP store).
//!
//! Like the GNAP store, it only ever sees SHA-256 hashes of secrets and token values.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

use super::sqlite::SqliteStore;
use super::StoreError;
use crate::domain::clock::Millis;
use crate::oauth::client::OAuthClient;
use crate::oauth::token::OAuthTokenRecord;
use crate::token_format::TokenHash;

/// The persistence OAuth clients and tokens need. Every method is one transaction.
#[async_trait]
pub trait OAuthStore: Send + Sync + 'static {
    /// Inserts a new client.
    async fn insert_client(&self, client: &OAuthClient) -> Result<(), StoreError>;

    /// The client with this id.
    async fn client_by_id(&self, id: &str) -> Result<Option<OAuthClient>, StoreError>;

    /// Every client, oldest first.
    async fn list_clients(&self) -> Result<Vec<OAuthClient>, StoreError>;

    /// Disables the client (unless it already is) and revokes every unrevoked token of it, in
    /// one transaction. `None` when there is no such client, else how many tokens it revoked.
    async fn disable_client(&self, id: &str, now: Millis) -> Result<Option<u64>, StoreError>;

    /// Enables a disabled client (its revoked tokens stay revoked). False when no such client.
    async fn enable_client(&self, id: &str) -> Result<bool, StoreError>;

    /// Replaces the client's secret hash and, with `revoke_tokens`, revokes every unrevoked
    /// token of it, in one transaction. `None` when there is no such client, else how many
    /// tokens it revoked.
    async fn set_client_secret(
        &self,
        id: &str,
        secret_hash: &TokenHash,
        now: Millis,
        revoke_tokens: bool,
    ) -> Result<Option<u64>, StoreError>;

    /// Deletes the client and all its tokens. False when no such client.
    async fn delete_client(&self, id: &str) -> Result<bool, StoreError>;

    /// Inserts a token, only if its client exists and is enabled (a client disabled between
    /// authentication and issue gets no token). Returns whether it was inserted.
    async fn insert_token(&self, token: &OAuthTokenRecord) -> Result<bool, StoreError>;

    /// The token with this value hash, with its client.
    async fn token_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<(OAuthTokenRecord, OAuthClient)>, StoreError>;

    /// Revokes the token only if it was issued to `client_id` and is not revoked yet.
    /// Returns whether this call revoked it.
    async fn revoke_token(
        &self,
        hash: &TokenHash,
        client_id: &str,
        now: Millis,
    ) -> Result<bool, StoreError>;

    /// Deletes tokens that expired before `before` (revoked or not: either way they can never
    /// be active again). Returns how many.
    async fn delete_expired_tokens(&self, before: Millis) -> Result<u64, StoreError>;
}

/// A shared OAuth store handle.
pub type SharedOAuthStore = Arc<dyn OAuthStore>;

fn db_error(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_string())
        }
        other => StoreError::Unavailable(other.to_string()),
    }
}

fn corrupt(e: sqlx::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn hash_from(bytes: Vec<u8>) -> Result<TokenHash, StoreError> {
    TokenHash::from_slice(&bytes).ok_or_else(|| StoreError::Corrupt("hash is not 32 bytes".into()))
}

fn scopes_from(text: &str) -> Vec<String> {
    text.split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

const CLIENT_COLUMNS: &str = "c.id AS c_id, c.name AS c_name, c.secret_hash AS c_secret_hash, \
    c.scopes AS c_scopes, c.created_at AS c_created_at, \
    c.secret_rotated_at AS c_secret_rotated_at, c.disabled_at AS c_disabled_at";

const TOKEN_COLUMNS: &str = "t.hash AS t_hash, t.client_id AS t_client_id, t.scopes AS t_scopes, \
    t.created_at AS t_created_at, t.expires_at AS t_expires_at, t.revoked_at AS t_revoked_at";

fn client_from_row(row: &SqliteRow) -> Result<OAuthClient, StoreError> {
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

fn token_from_row(row: &SqliteRow) -> Result<OAuthTokenRecord, StoreError> {
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

/// Inserts a token if its client exists and is enabled; true when inserted.
async fn insert_token_in<'c, E>(executor: E, token: &OAuthTokenRecord) -> Result<bool, StoreError>
where
    E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
{
    let inserted = sqlx::query(
        "INSERT INTO oauth_tokens (hash, client_id, scopes, created_at, expires_at, revoked_at) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS \
         (SELECT 1 FROM oauth_clients WHERE id = ?2 AND disabled_at IS NULL)",
    )
    .bind(token.hash.as_bytes())
    .bind(&token.client_id)
    .bind(token.scopes.join(" "))
    .bind(token.created_at)
    .bind(token.expires_at)
    .bind(token.revoked_at)
    .execute(executor)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(inserted == 1)
}

async fn revoke_all<'c, E>(executor: E, client_id: &str, now: Millis) -> Result<u64, StoreError>
where
    E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
{
    Ok(sqlx::query(
        "UPDATE oauth_tokens SET revoked_at = ?2 WHERE client_id = ?1 AND revoked_at IS NULL",
    )
    .bind(client_id)
    .bind(now)
    .execute(executor)
    .await
    .map_err(db_error)?
    .rows_affected())
}

#[async_trait]
impl OAuthStore for SqliteStore {
    async fn insert_client(&self, client: &OAuthClient) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oauth_clients (id, name, secret_hash, scopes, created_at, \
             secret_rotated_at, disabled_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(&client.id)
        .bind(&client.name)
        .bind(client.secret_hash.as_bytes())
        .bind(client.scopes.join(" "))
        .bind(client.created_at)
        .bind(client.secret_rotated_at)
        .bind(client.disabled_at)
        .execute(self.writer())
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn client_by_id(&self, id: &str) -> Result<Option<OAuthClient>, StoreError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients c WHERE c.id = ?1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.reader())
            .await
            .map_err(db_error)?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn list_clients(&self) -> Result<Vec<OAuthClient>, StoreError> {
        let sql =
            format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients c ORDER BY c.created_at, c.id");
        let rows = sqlx::query(&sql)
            .fetch_all(self.reader())
            .await
            .map_err(db_error)?;
        rows.iter().map(client_from_row).collect()
    }

    async fn disable_client(&self, id: &str, now: Millis) -> Result<Option<u64>, StoreError> {
        let mut tx = self.writer().begin().await.map_err(db_error)?;
        let found = sqlx::query(
            "UPDATE oauth_clients SET disabled_at = COALESCE(disabled_at, ?2) WHERE id = ?1",
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
        let revoked = revoke_all(&mut *tx, id, now).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(Some(revoked))
    }

    async fn enable_client(&self, id: &str) -> Result<bool, StoreError> {
        let found = sqlx::query("UPDATE oauth_clients SET disabled_at = NULL WHERE id = ?1")
            .bind(id)
            .execute(self.writer())
            .await
            .map_err(db_error)?
            .rows_affected();
        Ok(found == 1)
    }

    async fn set_client_secret(
        &self,
        id: &str,
        secret_hash: &TokenHash,
        now: Millis,
        revoke_tokens: bool,
    ) -> Result<Option<u64>, StoreError> {
        let mut tx = self.writer().begin().await.map_err(db_error)?;
        let found = sqlx::query(
            "UPDATE oauth_clients SET secret_hash = ?2, secret_rotated_at = ?3 WHERE id = ?1",
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
            revoke_all(&mut *tx, id, now).await?
        } else {
            0
        };
        tx.commit().await.map_err(db_error)?;
        Ok(Some(revoked))
    }

    async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.writer().begin().await.map_err(db_error)?;
        // Explicit, so the outcome does not depend on the connection's foreign_keys pragma.
        sqlx::query("DELETE FROM oauth_tokens WHERE client_id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let found = sqlx::query("DELETE FROM oauth_clients WHERE id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        tx.commit().await.map_err(db_error)?;
        Ok(found == 1)
    }

    async fn insert_token(&self, token: &OAuthTokenRecord) -> Result<bool, StoreError> {
        insert_token_in(self.writer(), token).await
    }

    async fn token_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<(OAuthTokenRecord, OAuthClient)>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS}, {CLIENT_COLUMNS} FROM oauth_tokens t \
             JOIN oauth_clients c ON c.id = t.client_id WHERE t.hash = ?1"
        );
        let row = sqlx::query(&sql)
            .bind(hash.as_bytes())
            .fetch_optional(self.reader())
            .await
            .map_err(db_error)?;
        row.as_ref()
            .map(|r| Ok((token_from_row(r)?, client_from_row(r)?)))
            .transpose()
    }

    async fn revoke_token(
        &self,
        hash: &TokenHash,
        client_id: &str,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let revoked = sqlx::query(
            "UPDATE oauth_tokens SET revoked_at = ?3 \
             WHERE hash = ?1 AND client_id = ?2 AND revoked_at IS NULL",
        )
        .bind(hash.as_bytes())
        .bind(client_id)
        .bind(now)
        .execute(self.writer())
        .await
        .map_err(db_error)?
        .rows_affected();
        Ok(revoked == 1)
    }

    async fn delete_expired_tokens(&self, before: Millis) -> Result<u64, StoreError> {
        Ok(
            sqlx::query("DELETE FROM oauth_tokens WHERE expires_at < ?1")
                .bind(before)
                .execute(self.writer())
                .await
                .map_err(db_error)?
                .rows_affected(),
        )
    }
}

/// Most token inserts committed together by [`SqliteOAuthStore`].
pub const MAX_GROUP_COMMIT: usize = 256;

type PendingInsert = (OAuthTokenRecord, oneshot::Sender<Result<bool, StoreError>>);

/// The SQLite OAuth store used by the server: [`SqliteStore`]'s implementation plus **group
/// commit** of token inserts, the `client_credentials` hot path.
///
/// SQLite has one writer and every commit is an fsync (`synchronous=FULL`). Inserts arriving
/// while a commit is under way queue up and go into the next transaction together (up to
/// [`MAX_GROUP_COMMIT`]), so one fsync serves many token requests. Each caller is answered
/// only after the commit that holds its token, so an issued token is as durable as before.
/// Every other method goes straight to [`SqliteStore`].
pub struct SqliteOAuthStore {
    db: SqliteStore,
    inserts: mpsc::Sender<PendingInsert>,
}

impl SqliteOAuthStore {
    /// Wraps `db` and starts the group-commit task (needs a Tokio runtime; the task ends
    /// when the store is dropped).
    pub fn new(db: SqliteStore) -> Self {
        let (inserts, queue) = mpsc::channel(4 * MAX_GROUP_COMMIT);
        tokio::spawn(group_commit(db.clone(), queue));
        SqliteOAuthStore { db, inserts }
    }
}

async fn group_commit(db: SqliteStore, mut queue: mpsc::Receiver<PendingInsert>) {
    let mut batch: Vec<PendingInsert> = Vec::with_capacity(MAX_GROUP_COMMIT);
    while queue.recv_many(&mut batch, MAX_GROUP_COMMIT).await > 0 {
        match insert_batch(&db, &batch).await {
            Ok(inserted) => {
                for ((_, reply), ok) in batch.drain(..).zip(inserted) {
                    let _ = reply.send(Ok(ok));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(StoreError::Unavailable(message.clone())));
                }
            }
        }
    }
}

async fn insert_batch(db: &SqliteStore, batch: &[PendingInsert]) -> Result<Vec<bool>, StoreError> {
    let mut tx = db.writer().begin().await.map_err(db_error)?;
    let mut inserted = Vec::with_capacity(batch.len());
    for (token, _) in batch {
        inserted.push(insert_token_in(&mut *tx, token).await?);
    }
    tx.commit().await.map_err(db_error)?;
    Ok(inserted)
}

#[async_trait]
impl OAuthStore for SqliteOAuthStore {
    async fn insert_client(&self, client: &OAuthClient) -> Result<(), StoreError> {
        self.db.insert_client(client).await
    }
    async fn client_by_id(&self, id: &str) -> Result<Option<OAuthClient>, StoreError> {
        self.db.client_by_id(id).await
    }
    async fn list_clients(&self) -> Result<Vec<OAuthClient>, StoreError> {
        self.db.list_clients().await
    }
    async fn disable_client(&self, id: &str, now: Millis) -> Result<Option<u64>, StoreError> {
        self.db.disable_client(id, now).await
    }
    async fn enable_client(&self, id: &str) -> Result<bool, StoreError> {
        self.db.enable_client(id).await
    }
    async fn set_client_secret(
        &self,
        id: &str,
        secret_hash: &TokenHash,
        now: Millis,
        revoke_tokens: bool,
    ) -> Result<Option<u64>, StoreError> {
        self.db
            .set_client_secret(id, secret_hash, now, revoke_tokens)
            .await
    }
    async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        self.db.delete_client(id).await
    }
    async fn insert_token(&self, token: &OAuthTokenRecord) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Unavailable("the token writer has stopped".into());
        self.inserts
            .send((token.clone(), reply))
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
    async fn token_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<(OAuthTokenRecord, OAuthClient)>, StoreError> {
        self.db.token_by_hash(hash).await
    }
    async fn revoke_token(
        &self,
        hash: &TokenHash,
        client_id: &str,
        now: Millis,
    ) -> Result<bool, StoreError> {
        self.db.revoke_token(hash, client_id, now).await
    }
    async fn delete_expired_tokens(&self, before: Millis) -> Result<u64, StoreError> {
        self.db.delete_expired_tokens(before).await
    }
}
