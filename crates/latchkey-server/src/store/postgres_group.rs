//! Group commit of the GNAP writes on PostgreSQL (grant creation, rotation, revocation, cancel),
//! per node. The general rules are in [`super::group`]; this is how they hold on PostgreSQL,
//! between *several nodes* writing the same database (READ COMMITTED; facts 1 and 2 are those
//! of the module doc of [`super::postgres`]).
//!
//! A group is one transaction:
//!
//! 1. `BEGIN`.
//! 2. **One** statement locks every grant row the group's rotations and cancels touch, in grant
//!    id order: `SELECT id FROM grants WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE` (the
//!    lock is taken after the sort, so rows are locked in id order). Two groups (of this node or
//!    another) that need common grants take them in the same order, so they cannot deadlock on
//!    grant rows; and a group takes no token lock before it holds all its grant locks.
//! 3. One statement per run of same-kind writes ([`super::group::runs`]), in arrival order,
//!    over arrays of rows (`unnest`). Every run statement starts after the lock statement, so
//!    its snapshot (fact 1) holds everything committed before we held the grant locks, plus the
//!    group's own earlier runs. Rotations and cancels call a PL/pgSQL function (migration
//!    `0006_one_round_trip_groups`) that takes its grant locks again (held already: no wait)
//!    and then runs the run's statement as a second statement of its own.
//! 4. `COMMIT`; only then is any caller answered.
//!
//! Why each single-write rule still holds:
//!
//! - *Cancel racing rotate leaves no live token.* Rotation and cancel still lock the grant row
//!   before touching any token of it (step 2 for both). If the other node's cancel committed
//!   first, our rotate statement sees the grant revoked and answers NotLive; if it waits for
//!   our grant lock, its token sweep runs after our commit with a fresh snapshot and revokes
//!   our successors. Inside a group, a cancel earlier than a rotation of its grant is an
//!   earlier statement (its change is visible); a later one's sweep sees the successor.
//! - *Of N concurrent rotations of one token exactly one succeeds.* The kill is still the
//!   conditional `revoked_at IS NULL` update (fact 2), and they queue on the grant lock anyway.
//!   Within a run each old token is sent once ([`super::group::first_of_each`]); a rotation of
//!   a successor made earlier in the run starts a new run, so it sees the successor.
//! - *A successor belongs to its predecessor's grant.* The group locks the successor's grant;
//!   the rotate statement only kills a token of that grant and reports any old token of another
//!   grant, which fails the group: replayed alone, that rotation gets its `Conflict`. A run sent
//!   alone has no transaction to roll back, so the statement kills and inserts nothing when it
//!   finds such a token (the `stray` part of `latchkey_rotate_tokens`), and only reports it.
//! - *Deadlocks.* Grant rows: none (step 2). Token rows: a revoke run locks tokens without their
//!   grant, and two groups' multi-row statements could meet on two tokens in opposite orders.
//!   Rows are sent sorted to make that unlikely; if it happens PostgreSQL aborts one of the two
//!   (SQLSTATE 40P01), that group is rolled back and each of its writes replayed alone, like
//!   any failed group.
//! - *Failures.* Any failed statement: rollback, then each write replayed alone with the
//!   single-write path (`PgGroupWriter::alone`). A group whose rollback or commit fails, or whose
//!   connection is lost, fails every caller with [`StoreError::Unavailable`]: nothing is
//!   acknowledged that was not committed. A group (and each replay) is bounded by the
//!   operation timeout, so a dead network fails the group instead of stalling the queue.
//!
//! Every run statement that joins an array of rows to a table also says `column = ANY($1)` on
//! the indexed column it joins on. That changes nothing in what is matched, but lets the
//! planner reach the rows through the index whatever its statistics say: with the join alone,
//! the prepared cancel statement ran as a hash join over a sequential scan of `access_tokens`
//! once the table had grown past its last `ANALYZE` (263 cancels/s at 16 clients on a
//! 100,000-token table, p50 60 ms).
//!
//! A group of one run is a single statement and needs no transaction block (a statement is
//! atomic and commits on its own): one round trip instead of four (`BEGIN`, lock, run,
//! `COMMIT`), in a queue that commits one group at a time. Grant creations and revocations
//! need no lock step; the functions of rotations and cancels run step 2 and then step 3 as two
//! statements, so the snapshot rule above holds unchanged. PostgreSQL, "Transaction
//! Isolation": "Within a procedure or VOLATILE function written in SQL or any of the standard
//! procedural languages, each command starts with a new snapshot".

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Acquire, Connection, Row};

