//! Storage of OAuth clients and their access tokens: the [`OAuthStore`] trait and its SQLite
//! implementation on [`SqliteStore`] (same database, same writer connection as the GNAP store).
//!
//! Like the GNAP store, it only ever sees SHA-256 hashes of secrets and the lookup keys of token
//! values ([`TokenHash::of`](crate::token_format::TokenHash::of)), never the values.

use async_trait::async_trait;
use std::sync::Arc;

use super::sqlite::{SqliteStore, IMMEDIATE};
use super::sqlite_rows::ColumnRead;
use super::sqlite_writer::write_error;
use super::{hash_from, StoreError};
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

    /// Inserts a token, only if its client exists, is enabled, and still has the secret whose
    /// hash is `secret` (the one the caller authenticated with). A client disabled, or whose
    /// secret was replaced, between authentication and issue gets no token: the old secret
    /// "stops working at once" even for a request already past its authentication. Returns
    /// whether it was inserted.
    async fn insert_token(
        &self,
        token: &OAuthTokenRecord,
        secret: &TokenHash,
    ) -> Result<bool, StoreError>;

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

fn client_from_row(row: &impl ColumnRead) -> Result<OAuthClient, StoreError> {
    let scopes: String = row.column("c_scopes")?;
    Ok(OAuthClient {
        id: row.column("c_id")?,
        name: row.column("c_name")?,
        secret_hash: hash_from(row.column("c_secret_hash")?)?,
        scopes: scopes_from(&scopes),
        created_at: row.column("c_created_at")?,
        secret_rotated_at: row.column("c_secret_rotated_at")?,
        disabled_at: row.column("c_disabled_at")?,
    })
}

fn token_from_row(row: &impl ColumnRead) -> Result<OAuthTokenRecord, StoreError> {
    let scopes: String = row.column("t_scopes")?;
    Ok(OAuthTokenRecord {
        hash: hash_from(row.column("t_hash")?)?,
        client_id: row.column("t_client_id")?,
        scopes: scopes_from(&scopes),
        created_at: row.column("t_created_at")?,
        expires_at: row.column("t_expires_at")?,
        revoked_at: row.column("t_revoked_at")?,
    })
}

/// The hot-path OAuth reads, on the calling thread ([`super::sqlite_read`]).
static CLIENT_BY_ID: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients c WHERE c.id = ?1")
});

static TOKEN_BY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {TOKEN_COLUMNS}, {CLIENT_COLUMNS} FROM oauth_tokens t \
         JOIN oauth_clients c ON c.id = t.client_id WHERE t.hash = ?1"
    )
});

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

