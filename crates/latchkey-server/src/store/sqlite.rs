//! SQLite store: WAL journal, `synchronous=FULL` (an acknowledged write survives `kill -9` and
//! power loss). The hot-path reads (a token, a grant by continue id, an OAuth client or token)
//! run on the calling thread (`store::sqlite_read`); the OAuth client listing and the health
//! check use a small sqlx reader pool. The hot-path writes (GNAP grant, rotate, revoke, cancel;
//! OAuth token insert and revocation) share commits on the writer thread
//! (`store::sqlite_writer`); the rare others (interactions, OAuth client administration,
//! purges) go through one sqlx writer connection, whose transactions take the write lock when
//! they begin (`IMMEDIATE`).

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use super::group::WriteOp;
use super::schema::run_migrations;
use super::sqlite_checkpoint::{self, WalRestart, WRITER_AUTOCHECKPOINT_PAGES};
use super::sqlite_read::InlineReads;
use super::sqlite_rows::ColumnRead;
use super::sqlite_writer::SqliteWriter;
use super::{
    client_from_columns, hash_from, purge, state_from_column, stored_access, GrantColumns,
    MigrationReport, PurgeOutcome, RotateOutcome, Store, StoreError, INTROSPECTION_GRANT_COLUMNS,
};
use crate::domain::clock::Millis;
use crate::domain::grant::{ClientKeySource, Grant};
use crate::domain::interaction::Interaction;
use crate::domain::introspection::IntrospectionRecord;
use crate::domain::token::AccessTokenRecord;
use crate::token_format::TokenHash;

/// The embedded store.
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// Background WAL checkpoints ([`super::sqlite_checkpoint`]).
    checkpointer: SqlitePool,
    /// Held by every handle of this store; the checkpoint task stops once none is left.
    _alive: Arc<()>,
    /// The writer thread: group commit of the hot-path writes.
    writes: SqliteWriter,
    /// The hot-path reads, on the calling thread ([`super::sqlite_read`]).
    reads: Arc<InlineReads>,
}

/// A token and the grant it belongs to, read together by the hot-path lookups.
type TokenAndGrant = (AccessTokenRecord, Grant);

/// The token lookups: by the hash of its value (introspection) and by its manage id (rotation
/// and revocation read the token their URL names before writing).
struct TokenSql {
    by_hash: String,
    by_manage_id: String,
}

static TOKEN_SQL: std::sync::LazyLock<TokenSql> = std::sync::LazyLock::new(|| {
    let select = format!(
        "SELECT {TOKEN_COLUMNS}, {GRANT_COLUMNS} FROM access_tokens t \
         JOIN grants g ON g.id = t.grant_id WHERE"
    );
    TokenSql {
        by_hash: format!("{select} t.hash = ?1"),
        by_manage_id: format!("{select} t.manage_id = ?1"),
    }
});

/// Introspection's lookup: the token by hash with the grant columns its answer needs.
static INTROSPECTION_BY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {TOKEN_COLUMNS}, {INTROSPECTION_GRANT_COLUMNS} FROM access_tokens t \
         JOIN grants g ON g.id = t.grant_id WHERE t.hash = ?1"
    )
});

static GRANT_BY_CONTINUE_ID: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("SELECT {GRANT_COLUMNS} FROM grants g WHERE g.continue_id = ?1")
});

fn token_and_grant(row: &impl ColumnRead) -> Result<TokenAndGrant, StoreError> {
    Ok((token_from_row(row)?, grant_from_row(row)?))
}

/// A row of [`INTROSPECTION_BY_HASH`].
fn introspection_from_row(row: &impl ColumnRead) -> Result<IntrospectionRecord, StoreError> {
    let state: String = row.column("g_state")?;
    Ok(IntrospectionRecord {
        token: token_from_row(row)?,
        grant_id: row.column("g_id")?,
        grant_state: state_from_column(&state)?,
        client: client_from_row(row)?,
        access_json: stored_access(row.column("g_access")?)?,
    })
}

impl SqliteStore {
    /// The writer thread, for the hot-path writes.
    pub(super) fn writes(&self) -> &SqliteWriter {
        &self.writes
    }

    /// The sqlx writer connection, for the writes that are not on the hot path (for sibling
    /// store traits, e.g. `store::oauth`); its transactions begin with [`IMMEDIATE`].
    pub(crate) fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// The hot-path reads on the calling thread (for sibling store traits, e.g. `store::oauth`).
    pub(super) fn reads(&self) -> &InlineReads {
        &self.reads
    }

    /// The reader pool, for the reads that are not on the hot path (for sibling store traits).
    pub(crate) fn reader(&self) -> &SqlitePool {
        &self.reader
    }
}

pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database at `url`. An in-memory database
    /// (`sqlite::memory:`) is refused: the writer thread, the sqlx writer and the readers are
    /// separate connections, and each would see an empty database of its own.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Ok(Self::open_reporting(url).await?.0)
    }

    /// Opens and migrates the database at `url`, reporting what the migration did. A database
    /// holding a migration this binary does not know (a newer Latchkey's) is refused.
    pub async fn open_reporting(url: &str) -> Result<(Self, MigrationReport), StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Open(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Another process (the `oauth-client` admin CLI beside a running server) may hold the
            // write lock; on a loaded machine a 5 s wait proved too short, so wait longer before
            // answering "database is locked".
            .busy_timeout(Duration::from_secs(30))
            // Statement journals (a multi-row statement inside the group transaction keeps one, to
            // undo itself alone on a constraint failure) stay in memory instead of spilling to a
            // temporary file that is created, written and closed per statement (issue 7: 12 % of
            // the writer's time in a grant profile). They hold one statement's pages at most.
            .pragma("temp_store", "memory");
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Err(StoreError::Open(
                "an in-memory SQLite database is not supported: the store writes and reads \
                 through separate connections, each of which would see a database of its own; \
                 use a file (sqlite:///path/to/latchkey.db)"
                    .into(),
            ));
        }
        // `test_before_acquire(false)`: sqlx would otherwise ping every connection each time it
        // leaves the pool, one more round trip to the connection's worker thread per query, and
        // a local file cannot hang up like a network peer (issue 7: +7 % on introspection).
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone().pragma(
                "wal_autocheckpoint",
                WRITER_AUTOCHECKPOINT_PAGES.to_string(),
            ))
            .await
            .map_err(|e| StoreError::Open(e.to_string()))?;
        let report = {
            let mut conn = writer
                .acquire()
                .await
                .map_err(|e| StoreError::Open(e.to_string()))?;
            run_migrations(&MIGRATOR, &mut *conn, "sqlite").await?
        };
        // The reads that are not on the hot path (the OAuth client listing, the health check).
        let reader = SqlitePoolOptions::new()
            .max_connections(2)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone().read_only(true))
            .await
            .map_err(|e| StoreError::Open(e.to_string()))?;
        let alive = Arc::new(());
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(|e| StoreError::Open(e.to_string()))?;
        let restart = WalRestart::default();
        sqlite_checkpoint::start(
            checkpointer.clone(),
            options.get_filename(),
            Arc::downgrade(&alive),
            restart.clone(),
        );
        let writes =
            SqliteWriter::start(options.get_filename(), WRITER_AUTOCHECKPOINT_PAGES, restart)?;
        let reads = Arc::new(InlineReads::open(options.get_filename())?);
        Ok((
            SqliteStore {
                writer,
                reader,
                checkpointer,
                _alive: alive,
                writes,
                reads,
            },
            report,
        ))
    }
}

/// How every transaction on the sqlx writer connection begins: taking the write lock at once,
/// because the writer thread ([`SqliteWriter`]) writes to the same database from a connection
/// of its own. A deferred transaction that read first could fail to upgrade its lock
/// (`SQLITE_BUSY_SNAPSHOT`) instead of waiting for the other writer.
pub(super) const IMMEDIATE: &str = "BEGIN IMMEDIATE";

pub(super) fn db_error(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_string())
        }
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

fn client_from_row(row: &impl ColumnRead) -> Result<ClientKeySource, StoreError> {
    let kind: String = row.column("g_client_kind")?;
    client_from_columns(&kind, row.column("g_client_value")?)
}

fn grant_from_row(row: &impl ColumnRead) -> Result<Grant, StoreError> {
    let access: String = row.column("g_access")?;
    let state: String = row.column("g_state")?;
    let wait_secs: i64 = row.column("g_wait_secs")?;
    Ok(Grant {
        id: row.column("g_id")?,
        continue_id: row.column("g_continue_id")?,
        continue_token_hash: hash_from(row.column("g_continue_token_hash")?)?,
        client: client_from_row(row)?,
        access: serde_json::from_str(&access).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        state: state_from_column(&state)?,
        wait_secs: u64::try_from(wait_secs).unwrap_or(0),
        created_at: row.column("g_created_at")?,
        last_continued_at: row.column("g_last_continued_at")?,
    })
}