use super::group::{
    first_targets_and_times, first_writes_sorted, mixed_run, rotation_outcomes, runs, Failure,
    GroupWriter, WriteDone, WriteOp,
};
use super::postgres::{db_error, within};
use super::{GrantColumns, StoreError};
use crate::domain::clock::Millis;

/// The PostgreSQL side of the GNAP group commit.
pub(super) struct PgGroupWriter {
    pub(super) pool: PgPool,
    /// Bound of a whole group, and of each replay.
    pub(super) operation_timeout: Duration,
}

#[async_trait]
impl GroupWriter for PgGroupWriter {
    type Op = WriteOp;
    type Done = WriteDone;

    async fn together(&self, ops: &[WriteOp]) -> Result<Vec<WriteDone>, Failure> {
        let started = std::time::Instant::now();
        let done = within_group(self.operation_timeout, together(&self.pool, ops)).await;
        tracing::trace!(
            writes = ops.len(),
            micros = started.elapsed().as_micros() as u64,
            committed = done.is_ok(),
            "GNAP group"
        );
        done
    }

    /// A write of its own is a run of one, sent alone: one statement, one round trip (a
    /// rotation or cancel calls its function, which takes the grant lock first).
    async fn alone(&self, op: &WriteOp) -> Result<WriteDone, StoreError> {
        within(self.operation_timeout, async {
            let mut conn = self.pool.acquire().await.map_err(db_error)?;
            let mut done = apply_run(&mut conn, std::slice::from_ref(op)).await?;
            done.pop().ok_or_else(|| {
                StoreError::Corrupt("the writer answered a write with no outcome".into())
            })
        })
        .await
    }
}

/// A connection or transaction failure: the whole group fails.
pub(super) fn unavailable(e: sqlx::Error) -> Failure {
    Failure::Commit(db_error(e))
}

/// Runs a group's work for at most `limit`; past it, the whole group fails.
pub(super) async fn within_group<T>(
    limit: Duration,
    work: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    within(limit, async { Ok(work.await) })
        .await
        .unwrap_or_else(|e| Err(Failure::Commit(e)))
}

/// After a group statement failed with `e`: each write is replayed alone, unless the
/// connection no longer answers (a lost connection fails the whole group).
pub(super) async fn replay_unless_lost(
    conn: &mut PgConnection,
    e: StoreError,
    writes: usize,
) -> Failure {
    if let Err(lost) = conn.ping().await {
        return unavailable(lost);
    }
    tracing::debug!(error = %e, writes, "group statement failed; replaying each write alone");
    Failure::Write
}

/// Ends a group's transaction: commits what `applied` holds, or rolls back and has each write
/// replayed alone.
pub(super) async fn settle<T>(
    tx: sqlx::Transaction<'_, sqlx::Postgres>,
    applied: Result<T, StoreError>,
    writes: usize,
) -> Result<T, Failure> {
    match applied {
        Ok(done) => {
            tx.commit().await.map_err(unavailable)?;
            Ok(done)
        }
        Err(e) => {
            tx.rollback().await.map_err(unavailable)?;
            tracing::debug!(error = %e, writes, "group failed; replaying each write alone");
            Err(Failure::Write)
        }
    }
}

async fn together(pool: &PgPool, ops: &[WriteOp]) -> Result<Vec<WriteDone>, Failure> {
    let mut conn = pool.acquire().await.map_err(unavailable)?;
    let all: Vec<_> = runs(ops).collect();
    if let [run] = all.as_slice() {
        return match apply_run(&mut conn, &ops[run.clone()]).await {
            Ok(done) => Ok(done),
            Err(e) => Err(replay_unless_lost(&mut conn, e, ops.len()).await),
        };
    }
    let mut tx = conn.begin().await.map_err(unavailable)?;
    let applied = async {
        lock_grants(&mut tx, ops).await?;
        let mut results = Vec::with_capacity(ops.len());
        for run in all {
            results.extend(apply_run(&mut tx, &ops[run]).await?);
        }
        Ok::<_, StoreError>(results)
    }
    .await;
    settle(tx, applied, ops.len()).await
}

