//! Storage: one trait, implemented for SQLite (the embedded default) and PostgreSQL (many nodes).
//! Both pass the same conformance suite (`tests/store_conformance.rs`).
//!
//! Storage sees token *hashes* only ([`TokenHash`]); generating values is the token format's job.

mod coalesce;
mod group;
pub mod oauth;
pub mod postgres;
mod postgres_group;
pub mod postgres_notify;
pub mod postgres_oauth;
mod postgres_oauth_group;
pub mod purge;
mod schema;
pub mod sqlite;
mod sqlite_busy;
mod sqlite_checkpoint;
mod sqlite_group;
mod sqlite_read;
mod sqlite_rows;
mod sqlite_writer;

pub use oauth::{OAuthStore, SharedOAuthStore};
pub use schema::{AppliedMigration, MigrationReport};

use async_trait::async_trait;
use std::sync::Arc;

use crate::domain::clock::Millis;
use crate::domain::grant::{ClientKeySource, Grant, GrantState};
use crate::domain::interaction::Interaction;
use crate::domain::introspection::IntrospectionRecord;
use crate::domain::token::AccessTokenRecord;
use crate::token_format::TokenHash;

/// Storage failures.
#[derive(Debug, Clone, thiserror::Error)]
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

/// A token or secret hash read back from a row (both stores keep it as 32 raw bytes).
fn hash_from(bytes: Vec<u8>) -> Result<TokenHash, StoreError> {
    TokenHash::from_slice(&bytes).ok_or_else(|| StoreError::Corrupt("hash is not 32 bytes".into()))
}

/// The grant columns an introspection answer needs (both stores name them alike): its id,
/// state, client and access list, not its continuation or timing columns.
const INTROSPECTION_GRANT_COLUMNS: &str = "g.id AS g_id, g.client_kind AS g_client_kind, \
    g.client_value AS g_client_value, g.access AS g_access, g.state AS g_state";

/// A grant's client read back from its two columns (see [`GrantColumns`]).
fn client_from_columns(kind: &str, value: String) -> Result<ClientKeySource, StoreError> {
    match kind {
        "wallet_address" => Ok(ClientKeySource::WalletAddress(value)),
        "jwk" => Ok(ClientKeySource::Jwk(
            serde_json::from_str(&value).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        )),
        other => Err(StoreError::Corrupt(format!("client kind {other}"))),
    }
}

/// A grant's access list read back as the JSON text it was stored as, checked to be JSON.
fn stored_access(access: String) -> Result<Box<serde_json::value::RawValue>, StoreError> {
    serde_json::value::RawValue::from_string(access)
        .map_err(|e| StoreError::Corrupt(format!("access list: {e}")))
}

/// A grant's state read back from its column.
fn state_from_column(state: &str) -> Result<GrantState, StoreError> {
    GrantState::parse(state).ok_or_else(|| StoreError::Corrupt(format!("grant state {state}")))
}

/// The columns of a grant row that both stores encode the same way: the client (a kind and a
/// value: the wallet address URL, or the JWK as JSON), the access list as JSON, and `wait`.
struct GrantColumns {
    client_kind: &'static str,
    client_value: String,
    access: String,
    wait_secs: i64,
}

impl GrantColumns {
    fn of(grant: &Grant) -> Result<GrantColumns, StoreError> {
        let json = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
        let (client_kind, client_value) = match &grant.client {
            ClientKeySource::WalletAddress(url) => ("wallet_address", url.clone()),
            ClientKeySource::Jwk(jwk) => ("jwk", serde_json::to_string(jwk).map_err(json)?),
        };
        Ok(GrantColumns {
            client_kind,
            client_value,
            access: serde_json::to_string(&grant.access).map_err(json)?,
            wait_secs: i64::try_from(grant.wait_secs)
                .map_err(|_| StoreError::Conflict(format!("wait {} too large", grant.wait_secs)))?,
        })
    }
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

/// What one [`Store::purge_expired`] batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeOutcome {
    /// Access tokens deleted (not counting those deleted with their grant).
    pub tokens: u64,
    /// Grants deleted, with their remaining tokens and interaction.
    pub grants: u64,
    /// Another node was running a batch; nothing was done.
    pub skipped: bool,
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

    /// The token with this value hash, with what introspection needs of its grant (its access
    /// list as stored): the same rows as [`Self::token_by_hash`], read as one snapshot.
    async fn introspection_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<IntrospectionRecord>, StoreError>;

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

    /// Closes the store's connections, waiting for them to finish. Later calls fail.
    async fn close(&self) {}

    /// One janitor batch: deletes at most `limit` access tokens that expired (revoked or not)
    /// before `before`, then at most `limit` grants that can no longer matter: cancelled or
    /// rejected before `before`, issued with no token left, or abandoned in interaction since
    /// before `before`. Deleting never makes anything active: an unknown token is inactive.
    /// On PostgreSQL one node at a time runs a batch (transaction-scoped advisory lock);
    /// [`PurgeOutcome::skipped`] tells a node that another holds it.
    async fn purge_expired(&self, before: Millis, limit: u32) -> Result<PurgeOutcome, StoreError>;