/// The SQLite OAuth store: the same database as the GNAP store.
///
/// The two OAuth hot-path writes, token inserts (`client_credentials`) and revocations (RFC
/// 7009), go to the writer thread (`store::sqlite_writer`), which commits everything that
/// arrived while its previous commit was under way in one transaction, GNAP writes included, so
/// one fsync serves many requests. Each consecutive run of inserts (or of revocations) is one
/// SQL statement over a JSON array of rows (`apply_oauth_run`), with the outcome each write
/// would have had alone (an insert only for an enabled client that still has the secret the
/// request was authenticated with; a revocation only of a token of the requesting client that
/// is not revoked yet).
///
/// The hot-path reads (the client every OAuth request authenticates, a token by hash) run on
/// the calling thread (`store::sqlite_read`), never cached: a disabled client or a rotated
/// secret fails at once.
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
        self.reads()
            .one(&CLIENT_BY_ID, id, |row| client_from_row(row))
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
        let mut tx = self
            .writer()
            .begin_with(IMMEDIATE)
            .await
            .map_err(db_error)?;
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
        let mut tx = self
            .writer()
            .begin_with(IMMEDIATE)
            .await
            .map_err(db_error)?;
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
        let mut tx = self
            .writer()
            .begin_with(IMMEDIATE)
            .await
            .map_err(db_error)?;
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

    /// On the writer thread, in a group with the other hot-path writes.
    async fn insert_token(
        &self,
        token: &OAuthTokenRecord,
        secret: &TokenHash,
    ) -> Result<bool, StoreError> {
        self.writes()
            .oauth(OAuthWrite::Insert {
                token: token.clone(),
                secret: *secret,
            })
            .await
    }

    async fn token_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<(OAuthTokenRecord, OAuthClient)>, StoreError> {
        self.reads().one(&TOKEN_BY_HASH, hash.as_bytes(), |row| {
            Ok((token_from_row(row)?, client_from_row(row)?))
        })
    }

    async fn revoke_token(
        &self,
        hash: &TokenHash,
        client_id: &str,
        now: Millis,
    ) -> Result<bool, StoreError> {
        self.writes()
            .oauth(OAuthWrite::Revoke {
                hash: *hash,
                client_id: client_id.to_string(),
                now,
            })
            .await
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

/// One queued OAuth write (for the SQLite and PostgreSQL group commits).
#[derive(Debug, Clone)]
pub(super) enum OAuthWrite {
    /// [`OAuthStore::insert_token`]: the token, and the client secret's hash it was
    /// authenticated with.
    Insert {
        token: OAuthTokenRecord,
        secret: TokenHash,
    },
    /// [`OAuthStore::revoke_token`].
    Revoke {
        hash: TokenHash,
        client_id: String,
        now: Millis,
    },
}

impl OAuthWrite {
    /// Inserts and revocations make separate runs.
    pub(super) fn is_insert(&self) -> bool {
        matches!(self, OAuthWrite::Insert { .. })
    }
}

/// For each write of a run of revocations, whether it is the first revocation of its (token,
/// client) pair. Only that one can revoke it (a later one finds it revoked, or fails the same
/// way), so the others stay out of the statement and the stored `revoked_at` is the first
/// one's, as one by one.
pub(super) fn first_revocations(run: &[OAuthWrite]) -> Vec<bool> {
    let mut seen = std::collections::HashSet::new();
    run.iter()
        .map(|write| match write {
            OAuthWrite::Revoke {
                hash, client_id, ..
            } => seen.insert((*hash, client_id.as_str())),
            OAuthWrite::Insert { .. } => true,
        })
        .collect()
}

/// The outcome of each write of a run, given the (token, client) pairs its statement inserted
/// or revoked. A pair goes to the first write that names it: when two revocations of one token
/// share a run, the first revoked it and the second found it revoked, as one by one.
pub(super) fn outcomes(
    run: &[OAuthWrite],
    mut affected: std::collections::HashSet<(TokenHash, String)>,
) -> Vec<bool> {
    run.iter()
        .map(|write| match write {
            OAuthWrite::Insert { token, .. } => {
                affected.remove(&(token.hash, token.client_id.clone()))
            }
            OAuthWrite::Revoke {
                hash, client_id, ..
            } => affected.remove(&(*hash, client_id.clone())),
        })
        .collect()
}

/// One statement for a run of inserts (or of revocations), in the writer thread's transaction
/// ([`super::sqlite_writer`]): the rows go in as one JSON array (`json_each`), the affected
/// rows come back with `RETURNING`.
pub(super) fn apply_oauth_run(
    tx: &rusqlite::Transaction<'_>,
    run: &[OAuthWrite],
) -> Result<Vec<bool>, StoreError> {
    let mut rows = Vec::with_capacity(run.len());
    for (write, first) in run.iter().zip(first_revocations(run)) {
        if !first {
            continue;
        }
        rows.push(match write {
            OAuthWrite::Insert { token: t, secret } => serde_json::json!([
                hex::encode(t.hash.as_bytes()),
                t.client_id,
                t.scopes.join(" "),
                t.created_at,
                t.expires_at,
                t.revoked_at,
                hex::encode(secret.as_bytes())
            ]),
            OAuthWrite::Revoke {
                hash,
                client_id,
                now,
            } => serde_json::json!([hex::encode(hash.as_bytes()), client_id, now]),
        });
    }
    let rows = serde_json::Value::Array(rows).to_string();
    let inserts = run.first().is_some_and(|w| w.is_insert());
    let sql = if inserts {
        // An insert only for an existing, enabled client that still has the secret the
        // caller authenticated with.
        "INSERT INTO oauth_tokens (hash, client_id, scopes, created_at, expires_at, revoked_at) \
         SELECT unhex(j.value ->> 0), j.value ->> 1, j.value ->> 2, j.value ->> 3, \
         j.value ->> 4, j.value ->> 5 FROM json_each(?1) AS j WHERE EXISTS \
         (SELECT 1 FROM oauth_clients c WHERE c.id = j.value ->> 1 AND c.disabled_at IS NULL \
         AND c.secret_hash = unhex(j.value ->> 6)) \
         RETURNING hash, client_id"
    } else {
        // A revocation only of the requesting client's token, unrevoked.
        "UPDATE oauth_tokens SET revoked_at = j.value ->> 2 FROM json_each(?1) AS j \
         WHERE oauth_tokens.hash = unhex(j.value ->> 0) AND oauth_tokens.client_id = j.value ->> 1 \
         AND oauth_tokens.revoked_at IS NULL RETURNING hash, client_id"
    };
    let returned: Vec<(Vec<u8>, String)> = tx
        .prepare_cached(sql)
        .and_then(|mut statement| {
            statement
                .query_map([rows], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect()
        })
        .map_err(write_error)?;
    let mut affected = std::collections::HashSet::with_capacity(returned.len());
    for (hash, client_id) in returned {
        affected.insert((hash_from(hash)?, client_id));
    }
    Ok(outcomes(run, affected))
}
