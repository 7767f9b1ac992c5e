//! PostgreSQL store: the shared truth of a cluster of stateless Latchkey nodes.
//!
//! Every node runs the same code against the same database, so every correctness argument here
//! is about concurrent transactions from *different processes*, at PostgreSQL's default isolation
//! level, READ COMMITTED. Two facts of READ COMMITTED carry the arguments:
//!
//! 1. Each *statement* sees a fresh snapshot: everything committed before it started.
//! 2. An `UPDATE` (or `SELECT ... FOR [NO KEY] UPDATE | FOR SHARE`) that meets a row locked by
//!    another transaction waits for it to finish, then re-checks its `WHERE` clause against the
//!    row's newest version and skips the row if it no longer matches; a locking `SELECT`
//!    returns that newest version's values.
//!
//! The rules (see each method for the proof of its own case):
//!
//! - Rotation and cancel both take the *grant row* lock before touching any token of the grant,
//!   so on one grant they run one after the other, never interleaved.
//! - The kill of the old token in a rotation is a conditional update (`revoked_at IS NULL`), so
//!   of N concurrent rotations of one token exactly one changes a row.
//! - Lock order is always grant row, then token rows; a single-token revoke locks one token row
//!   only. No cycle between single writes. Groups (below) lock all their grant rows first, in
//!   id order; two groups' multi-row token statements can still meet on two token rows in
//!   opposite orders: PostgreSQL then aborts one (40P01) and its writes are replayed alone.
//!
//! The hot-path writes (GNAP grant creation, rotation, revocation, cancel; OAuth token inserts
//! and revocations) go through a per-node group commit: one transaction for all the writes that
//! arrived during the previous one, a statement per run of same-kind writes. How the rules
//! above still hold for groups, between nodes, is written in `postgres_group.rs` and
//! `postgres_oauth_group.rs`. A GNAP write of its own (a group of one, or a write of a failed
//! group) is a run of one: the same statement, or function, as a group's run, sent alone. The
//! OAuth single-write code is in `postgres_oauth.rs` (`*_alone`).
//!
//! Durability: PostgreSQL acknowledges a `COMMIT` only once its WAL is flushed (with the default
//! `synchronous_commit = on`), so an acknowledged revoke, rotate or cancel survives a crash.
//!
//! Connection failures (refused, reset, pool timeout, server shutting down) map to
//! [`StoreError::Unavailable`], which the HTTP layer renders as a protocol-shaped 503. sqlx
//! pings every connection when it goes back to the pool and drops one that fails, so a node
//! recovers by itself when the database returns: a connection broken while idle in the pool
//! fails the one call that uses it next (a 503), and is then dropped.

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Row};
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use super::coalesce::{BatchRead, Coalesced};
use super::group::{GroupQueue, WriteDone, WriteOp};
use super::oauth::OAuthWrite;
use super::postgres_group::PgGroupWriter;
use super::postgres_oauth::{client_reads, oauth_token_reads, OAuthTokenAndClient};
use super::postgres_oauth_group::PgOAuthGroupWriter;
use super::schema::{run_migrations, MigrationReport};
use super::{
    client_from_columns, hash_from, purge, state_from_column, stored_access, GrantColumns,
    PurgeOutcome, RotateOutcome, Store, StoreError, INTROSPECTION_GRANT_COLUMNS,
};
use crate::domain::clock::Millis;
use crate::domain::grant::{ClientKeySource, Grant};
use crate::domain::interaction::Interaction;
use crate::domain::introspection::IntrospectionRecord;
use crate::domain::token::AccessTokenRecord;
use crate::oauth::client::OAuthClient;
use crate::token_format::TokenHash;

/// The channel nodes publish cache invalidations on (see `postgres_notify`).
pub const INVALIDATION_CHANNEL: &str = "latchkey_invalidate";

/// Migrations of the PostgreSQL schema.
pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connection pool settings.
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// Most connections this node's pool keeps open (reads and the other writes). The group
    /// writers have their own besides, one per lane (`GNAP_WRITE_LANES` + `OAUTH_WRITE_LANES`,
    /// see [`PostgresStore::open_with`]).
    pub max_connections: u32,
    /// How long a request waits for a free (or new) connection before it gets a 503.
    pub acquire_timeout: Duration,
    /// `statement_timeout`: no statement (including lock waits) runs longer.
    pub statement_timeout: Duration,
    /// `idle_in_transaction_session_timeout`: a node that vanishes mid-transaction (a network
    /// partition rather than a crash, which closes the socket) cannot hold row locks longer.
    pub idle_in_transaction_timeout: Duration,
    /// Longest a store call may take end to end. `statement_timeout` is enforced by the server
    /// and cannot help when the network path itself is dead; this deadline can.
    pub operation_timeout: Duration,
}