/// Step 2 of the module doc: every grant row the group's rotations and cancels touch, locked
/// in id order by one statement.
async fn lock_grants(conn: &mut PgConnection, ops: &[WriteOp]) -> Result<(), StoreError> {
    let mut ids: Vec<&str> = ops
        .iter()
        .filter_map(|op| match op {
            WriteOp::Rotate { successor, .. } => Some(successor.grant_id.as_str()),
            WriteOp::Cancel { grant_id, .. } => Some(grant_id.as_str()),
            WriteOp::CreateGrant { .. } | WriteOp::Revoke { .. } => None,
        })
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    ids.sort_unstable();
    ids.dedup();
    sqlx::query("SELECT id FROM grants WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
        .bind(ids)
        .execute(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Applies a run of same-kind writes as one statement; one result per write, in order.
async fn apply_run(conn: &mut PgConnection, run: &[WriteOp]) -> Result<Vec<WriteDone>, StoreError> {
    match &run[0] {
        WriteOp::CreateGrant { .. } => create_grants(conn, run).await,
        WriteOp::Revoke { .. } => revoke_tokens(conn, run).await,
        WriteOp::Rotate { .. } => rotate_tokens(conn, run).await,
        WriteOp::Cancel { .. } => cancel_grants(conn, run).await,
    }
}

/// Runs `sql` for a run of revocations (or of cancels), with the first write of each row,
/// sorted, as two arrays: `$1` the row keys (manage ids, grant ids), `$2` the writes' times.
async fn update_first_rows(
    conn: &mut PgConnection,
    run: &[WriteOp],
    sql: &'static str,
) -> Result<Vec<WriteDone>, StoreError> {
    let (ids, nows): (Vec<&str>, Vec<Millis>) = first_targets_and_times(run)?.into_iter().unzip();
    sqlx::query(sql)
        .bind(ids)
        .bind(nows)
        .execute(conn)
        .await
        .map_err(db_error)?;
    Ok(vec![WriteDone::Done; run.len()])
}

async fn create_grants(
    conn: &mut PgConnection,
    run: &[WriteOp],
) -> Result<Vec<WriteDone>, StoreError> {
    let n = run.len();
    let (mut ids, mut continue_ids, mut continue_hashes) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut kinds, mut values, mut accesses, mut states) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut waits, mut created, mut continued) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut tokens = Tokens::with_capacity(n);
    for op in run {
        let WriteOp::CreateGrant { grant, token } = op else {
            return Err(mixed_run());
        };
        let columns = GrantColumns::of(grant)?;
        ids.push(grant.id.as_str());
        continue_ids.push(grant.continue_id.as_str());
        continue_hashes.push(grant.continue_token_hash.as_bytes());
        kinds.push(columns.client_kind);
        values.push(columns.client_value);
        accesses.push(columns.access);
        states.push(grant.state.as_str());
        waits.push(columns.wait_secs);
        created.push(grant.created_at);
        continued.push(grant.last_continued_at);
        if let Some(token) = token {
            tokens.push(token);
        }
    }
    // One statement: the grants in a data-modifying CTE, the tokens in the main insert. Their
    // foreign-key checks run at the end of the statement, when the grants are there.
    let query = sqlx::query(
        "WITH g AS (INSERT INTO grants (id, continue_id, continue_token_hash, client_kind, \
         client_value, access, state, wait_secs, created_at, last_continued_at) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[], $5::text[], \
         $6::text[], $7::text[], $8::int8[], $9::int8[], $10::int8[])) \
         INSERT INTO access_tokens (manage_id, grant_id, hash, created_at, expires_at, revoked_at) \
         SELECT * FROM unnest($11::text[], $12::text[], $13::bytea[], $14::int8[], $15::int8[], \
         $16::int8[])",
    )
    .bind(ids)
    .bind(continue_ids)
    .bind(continue_hashes)
    .bind(kinds)
    .bind(values)
    .bind(accesses)
    .bind(states)
    .bind(waits)
    .bind(created)
    .bind(continued);
    tokens
        .bind_to(query)
        .execute(conn)
        .await
        .map_err(db_error)?;
    Ok(vec![WriteDone::Done; n])
}

/// Columns of access tokens to insert, as arrays (six binds, in table order).
struct Tokens<'a> {
    manage_ids: Vec<&'a str>,
    grant_ids: Vec<&'a str>,
    hashes: Vec<&'a [u8]>,
    created: Vec<i64>,
    expires: Vec<i64>,
    revoked: Vec<Option<i64>>,
}