    /// Inserts a pending grant and its interaction, in one transaction.
    async fn create_interactive_grant(
        &self,
        grant: &Grant,
        interaction: &Interaction,
    ) -> Result<(), StoreError>;

    /// The interaction with this public id, with its grant.
    async fn interaction_by_id(&self, id: &str)
        -> Result<Option<(Interaction, Grant)>, StoreError>;

    /// The interaction of a grant, if it has one.
    async fn interaction_by_grant(&self, grant_id: &str)
        -> Result<Option<Interaction>, StoreError>;

    /// Binds the browser session that started the interaction, once: returns false (and
    /// changes nothing) when another session is already bound, so a second browser opening the
    /// same redirect cannot take the consent over.
    async fn bind_interaction_session(
        &self,
        interaction_id: &str,
        session: &TokenHash,
    ) -> Result<bool, StoreError>;

    /// Records the resource owner's decision: `pending` becomes `approved` or `rejected`.
    /// Returns false (and changes nothing) when the grant was no longer pending.
    async fn decide_grant(
        &self,
        grant_id: &str,
        approve: bool,
        now: Millis,
    ) -> Result<bool, StoreError>;

    /// Sets the interaction reference once; returns the reference in force afterwards.
    async fn set_interact_ref(
        &self,
        interaction_id: &str,
        interact_ref: &str,
    ) -> Result<String, StoreError>;

    /// Finalizes an approved grant as issued and inserts its first token, atomically.
    /// Returns false (and changes nothing) when the grant was not `approved` any more.
    async fn issue_approved_grant(
        &self,
        grant_id: &str,
        token: &AccessTokenRecord,
        now: Millis,
    ) -> Result<bool, StoreError>;

    /// Records a continuation poll unless the previous one was less than `wait_ms` ago.
    /// Returns false (and changes nothing) when the client polls too fast.
    async fn touch_continuation(
        &self,
        grant_id: &str,
        now: Millis,
        wait_ms: Millis,
    ) -> Result<bool, StoreError>;
}

/// A shared store handle.
pub type SharedStore = Arc<dyn Store>;

/// True for the URLs [`postgres::PostgresStore`] serves: `postgres://` and `postgresql://`.
pub fn is_postgres_url(database_url: &str) -> bool {
    database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")
}

fn unsupported_scheme(database_url: &str) -> StoreError {
    StoreError::Open(format!(
        "unsupported database URL scheme in `{}:` (expected sqlite:///path/file.db or \
         postgres://user@host/database)",
        database_url.split(':').next().unwrap_or_default()
    ))
}

/// Opens (and migrates) the store a database URL names: `sqlite:///path/file.db` (or
/// `sqlite://relative.db`; not `sqlite::memory:`, see [`sqlite::SqliteStore::open`]), or
/// `postgres://user@host:port/database` (`postgresql://` too). A database whose schema is newer
/// than this binary knows is refused.
pub async fn open(database_url: &str) -> Result<SharedStore, StoreError> {
    if database_url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(database_url).await?))
    } else if is_postgres_url(database_url) {
        Ok(Arc::new(postgres::PostgresStore::open(database_url).await?))
    } else {
        Err(unsupported_scheme(database_url))
    }
}

/// Every store the server needs, over one database and one set of connections.
#[derive(Clone)]
pub struct Stores {
    /// Grants, GNAP tokens, interactions.
    pub gnap: SharedStore,
    /// OAuth clients and their tokens.
    pub oauth: SharedOAuthStore,
}

/// Like [`open`], but returns every store over the same connections (what the server needs).
pub async fn open_stores(database_url: &str) -> Result<Stores, StoreError> {
    if database_url.starts_with("sqlite:") {
        let store = sqlite::SqliteStore::open(database_url).await?;
        Ok(Stores {
            oauth: Arc::new(store.clone()),
            gnap: Arc::new(store),
        })
    } else if is_postgres_url(database_url) {
        // One pool serves both: PostgreSQL commits concurrent transactions together already.
        let store = postgres::PostgresStore::open(database_url).await?;
        Ok(Stores {
            oauth: Arc::new(store.clone()),
            gnap: Arc::new(store),
        })
    } else {
        Err(unsupported_scheme(database_url))
    }
}

/// Migrates the database a URL names and reports what was applied (`latchkey migrate`).
pub async fn migrate(database_url: &str) -> Result<MigrationReport, StoreError> {
    if database_url.starts_with("sqlite:") {
        let (store, report) = sqlite::SqliteStore::open_reporting(database_url).await?;
        store.close().await;
        Ok(report)
    } else if is_postgres_url(database_url) {
        let settings = postgres::PgSettings::default();
        let (store, report) = postgres::PostgresStore::open_with(database_url, &settings).await?;
        store.close().await;
        Ok(report)
    } else {
        Err(unsupported_scheme(database_url))
    }
}