impl Default for PgSettings {
    fn default() -> Self {
        PgSettings {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(15),
            idle_in_transaction_timeout: Duration::from_secs(30),
            operation_timeout: Duration::from_secs(20),
        }
    }
}

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// The group writers' own connections (GNAP, OAuth), closed with `pool`.
    writer_pools: [PgPool; 2],
    operation_timeout: Duration,
    /// Group commit of the GNAP hot-path writes (`postgres_group.rs`).
    writes: GroupQueue<WriteOp, WriteDone>,
    /// Group commit of OAuth token inserts and revocations (`postgres_oauth_group.rs`).
    oauth_writes: GroupQueue<OAuthWrite, bool>,
    /// Coalesced token-and-grant reads by hash ([`Store::token_by_hash`]).
    lookups: Coalesced<PgKeyedReads<TokenHash, TokenAndGrant>>,
    /// Coalesced introspection reads.
    introspection_lookups: Coalesced<PgKeyedReads<TokenHash, IntrospectionRecord>>,
    /// Coalesced token reads by manage id (rotation, revocation).
    manage_lookups: Coalesced<PgKeyedReads<String, TokenAndGrant>>,
    /// Coalesced grant reads by continue id (continuation, cancel).
    grant_lookups: Coalesced<PgKeyedReads<String, Grant>>,
    /// Coalesced OAuth client reads (`postgres_oauth.rs`).
    client_lookups: Coalesced<PgKeyedReads<String, OAuthClient>>,
    /// Coalesced OAuth token reads with their client (`postgres_oauth.rs`).
    oauth_token_lookups: Coalesced<PgKeyedReads<TokenHash, OAuthTokenAndClient>>,
}

/// Parses a `postgres://` or `postgresql://` URL into connect options with Latchkey's session
/// settings.
pub fn connect_options(url: &str, settings: &PgSettings) -> Result<PgConnectOptions, StoreError> {
    let millis = |d: Duration| d.as_millis().to_string();
    Ok(PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Open(format!("bad PostgreSQL URL: {e}")))?
        .application_name("latchkey")
        .options([
            ("statement_timeout", millis(settings.statement_timeout)),
            (
                "idle_in_transaction_session_timeout",
                millis(settings.idle_in_transaction_timeout),
            ),
        ]))
}