fn token_from_row(row: &impl ColumnRead) -> Result<AccessTokenRecord, StoreError> {
    Ok(AccessTokenRecord {
        manage_id: row.column("t_manage_id")?,
        grant_id: row.column("t_grant_id")?,
        hash: hash_from(row.column("t_hash")?)?,
        created_at: row.column("t_created_at")?,
        expires_at: row.column("t_expires_at")?,
        revoked_at: row.column("t_revoked_at")?,
    })
}

const INTERACTION_COLUMNS: &str = "i.id AS i_id, i.nonce AS i_nonce, i.grant_id AS i_grant_id, \
    i.finish_uri AS i_finish_uri, i.client_nonce AS i_client_nonce, \
    i.interact_ref AS i_interact_ref, i.session_hash AS i_session_hash, \
    i.created_at AS i_created_at, i.expires_at AS i_expires_at";

fn interaction_from_row(row: &impl ColumnRead) -> Result<Interaction, StoreError> {
    let session: Option<Vec<u8>> = row.column("i_session_hash")?;
    Ok(Interaction {
        id: row.column("i_id")?,
        nonce: row.column("i_nonce")?,
        grant_id: row.column("i_grant_id")?,
        finish_uri: row.column("i_finish_uri")?,
        client_nonce: row.column("i_client_nonce")?,
        interact_ref: row.column("i_interact_ref")?,
        session_hash: session.map(hash_from).transpose()?,
        created_at: row.column("i_created_at")?,
        expires_at: row.column("i_expires_at")?,
    })
}