impl<'a> Tokens<'a> {
    fn with_capacity(n: usize) -> Self {
        Tokens {
            manage_ids: Vec::with_capacity(n),
            grant_ids: Vec::with_capacity(n),
            hashes: Vec::with_capacity(n),
            created: Vec::with_capacity(n),
            expires: Vec::with_capacity(n),
            revoked: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, token: &'a crate::domain::token::AccessTokenRecord) {
        self.manage_ids.push(&token.manage_id);
        self.grant_ids.push(&token.grant_id);
        self.hashes.push(token.hash.as_bytes());
        self.created.push(token.created_at);
        self.expires.push(token.expires_at);
        self.revoked.push(token.revoked_at);
    }

    fn bind_to(
        self,
        query: sqlx::query::Query<'a, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'a, sqlx::Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(self.manage_ids)
            .bind(self.grant_ids)
            .bind(self.hashes)
            .bind(self.created)
            .bind(self.expires)
            .bind(self.revoked)
    }
}

async fn revoke_tokens(
    conn: &mut PgConnection,
    run: &[WriteOp],
) -> Result<Vec<WriteDone>, StoreError> {
    // First revocation of a token wins (it sets `revoked_at`); later ones change nothing.
    // The same conditional update as a revoke of its own, per row.
    update_first_rows(
        conn,
        run,
        "UPDATE access_tokens AS t SET revoked_at = i.now \
         FROM unnest($1::text[], $2::int8[]) AS i(manage_id, now) \
         WHERE t.manage_id = ANY($1) AND t.manage_id = i.manage_id AND t.revoked_at IS NULL",
    )
    .await
}

async fn rotate_tokens(
    conn: &mut PgConnection,
    run: &[WriteOp],
) -> Result<Vec<WriteDone>, StoreError> {
    // Each old token is sent once: a second rotation of it in the run is `NotLive`, as it
    // would be after the first (which either killed it or found it not live).
    let firsts = first_writes_sorted(run);
    let (mut olds, mut nows) = (
        Vec::with_capacity(firsts.len()),
        Vec::with_capacity(firsts.len()),
    );
    let mut successors = Tokens::with_capacity(firsts.len());
    for op in &firsts {
        let WriteOp::Rotate {
            old_manage_id,
            successor,
            now,
        } = op
        else {
            return Err(mixed_run());
        };
        olds.push(old_manage_id.as_str());
        nows.push(*now);
        successors.push(successor);
    }
    // The function (migration 0006) locks the successors' grants (held already inside a
    // group's transaction), then in a second statement: the conditional kill (fact 2, and the
    // grant must not be cancelled: its row is locked, so its state is the newest), the
    // successors of the killed tokens, and the old tokens that belong to another grant than
    // their successor ("stray"). One stray old token and nothing is killed or inserted: sent
    // alone there is no transaction to roll back, and each rotation replayed alone must find
    // its token as it was.
    let query = sqlx::query(
        "SELECT old_manage_id, rotated FROM latchkey_rotate_tokens($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(olds)
    .bind(nows);
    let rows = successors
        .bind_to(query)
        .fetch_all(conn)
        .await
        .map_err(db_error)?;
    let mut killed = std::collections::HashSet::with_capacity(rows.len());
    for row in &rows {
        let old: String = row.try_get(0).map_err(db_error)?;
        let rotated: bool = row.try_get(1).map_err(db_error)?;
        if !rotated {
            return Err(StoreError::Conflict(
                "a successor token must belong to the grant of the token it replaces".into(),
            ));
        }
        killed.insert(old);
    }
    rotation_outcomes(run, &killed)
}

async fn cancel_grants(
    conn: &mut PgConnection,
    run: &[WriteOp],
) -> Result<Vec<WriteDone>, StoreError> {
    // The first cancel of a grant wins; later ones change nothing. The function (migration
    // 0006) locks the grant rows (held already inside a group's transaction), then sweeps in a
    // second statement, whose snapshot holds every token committed before the locks were
    // held, including successors of rotations that held them before us, and the successors
    // of the group's earlier runs.
    update_first_rows(conn, run, "SELECT latchkey_cancel_grants($1, $2)").await
}