impl PostgresStore {
    /// Connects with default settings and migrates.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Ok(Self::open_with(url, &PgSettings::default()).await?.0)
    }

    /// Connects, migrates, and reports what the migration did.
    ///
    /// Migrations run on a connection of their own, closed afterwards, so the migration lock (a
    /// session-level advisory lock) can never stay behind in the pool. Several nodes starting at
    /// once wait on that lock; the first migrates, the others find nothing to do.
    pub async fn open_with(
        url: &str,
        settings: &PgSettings,
    ) -> Result<(Self, MigrationReport), StoreError> {
        let options = connect_options(url, settings)?;
        let mut conn = PgConnection::connect_with(&options)
            .await
            .map_err(|e| StoreError::Open(format!("cannot connect to PostgreSQL: {e}")))?;
        let migrated = run_migrations(&MIGRATOR, &mut conn, "postgres").await;
        // Closing ends the session, which also drops any advisory lock left behind.
        let _ = conn.close().await;
        let report = migrated?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .min_connections(0)
            .acquire_timeout(settings.acquire_timeout)
            // No ping before each use: sqlx already pings on release, and a ping is one more
            // round trip per statement (measured: introspection 13.1k -> 23.9k/s at 64 clients).
            .test_before_acquire(false)
            .connect_lazy_with(options.clone());
        // The group writers' own connections, driven by their own runtime (see
        // `GroupQueue::start`): one for the GNAP writer's lane, one per OAuth lane.
        // A writer pings a connection that sat idle before using it. A connection that died
        // idle (the database restarted, the network was cut) is then replaced before a write is
        // sent on it, instead of failing the first write after an outage. Under load the
        // connection goes straight from one group to the next and is never pinged: a ping
        // before every group cost about 10 % of rotate and revoke throughput.
        //
        // Their statements run with generic plans (`plan_cache_mode`). Each is prepared once per
        // connection and sent again and again with arrays of rows, and finds its rows by key
        // (`= ANY($1)` on an index, or a primary key) whatever the arrays hold. Left to `auto`,
        // PostgreSQL planned the rotation statement anew on every call (the cost it estimates
        // for a generic plan over arrays of unknown length is higher than that of each custom
        // plan): 580-790 µs of PostgreSQL CPU per call of `latchkey_rotate_tokens`, against
        // 133-336 µs with the generic plan (issue 7, 400 calls per run on 20,000-token tables).
        let writer_options = options
            .clone()
            .options([("plan_cache_mode", "force_generic_plan")]);
        let writer_pool = |connections: usize| {
            PgPoolOptions::new()
                .max_connections(connections as u32)
                .min_connections(0)
                .acquire_timeout(settings.acquire_timeout)
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= WRITER_PING_AFTER_IDLE {
                            conn.ping().await?;
                        }
                        Ok(true)
                    })
                })
                .connect_lazy_with(writer_options.clone())
        };
        let gnap_writer_pool = writer_pool(GNAP_WRITE_LANES);
        let oauth_writer_pool = writer_pool(OAUTH_WRITE_LANES);
        let writes = GroupQueue::start(
            PgGroupWriter {
                pool: gnap_writer_pool.clone(),
                operation_timeout: settings.operation_timeout,
            },
            GNAP_WRITE_LANES,
            "PostgreSQL GNAP writer",
        )?;
        let oauth_writes = GroupQueue::start(
            PgOAuthGroupWriter {
                pool: oauth_writer_pool.clone(),
                operation_timeout: settings.operation_timeout,
            },
            OAUTH_WRITE_LANES,
            "PostgreSQL OAuth writer",
        )?;
        let timeout = settings.operation_timeout;
        let lookups = token_reads(
            pool.clone(),
            timeout,
            "t.hash",
            |(t, _)| t.hash,
            "PostgreSQL token reader",
        );
        let introspection_lookups = PgKeyedReads::start(
            pool.clone(),
            timeout,
            &format!(
                "SELECT {TOKEN_COLUMNS}, {INTROSPECTION_GRANT_COLUMNS} FROM access_tokens t \
                 JOIN grants g ON g.id = t.grant_id WHERE t.hash"
            ),
            introspection_from_row,
            |record| record.token.hash,
            "PostgreSQL introspection reader",
        );
        let manage_lookups = token_reads(
            pool.clone(),
            timeout,
            "t.manage_id",
            |(t, _)| t.manage_id.clone(),
            "PostgreSQL manage-id reader",
        );
        let grant_lookups = PgKeyedReads::start(
            pool.clone(),
            timeout,
            &format!("SELECT {GRANT_COLUMNS} FROM grants g WHERE g.continue_id"),
            grant_from_row,
            |g: &Grant| g.continue_id.clone(),
            "PostgreSQL grant reader",
        );
        let client_lookups = client_reads(pool.clone(), timeout);
        let oauth_token_lookups = oauth_token_reads(pool.clone(), timeout);
        let store = PostgresStore {
            pool,
            writer_pools: [gnap_writer_pool, oauth_writer_pool],
            operation_timeout: settings.operation_timeout,
            writes,
            oauth_writes,
            lookups,
            introspection_lookups,
            manage_lookups,
            grant_lookups,
            client_lookups,
            oauth_token_lookups,
        };
        Ok((store, report))
    }

    /// The OAuth group-commit queue (`postgres_oauth.rs`).
    pub(super) fn oauth_writes(&self) -> &GroupQueue<OAuthWrite, bool> {
        &self.oauth_writes
    }

    /// The coalesced OAuth client reads (`postgres_oauth.rs`).
    pub(super) fn client_lookups(&self) -> &Coalesced<PgKeyedReads<String, OAuthClient>> {
        &self.client_lookups
    }

    /// The coalesced OAuth token reads (`postgres_oauth.rs`).
    pub(super) fn oauth_token_lookups(
        &self,
    ) -> &Coalesced<PgKeyedReads<TokenHash, OAuthTokenAndClient>> {
        &self.oauth_token_lookups
    }

    /// The connection pool, for the janitor and the notification listener.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// One purge statement in its own transaction, under the janitor's advisory lock; `None`
    /// when another node holds the lock. The lock is transaction-scoped: the commit releases
    /// it, and so does the server if this node dies, so a crashed janitor blocks nobody.
    async fn purge_step(
        &self,
        statement: &str,
        before: Millis,
        limit: u32,
    ) -> Result<Option<u64>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(purge::LOCK_KEY)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        if !locked {
            tx.rollback().await.map_err(db_error)?;
            return Ok(None);
        }
        // Dead rows only. A row that a rotation, revoke or cancel is changing right now waits
        // for it, then is re-checked against the cutoff (READ COMMITTED fact 2).
        let deleted = sqlx::query(statement)
            .bind(before)
            .bind(i64::from(limit))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        tx.commit().await.map_err(db_error)?;
        Ok(Some(deleted))
    }

    /// Runs one store call under [`PgSettings::operation_timeout`]. On timeout the call's
    /// future is dropped: sqlx then discards or resets its connection, and an open transaction
    /// is rolled back by the server. The caller gets a 503 and was acknowledged nothing.
    pub(crate) async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        within(self.operation_timeout, call).await
    }

    /// Waits for a write queued for group commit. The group writer bounds each group and each
    /// replay by [`PgSettings::operation_timeout`] and answers every caller itself, so the
    /// caller's own bound is only a backstop for a writer that stopped making progress. It is
    /// [`QUEUED_WAIT_FACTOR`] times the operation timeout, longer than the worst ordinary path
    /// (waiting behind the group being committed, then one's own group, then one's own replay):
    /// a caller that gave up early while its write was still being committed would report a
    /// failure for a write that then commits (for a rotation: a killed token whose successor is
    /// never delivered).
    pub(crate) async fn queued<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        within(self.operation_timeout * QUEUED_WAIT_FACTOR, call).await
    }
}