async fn insert_grant<'c, E>(executor: E, grant: &Grant) -> Result<(), StoreError>
where
    E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
{
    let columns = GrantColumns::of(grant)?;
    sqlx::query(
        "INSERT INTO grants (id, continue_id, continue_token_hash, client_kind, client_value, \
         access, state, wait_secs, created_at, last_continued_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
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
    .execute(executor)
    .await
    .map_err(db_error)?;
    Ok(())
}

async fn insert_token<'c, E>(executor: E, token: &AccessTokenRecord) -> Result<(), StoreError>
where
    E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
{
    sqlx::query(
        "INSERT INTO access_tokens (manage_id, grant_id, hash, created_at, expires_at, revoked_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .bind(&token.manage_id)
    .bind(&token.grant_id)
    .bind(token.hash.as_bytes())
    .bind(token.created_at)
    .bind(token.expires_at)
    .bind(token.revoked_at)
    .execute(executor)
    .await
    .map_err(db_error)?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_grant(
        &self,
        grant: &Grant,
        token: Option<&AccessTokenRecord>,
    ) -> Result<(), StoreError> {
        self.writes
            .gnap(WriteOp::CreateGrant {
                grant: Box::new(grant.clone()),
                token: token.cloned(),
            })
            .await?;
        Ok(())
    }

    async fn grant_by_continue_id(&self, continue_id: &str) -> Result<Option<Grant>, StoreError> {
        self.reads.one(&GRANT_BY_CONTINUE_ID, continue_id, |row| {
            grant_from_row(row)
        })
    }

    async fn token_by_manage_id(
        &self,
        manage_id: &str,
    ) -> Result<Option<(AccessTokenRecord, Grant)>, StoreError> {
        self.reads.one(&TOKEN_SQL.by_manage_id, manage_id, |row| {
            token_and_grant(row)
        })
    }

    async fn token_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<(AccessTokenRecord, Grant)>, StoreError> {
        self.reads.one(&TOKEN_SQL.by_hash, hash.as_bytes(), |row| {
            token_and_grant(row)
        })
    }

    async fn introspection_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<IntrospectionRecord>, StoreError> {
        self.reads
            .one(&INTROSPECTION_BY_HASH, hash.as_bytes(), |row| {
                introspection_from_row(row)
            })
    }

    async fn revoke_token(&self, manage_id: &str, now: Millis) -> Result<(), StoreError> {
        self.writes
            .gnap(WriteOp::Revoke {
                manage_id: manage_id.to_string(),
                now,
            })
            .await?;
        Ok(())
    }

    async fn rotate_token(
        &self,
        old_manage_id: &str,
        successor: &AccessTokenRecord,
        now: Millis,
    ) -> Result<RotateOutcome, StoreError> {
        let done = self
            .writes
            .gnap(WriteOp::Rotate {
                old_manage_id: old_manage_id.to_string(),
                successor: successor.clone(),
                now,
            })
            .await?;
        done.rotated()
    }

    async fn cancel_grant(&self, grant_id: &str, now: Millis) -> Result<(), StoreError> {
        self.writes
            .gnap(WriteOp::Cancel {
                grant_id: grant_id.to_string(),
                now,
            })
            .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn close(&self) {
        self.checkpointer.close().await;
        self.writes.close().await;
        self.reads.close();
        self.writer.close().await;
        self.reader.close().await;
    }

    async fn purge_expired(&self, before: Millis, limit: u32) -> Result<PurgeOutcome, StoreError> {
        // One writer connection: no other node, no lock needed.
        let mut tx = self.writer.begin_with(IMMEDIATE).await.map_err(db_error)?;
        let tokens = sqlx::query(purge::TOKENS)
            .bind(before)
            .bind(i64::from(limit))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        let grants = sqlx::query(purge::GRANTS)
            .bind(before)
            .bind(i64::from(limit))
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        tx.commit().await.map_err(db_error)?;
        Ok(PurgeOutcome {
            tokens,
            grants,
            skipped: false,
        })
    }

    async fn create_interactive_grant(
        &self,
        grant: &Grant,
        interaction: &Interaction,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin_with(IMMEDIATE).await.map_err(db_error)?;
        insert_grant(&mut *tx, grant).await?;
        sqlx::query(
            "INSERT INTO interactions (id, nonce, grant_id, finish_uri, client_nonce, \
             interact_ref, session_hash, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
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
    }

    async fn interaction_by_id(
        &self,
        id: &str,
    ) -> Result<Option<(Interaction, Grant)>, StoreError> {
        let sql = format!(
            "SELECT {INTERACTION_COLUMNS}, {GRANT_COLUMNS} FROM interactions i \
             JOIN grants g ON g.id = i.grant_id WHERE i.id = ?1"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.writer)
            .await
            .map_err(db_error)?;
        row.as_ref()
            .map(|r| Ok((interaction_from_row(r)?, grant_from_row(r)?)))
            .transpose()
    }

    async fn interaction_by_grant(
        &self,
        grant_id: &str,
    ) -> Result<Option<Interaction>, StoreError> {
        let sql = format!("SELECT {INTERACTION_COLUMNS} FROM interactions i WHERE i.grant_id = ?1");
        let row = sqlx::query(&sql)
            .bind(grant_id)
            .fetch_optional(&self.writer)
            .await
            .map_err(db_error)?;
        row.as_ref().map(interaction_from_row).transpose()
    }

    async fn bind_interaction_session(
        &self,
        interaction_id: &str,
        session: &TokenHash,
    ) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE interactions SET session_hash = ?2 WHERE id = ?1 AND session_hash IS NULL",
        )
        .bind(interaction_id)
        .bind(session.as_bytes())
        .execute(&self.writer)
        .await
        .map_err(db_error)?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn decide_grant(
        &self,
        grant_id: &str,
        approve: bool,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let (state, finalized_at) = if approve {
            ("approved", None)
        } else {
            ("rejected", Some(now))
        };
        let changed = sqlx::query(
            "UPDATE grants SET state = ?2, finalized_at = ?3 WHERE id = ?1 AND state = 'pending'",
        )
        .bind(grant_id)
        .bind(state)
        .bind(finalized_at)
        .execute(&self.writer)
        .await
        .map_err(db_error)?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn set_interact_ref(
        &self,
        interaction_id: &str,
        interact_ref: &str,
    ) -> Result<String, StoreError> {
        let mut tx = self.writer.begin_with(IMMEDIATE).await.map_err(db_error)?;
        sqlx::query(
            "UPDATE interactions SET interact_ref = ?2 WHERE id = ?1 AND interact_ref IS NULL",
        )
        .bind(interaction_id)
        .bind(interact_ref)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let current: Option<String> =
            sqlx::query_scalar("SELECT interact_ref FROM interactions WHERE id = ?1")
                .bind(interaction_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?
                .flatten();
        tx.commit().await.map_err(db_error)?;
        current.ok_or_else(|| StoreError::Corrupt("interaction vanished".into()))
    }

    async fn issue_approved_grant(
        &self,
        grant_id: &str,
        token: &AccessTokenRecord,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin_with(IMMEDIATE).await.map_err(db_error)?;
        let changed = sqlx::query(
            "UPDATE grants SET state = 'issued', finalized_at = ?2 \
             WHERE id = ?1 AND state = 'approved'",
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
        insert_token(&mut *tx, token).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn touch_continuation(
        &self,
        grant_id: &str,
        now: Millis,
        wait_ms: Millis,
    ) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE grants SET last_continued_at = ?2 WHERE id = ?1 \
             AND (last_continued_at IS NULL OR last_continued_at <= ?2 - ?3)",
        )
        .bind(grant_id)
        .bind(now)
        .bind(wait_ms)
        .execute(&self.writer)
        .await
        .map_err(db_error)?
        .rows_affected();
        Ok(changed == 1)
    }
}
