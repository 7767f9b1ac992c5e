//! Storage: one trait, implemented for SQLite (the embedded default) and, later, PostgreSQL.
//! Both pass the same conformance suite (`tests/store_conformance.rs`).
//!
//! Storage sees token *hashes* only ([`TokenHash`]); generating values is the token format's job.

pub mod sqlite;

use async_trait::async_trait;
use std::sync::Arc;

use crate::domain::clock::Millis;
use crate::domain::grant::Grant;
use crate::domain::token::AccessTokenRecord;
use crate::token_format::TokenHash;

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is overloaded; the request may be retried.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule was broken (e.g. an id collision).
    #[error("storage conflict: {0}")]
    Conflict(String),
    /// A stored row could not be read back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Opening or migrating the database failed.
    #[error("cannot open the database: {0}")]
    Open(String),
}

/// Result of [`Store::rotate_token`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The old token is dead and the successor live, in one transaction.
    Rotated,
    /// The old token was no longer live (revoked, rotated by a concurrent call, or its grant
    /// cancelled): nothing changed.
    NotLive,
}

/// The persistence the token lifecycle needs. Every method is one transaction.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Inserts a grant and, for grants issued at once, its first access token.
    async fn create_grant(
        &self,
        grant: &Grant,
        token: Option<&AccessTokenRecord>,
    ) -> Result<(), StoreError>;

    /// The grant whose continue URI has this id.
    async fn grant_by_continue_id(&self, continue_id: &str) -> Result<Option<Grant>, StoreError>;

    /// The token whose manage URL has this id, with its grant.
    async fn token_by_manage_id(
        &self,
        manage_id: &str,
    ) -> Result<Option<(AccessTokenRecord, Grant)>, StoreError>;

    /// The token with this value hash, with its grant.
    async fn token_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<(AccessTokenRecord, Grant)>, StoreError>;

    /// Marks the token revoked unless it already is. Idempotent.
    async fn revoke_token(&self, manage_id: &str, now: Millis) -> Result<(), StoreError>;

    /// Atomically kills `old_manage_id` and inserts `successor`, only if the old token is still
    /// unrevoked and its grant not cancelled. Two concurrent calls never both succeed.
    async fn rotate_token(
        &self,
        old_manage_id: &str,
        successor: &AccessTokenRecord,
        now: Millis,
    ) -> Result<RotateOutcome, StoreError>;

    /// Finalizes the grant as revoked and revokes every token of it, in one transaction.
    async fn cancel_grant(&self, grant_id: &str, now: Millis) -> Result<(), StoreError>;

    /// Cheap liveness check for health endpoints.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// A shared store handle.
pub type SharedStore = Arc<dyn Store>;

/// Opens the store a database URL names: `sqlite:///path/file.db` (or `sqlite://relative.db`,
/// `sqlite::memory:`).
pub async fn open(database_url: &str) -> Result<SharedStore, StoreError> {
    if database_url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(database_url).await?))
    } else {
        Err(StoreError::Open(format!(
            "unsupported database URL scheme in `{}` (expected sqlite:///path/file.db)",
            database_url.split(':').next().unwrap_or_default()
        )))
    }
}