/// See [`PostgresStore::queued`].
const QUEUED_WAIT_FACTOR: u32 = 4;

/// Runs `call` for at most `limit`; past it, the call is dropped and the answer is
/// [`StoreError::Unavailable`] (see [`PostgresStore::bounded`]).
pub(crate) async fn within<T>(
    limit: Duration,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(StoreError::Unavailable(format!(
            "the database did not answer within {limit:?}"
        )))
    })
}

/// Maps a sqlx error. Anything that says "the database could not be reached or is shedding
/// load" becomes [`StoreError::Unavailable`] (503, retry).
pub(crate) fn db_error(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                return StoreError::Conflict(db.message().to_string());
            }
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // SQLSTATE classes: 08 connection exception, 53 insufficient resources,
            // 57 operator intervention (shutdown, statement/lock timeout, cancel),
            // 40 transaction rollback (serialization failure, deadlock), 55P03 lock timeout.
            if ["08", "53", "57", "40"].iter().any(|c| code.starts_with(c)) || code == "55P03" {
                StoreError::Unavailable(format!("{} (SQLSTATE {code})", db.message()))
            } else {
                StoreError::Unavailable(format!("database error {code}: {}", db.message()))
            }
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_) => StoreError::Corrupt(e.to_string()),
        other => StoreError::Unavailable(other.to_string()),
    }
}

const GRANT_COLUMNS: &str = "g.id AS g_id, g.continue_id AS g_continue_id, \
    g.continue_token_hash AS g_continue_token_hash, g.client_kind AS g_client_kind, \
    g.client_value AS g_client_value, g.access AS g_access, g.state AS g_state, \
    g.wait_secs AS g_wait_secs, g.created_at AS g_created_at, \
    g.last_continued_at AS g_last_continued_at";

const TOKEN_COLUMNS: &str = "t.manage_id AS t_manage_id, t.grant_id AS t_grant_id, \
    t.hash AS t_hash, t.created_at AS t_created_at, t.expires_at AS t_expires_at, \
    t.revoked_at AS t_revoked_at";

const INTERACTION_COLUMNS: &str = "i.id AS i_id, i.nonce AS i_nonce, i.grant_id AS i_grant_id, \
    i.finish_uri AS i_finish_uri, i.client_nonce AS i_client_nonce, \
    i.interact_ref AS i_interact_ref, i.session_hash AS i_session_hash, \
    i.created_at AS i_created_at, i.expires_at AS i_expires_at";

fn client_from_row(row: &PgRow) -> Result<ClientKeySource, StoreError> {
    let corrupt = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
    let kind: String = row.try_get("g_client_kind").map_err(corrupt)?;
    client_from_columns(&kind, row.try_get("g_client_value").map_err(corrupt)?)
}

fn grant_from_row(row: &PgRow) -> Result<Grant, StoreError> {
    let corrupt = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
    let access: String = row.try_get("g_access").map_err(corrupt)?;
    let state: String = row.try_get("g_state").map_err(corrupt)?;
    let wait_secs: i64 = row.try_get("g_wait_secs").map_err(corrupt)?;
    Ok(Grant {
        id: row.try_get("g_id").map_err(corrupt)?,
        continue_id: row.try_get("g_continue_id").map_err(corrupt)?,
        continue_token_hash: hash_from(row.try_get("g_continue_token_hash").map_err(corrupt)?)?,
        client: client_from_row(row)?,
        access: serde_json::from_str(&access).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        state: state_from_column(&state)?,
        wait_secs: u64::try_from(wait_secs)
            .map_err(|_| StoreError::Corrupt(format!("negative wait {wait_secs}")))?,
        created_at: row.try_get("g_created_at").map_err(corrupt)?,
        last_continued_at: row.try_get("g_last_continued_at").map_err(corrupt)?,
    })
}

fn token_from_row(row: &PgRow) -> Result<AccessTokenRecord, StoreError> {
    let corrupt = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
    Ok(AccessTokenRecord {
        manage_id: row.try_get("t_manage_id").map_err(corrupt)?,
        grant_id: row.try_get("t_grant_id").map_err(corrupt)?,
        hash: hash_from(row.try_get("t_hash").map_err(corrupt)?)?,
        created_at: row.try_get("t_created_at").map_err(corrupt)?,
        expires_at: row.try_get("t_expires_at").map_err(corrupt)?,
        revoked_at: row.try_get("t_revoked_at").map_err(corrupt)?,
    })
}

/// A row of `{TOKEN_COLUMNS}, {GRANT_COLUMNS}`.
fn token_and_grant_from_row(row: &PgRow) -> Result<(AccessTokenRecord, Grant), StoreError> {
    Ok((token_from_row(row)?, grant_from_row(row)?))
}

/// A row of `{TOKEN_COLUMNS}, {INTROSPECTION_GRANT_COLUMNS}`.
fn introspection_from_row(row: &PgRow) -> Result<IntrospectionRecord, StoreError> {
    let corrupt = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
    let state: String = row.try_get("g_state").map_err(corrupt)?;
    Ok(IntrospectionRecord {
        token: token_from_row(row)?,
        grant_id: row.try_get("g_id").map_err(corrupt)?,
        grant_state: state_from_column(&state)?,
        client: client_from_row(row)?,
        access_json: stored_access(row.try_get("g_access").map_err(corrupt)?)?,
    })
}

fn interaction_from_row(row: &PgRow) -> Result<Interaction, StoreError> {
    let corrupt = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
    let session: Option<Vec<u8>> = row.try_get("i_session_hash").map_err(corrupt)?;
    Ok(Interaction {
        id: row.try_get("i_id").map_err(corrupt)?,
        nonce: row.try_get("i_nonce").map_err(corrupt)?,
        grant_id: row.try_get("i_grant_id").map_err(corrupt)?,
        finish_uri: row.try_get("i_finish_uri").map_err(corrupt)?,
        client_nonce: row.try_get("i_client_nonce").map_err(corrupt)?,
        interact_ref: row.try_get("i_interact_ref").map_err(corrupt)?,
        session_hash: session.map(hash_from).transpose()?,
        created_at: row.try_get("i_created_at").map_err(corrupt)?,
        expires_at: row.try_get("i_expires_at").map_err(corrupt)?,
    })
}

async fn insert_grant(conn: &mut PgConnection, grant: &Grant) -> Result<(), StoreError> {
    let columns = GrantColumns::of(grant)?;
    sqlx::query(
        "INSERT INTO grants (id, continue_id, continue_token_hash, client_kind, client_value, \
         access, state, wait_secs, created_at, last_continued_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&grant.id)
    .bind(&grant.continue_id)
    .bind(grant.continue_token_hash.as_bytes())
    .bind(columns.client_kind)
    .bind(columns.client_value)
    .bind(columns.access)
    .bind(grant.state.as_str())
    .bind(columns.wait_secs)
    .bind(grant.created_at)
    .bind(grant.last_continued_at)
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

async fn insert_token(
    conn: &mut PgConnection,
    token: &AccessTokenRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO access_tokens (manage_id, grant_id, hash, created_at, expires_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&token.manage_id)
    .bind(&token.grant_id)
    .bind(token.hash.as_bytes())
    .bind(token.created_at)
    .bind(token.expires_at)
    .bind(token.revoked_at)
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

type TokenAndGrant = (AccessTokenRecord, Grant);

/// Groups of OAuth token writes committing at once (see [`GroupQueue::start`]): one gathers
/// while the other commits. Measured at 64 clients, two pairs: oauth-token 7.0k -> 12.2k/s and
/// 8.2k -> 10.2k/s with two lanes.
const OAUTH_WRITE_LANES: usize = 2;

/// A group writer pings a connection idle for this long before using it (see `open_with`).
const WRITER_PING_AFTER_IDLE: Duration = Duration::from_millis(1);

/// The GNAP writer keeps one lane: two gave no clear gain (rotate 2.9k -> 2.2k and
/// 2.5k -> 3.1k/s, revoke 3.7k -> 3.0k and 3.6k -> 1.8k/s).
const GNAP_WRITE_LANES: usize = 1;

/// Most introspection lookups answered by one read.
const MAX_LOOKUP_BATCH: usize = 128;
/// Reads of coalesced lookups in flight at once (one gathers while the other reads).
const LOOKUP_LANES: usize = 2;

/// A key coalesced reads look rows up by: a token's value hash (introspection), or a text id
/// (manage id, continue id, OAuth client id).
pub(super) trait PgKey: Clone + Eq + std::hash::Hash + Send + Sync + 'static {
    /// The SQL type of the key column.
    const SQL_TYPE: &'static str;
    /// How the key is sent.
    type Bind: for<'q> sqlx::Encode<'q, sqlx::Postgres>
        + sqlx::Type<sqlx::Postgres>
        + sqlx::postgres::PgHasArrayType
        + Send
        + 'static;
    /// The key as sent.
    fn bind(&self) -> Self::Bind;
}

impl PgKey for TokenHash {
    const SQL_TYPE: &'static str = "bytea";
    type Bind = Vec<u8>;
    fn bind(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}

impl PgKey for String {
    const SQL_TYPE: &'static str = "text";
    type Bind = String;
    fn bind(&self) -> String {
        self.clone()
    }
}

/// The two statements of a coalesced lookup: by one key (`$1`) and by an array of keys.
struct KeyedSql {
    one: String,
    many: String,
}

impl KeyedSql {
    /// `select_where` is `SELECT <columns> FROM <tables> WHERE <unique key column>`, `sql_type`
    /// the key column's type.
    ///
    /// The batch form looks each key up on its own, through the key's unique index, whatever
    /// the planner knows. `WHERE key = ANY($1)` does not: with no statistics (a new table, or
    /// autovacuum off) or on a table of a few thousand rows, a batch of 40 or more keys is
    /// planned as a sequential scan (with a hash join to the grants at 128), and every batch
    /// then costs time in proportion to the table (measured: 1.5 ms for 64 keys in 7,000
    /// rows, and introspection fell from 22k to 8k/s as the table grew). `LIMIT 1` (the key is
    /// unique, so it drops nothing) keeps PostgreSQL from flattening the lateral subquery
    /// back into that join.
    fn new(select_where: &str, sql_type: &str) -> KeyedSql {
        KeyedSql {
            one: format!("{select_where} = $1"),
            many: format!(
                "SELECT x.* FROM unnest($1::{sql_type}[]) AS k(key) \
                 CROSS JOIN LATERAL ({select_where} = k.key LIMIT 1) x"
            ),
        }
    }
}

/// Reads of one kind of row by a unique key (tokens with their grant by hash or manage id,
/// grants by continue id, OAuth clients by id), coalesced (never cached) by [`Coalesced`];
/// each read is bounded by the operation timeout, so a lane never waits for ever on a dead
/// network.
pub(super) struct PgKeyedReads<K, V> {
    pool: PgPool,
    operation_timeout: Duration,
    /// The statements, built once.
    sql: KeyedSql,
    from_row: fn(&PgRow) -> Result<V, StoreError>,
    key_of: fn(&V) -> K,
}

impl<K: PgKey, V: Clone + Send + Sync + 'static> PgKeyedReads<K, V> {
    /// Starts the lookup lanes on `pool`; `select_where` is `SELECT ... WHERE <key column>`.
    pub(super) fn start(
        pool: PgPool,
        operation_timeout: Duration,
        select_where: &str,
        from_row: fn(&PgRow) -> Result<V, StoreError>,
        key_of: fn(&V) -> K,
        name: &'static str,
    ) -> Coalesced<Self> {
        Coalesced::start(
            PgKeyedReads {
                pool,
                operation_timeout,
                sql: KeyedSql::new(select_where, K::SQL_TYPE),
                from_row,
                key_of,
            },
            LOOKUP_LANES,
            MAX_LOOKUP_BATCH,
            name,
        )
    }
}

#[async_trait]
impl<K: PgKey, V: Clone + Send + Sync + 'static> BatchRead for PgKeyedReads<K, V> {
    type Key = K;
    type Value = V;

    async fn one(&self, key: &K) -> Result<Option<V>, StoreError> {
        within(self.operation_timeout, async {
            let row = sqlx::query(&self.sql.one)
                .bind(key.bind())
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
            row.as_ref().map(self.from_row).transpose()
        })
        .await
    }

    async fn many(&self, keys: &[K]) -> Result<HashMap<K, V>, StoreError> {
        within(self.operation_timeout, async {
            let rows = sqlx::query(&self.sql.many)
                .bind(keys.iter().map(K::bind).collect::<Vec<_>>())
                .fetch_all(&self.pool)
                .await
                .map_err(db_error)?;
            rows.iter()
                .map(|row| (self.from_row)(row).map(|v| ((self.key_of)(&v), v)))
                .collect()
        })
        .await
    }
}

/// Token-and-grant reads by `column` (`t.hash` for introspection, `t.manage_id` for rotation
/// and revocation). One statement, one snapshot: the token and its grant are read as of the
/// same instant, so a committed cancel is seen either in both or (for the token row) not before
/// the grant row, and any revoke acknowledged before the statement started is visible (fact 1).
/// A batch is the same statement for every key of it: the same argument holds for each.
fn token_reads<K: PgKey>(
    pool: PgPool,
    operation_timeout: Duration,
    column: &str,
    key_of: fn(&TokenAndGrant) -> K,
    name: &'static str,
) -> Coalesced<PgKeyedReads<K, TokenAndGrant>> {
    PgKeyedReads::start(
        pool,
        operation_timeout,
        &format!(
            "SELECT {TOKEN_COLUMNS}, {GRANT_COLUMNS} FROM access_tokens t \
             JOIN grants g ON g.id = t.grant_id WHERE {column}"
        ),
        token_and_grant_from_row,
        key_of,
        name,
    )
}

#[async_trait]
impl Store for PostgresStore {
    async fn create_grant(
        &self,
        grant: &Grant,
        token: Option<&AccessTokenRecord>,
    ) -> Result<(), StoreError> {
        self.queued(self.writes.submit(WriteOp::CreateGrant {
            grant: Box::new(grant.clone()),
            token: token.cloned(),
        }))
        .await?;
        Ok(())
    }

    async fn grant_by_continue_id(&self, continue_id: &str) -> Result<Option<Grant>, StoreError> {
        self.bounded(self.grant_lookups.lookup(continue_id.to_string()))
            .await
    }

    async fn token_by_manage_id(
        &self,
        manage_id: &str,
    ) -> Result<Option<(AccessTokenRecord, Grant)>, StoreError> {
        self.bounded(self.manage_lookups.lookup(manage_id.to_string()))
            .await
    }

    async fn token_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<(AccessTokenRecord, Grant)>, StoreError> {
        self.bounded(self.lookups.lookup(*hash)).await
    }

    async fn introspection_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<IntrospectionRecord>, StoreError> {
        self.bounded(self.introspection_lookups.lookup(*hash)).await
    }

    async fn revoke_token(&self, manage_id: &str, now: Millis) -> Result<(), StoreError> {
        self.queued(self.writes.submit(WriteOp::Revoke {
            manage_id: manage_id.to_string(),
            now,
        }))
        .await?;
        Ok(())
    }

    async fn rotate_token(
        &self,
        old_manage_id: &str,
        successor: &AccessTokenRecord,
        now: Millis,
    ) -> Result<RotateOutcome, StoreError> {
        self.queued(self.writes.submit(WriteOp::Rotate {
            old_manage_id: old_manage_id.to_string(),
            successor: successor.clone(),
            now,
        }))
        .await?
        .rotated()
    }

    async fn cancel_grant(&self, grant_id: &str, now: Millis) -> Result<(), StoreError> {
        self.queued(self.writes.submit(WriteOp::Cancel {
            grant_id: grant_id.to_string(),
            now,
        }))
        .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(async {
            sqlx::query("SELECT 1")
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn close(&self) {
        // Bounded: a connection stuck on a dead network (packets dropped, nothing closed) would
        // otherwise keep `close` waiting for ever; past the bound its socket is simply dropped.
        let [gnap_writer, oauth_writer] = &self.writer_pools;
        let closed =
            async { tokio::join!(self.pool.close(), gnap_writer.close(), oauth_writer.close()) };
        if tokio::time::timeout(Duration::from_secs(5), closed)
            .await
            .is_err()
        {
            tracing::warn!("closing the PostgreSQL pools timed out; dropping their connections");
        }
    }

    async fn purge_expired(&self, before: Millis, limit: u32) -> Result<PurgeOutcome, StoreError> {
        self.bounded(async {
            // Two transactions, tokens then grants, so the janitor never holds a token row lock
            // while it waits for a grant row lock: every other writer takes the grant first, and
            // holding them the other way round could deadlock with a rotation.
            let Some(tokens) = self.purge_step(purge::TOKENS, before, limit).await? else {
                return Ok(PurgeOutcome {
                    skipped: true,
                    ..PurgeOutcome::default()
                });
            };
            let Some(grants) = self.purge_step(purge::GRANTS, before, limit).await? else {
                return Ok(PurgeOutcome {
                    tokens,
                    grants: 0,
                    skipped: true,
                });
            };
            Ok(PurgeOutcome {
                tokens,
                grants,
                skipped: false,
            })
        })
        .await
    }

    async fn create_interactive_grant(
        &self,
        grant: &Grant,
        interaction: &Interaction,
    ) -> Result<(), StoreError> {
        self.bounded(async {
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            insert_grant(&mut tx, grant).await?;
            sqlx::query(
                "INSERT INTO interactions (id, nonce, grant_id, finish_uri, client_nonce, \
                 interact_ref, session_hash, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&interaction.id)
            .bind(&interaction.nonce)
            .bind(&interaction.grant_id)
            .bind(&interaction.finish_uri)
            .bind(&interaction.client_nonce)
            .bind(&interaction.interact_ref)
            .bind(interaction.session_hash.map(|h| h.0.to_vec()))
            .bind(interaction.created_at)
            .bind(interaction.expires_at)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
            tx.commit().await.map_err(db_error)
        })
        .await
    }

    async fn interaction_by_id(
        &self,
        id: &str,
    ) -> Result<Option<(Interaction, Grant)>, StoreError> {
        self.bounded(async {
            let sql = format!(
                "SELECT {INTERACTION_COLUMNS}, {GRANT_COLUMNS} FROM interactions i \
                 JOIN grants g ON g.id = i.grant_id WHERE i.id = $1"
            );
            let row = sqlx::query(&sql)
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
            row.as_ref()
                .map(|r| Ok((interaction_from_row(r)?, grant_from_row(r)?)))
                .transpose()
        })
        .await
    }

    async fn interaction_by_grant(
        &self,
        grant_id: &str,
    ) -> Result<Option<Interaction>, StoreError> {
        self.bounded(async {
            let sql =
                format!("SELECT {INTERACTION_COLUMNS} FROM interactions i WHERE i.grant_id = $1");
            let row = sqlx::query(&sql)
                .bind(grant_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
            row.as_ref().map(interaction_from_row).transpose()
        })
        .await
    }

    async fn bind_interaction_session(
        &self,
        interaction_id: &str,
        session: &TokenHash,
    ) -> Result<bool, StoreError> {
        self.bounded(async {
            let changed = sqlx::query(
                "UPDATE interactions SET session_hash = $2 WHERE id = $1 AND session_hash IS NULL",
            )
            .bind(interaction_id)
            .bind(session.as_bytes())
            .execute(&self.pool)
            .await
            .map_err(db_error)?
            .rows_affected();
            Ok(changed == 1)
        })
        .await
    }

    async fn decide_grant(
        &self,
        grant_id: &str,
        approve: bool,
        now: Millis,
    ) -> Result<bool, StoreError> {
        self.bounded(async {
            // A conditional update: racing a cancel or another decision, the loser re-checks
            // `state = 'pending'` on the winner's version of the row (fact 2) and changes nothing.
            let (state, finalized_at) = if approve {
                ("approved", None)
            } else {
                ("rejected", Some(now))
            };
            let changed = sqlx::query(
                "UPDATE grants SET state = $2, finalized_at = $3 \
                 WHERE id = $1 AND state = 'pending'",
            )
            .bind(grant_id)
            .bind(state)
            .bind(finalized_at)
            .execute(&self.pool)
            .await
            .map_err(db_error)?
            .rows_affected();
            Ok(changed == 1)
        })
        .await
    }

    async fn set_interact_ref(
        &self,
        interaction_id: &str,
        interact_ref: &str,
    ) -> Result<String, StoreError> {
        self.bounded(async {
            // First writer wins. A concurrent loser's update waits for the winner, re-checks
            // `interact_ref IS NULL`, matches nothing; its next statement has a fresh snapshot
            // (fact 1) and reads the winner's reference.
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            let set: Option<String> = sqlx::query_scalar(
                "UPDATE interactions SET interact_ref = $2 WHERE id = $1 AND interact_ref IS NULL \
                 RETURNING interact_ref",
            )
            .bind(interaction_id)
            .bind(interact_ref)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
            let current = match set {
                Some(current) => Some(current),
                None => sqlx::query_scalar("SELECT interact_ref FROM interactions WHERE id = $1")
                    .bind(interaction_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?
                    .flatten(),
            };
            tx.commit().await.map_err(db_error)?;
            current.ok_or_else(|| StoreError::Corrupt("interaction vanished".into()))
        })
        .await
    }

    async fn issue_approved_grant(
        &self,
        grant_id: &str,
        token: &AccessTokenRecord,
        now: Millis,
    ) -> Result<bool, StoreError> {
        self.bounded(async {
            // The conditional update takes the grant row lock before the token exists, exactly like
            // a rotation: a cancel either came first (state is no longer 'approved': nothing
            // issued) or waits for our commit and then sweeps the new token too.
            let mut tx = self.pool.begin().await.map_err(db_error)?;
            let changed = sqlx::query(
                "UPDATE grants SET state = 'issued', finalized_at = $2 \
                 WHERE id = $1 AND state = 'approved'",
            )
            .bind(grant_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
            if changed != 1 {
                tx.rollback().await.map_err(db_error)?;
                return Ok(false);
            }
            insert_token(&mut tx, token).await?;
            tx.commit().await.map_err(db_error)?;
            Ok(true)
        })
        .await
    }

    async fn touch_continuation(
        &self,
        grant_id: &str,
        now: Millis,
        wait_ms: Millis,
    ) -> Result<bool, StoreError> {
        self.bounded(async {
            // Two nodes polled at once: the second re-checks the condition against the first's
            // `last_continued_at` (fact 2) and reports "too fast".
            let changed = sqlx::query(
                "UPDATE grants SET last_continued_at = $2 WHERE id = $1 \
                 AND (last_continued_at IS NULL OR last_continued_at <= $2 - $3)",
            )
            .bind(grant_id)
            .bind(now)
            .bind(wait_ms)
            .execute(&self.pool)
            .await
            .map_err(db_error)?
            .rows_affected();
            Ok(changed == 1)
        })
        .await
    }
}
