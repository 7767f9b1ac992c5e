//! Group commit of the GNAP writes on SQLite (grant creation, rotation, revocation, cancel).
//!
//! SQLite has one writer, and with `synchronous=FULL` every commit waits for an fsync of the
//! WAL: one write transaction per request caps the server at one request per fsync, whatever
//! the CPU could do. Here every write goes through one queue; a task takes all the writes that
//! arrived while the previous commit was under way (up to [`super::group::MAX_GROUP`]) and applies them in
//! one transaction, so one fsync serves the whole group.
//!
//! Durability is unchanged: each caller is answered only after the commit that holds its write
//! returned. Semantics are unchanged: the writes of a group run one after the other in arrival
//! order inside the transaction, exactly as if each had had its own (a rotation queued behind a
//! cancel of its grant still finds the grant cancelled). If any write of a group fails (a
//! uniqueness conflict, say), the whole group is rolled back and each write is replayed in its
//! own transaction, so one bad write never fails or changes another's outcome.
//!
//! Inside a group, each run of consecutive same-kind writes is sent as one SQL statement (two
//! for grant creation, rotation and cancel) over a JSON array of rows, instead of one or two
//! statements per write: every statement is a hand-off to the writer's thread, the serial
//! resource. Runs keep arrival order, so a write still sees everything queued before it. Within
//! a run of rotations each old token is sent once (a later rotation of the same token in the
//! run reports [`RotateOutcome::NotLive`], as it would after the first), and a rotation of a
//! successor created earlier in the run starts a new run.

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::sqlite::SqlitePool;
use sqlx::{Row, SqliteConnection};

use super::group::{
    first_targets_and_times, first_writes_sorted, mixed_run, rotation_outcomes, runs, Failure,
    GroupWriter, WriteDone, WriteOp,
};
use super::sqlite::{cancel_grant_in, create_grant_in, db_error, revoke_token_in, rotate_token_in};
use super::{GrantColumns, RotateOutcome, StoreError};
use crate::domain::token::AccessTokenRecord;

/// The SQLite side of the GNAP group commit, on the writer connection.
pub(super) struct SqliteGroupWriter(pub(super) SqlitePool);

#[async_trait]
impl GroupWriter for SqliteGroupWriter {
    type Op = WriteOp;
    type Done = WriteDone;

    async fn together(&self, ops: &[WriteOp]) -> Result<Vec<WriteDone>, Failure> {
        together(&self.0, ops).await
    }

    async fn alone(&self, op: &WriteOp) -> Result<WriteDone, StoreError> {
        alone(&self.0, op).await
    }
}

async fn together(writer: &SqlitePool, ops: &[WriteOp]) -> Result<Vec<WriteDone>, Failure> {
    let mut tx = writer
        .begin()
        .await
        .map_err(|e| Failure::Commit(db_error(e)))?;
    let mut results = Vec::with_capacity(ops.len());
    for run in runs(ops) {
        match apply_run(&mut tx, &ops[run]).await {
            Ok(done) => results.extend(done),
            Err(_) => {
                tx.rollback()
                    .await
                    .map_err(|e| Failure::Commit(db_error(e)))?;
                return Err(Failure::Write);
            }
        }
    }
    tx.commit()
        .await
        .map_err(|e| Failure::Commit(db_error(e)))?;
    Ok(results)
}

async fn alone(writer: &SqlitePool, op: &WriteOp) -> Result<WriteDone, StoreError> {
    let mut tx = writer.begin().await.map_err(db_error)?;
    match apply(&mut tx, op).await {
        Ok(done) => {
            tx.commit().await.map_err(db_error)?;
            Ok(done)
        }
        Err(e) => {
            // Dropping the transaction rolls it back as well; say so explicitly.
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

async fn apply(conn: &mut SqliteConnection, op: &WriteOp) -> Result<WriteDone, StoreError> {
    match op {
        WriteOp::CreateGrant { grant, token } => {
            create_grant_in(conn, grant, token.as_ref()).await?;
            Ok(WriteDone::Done)
        }
        WriteOp::Revoke { manage_id, now } => {
            revoke_token_in(conn, manage_id, *now).await?;
            Ok(WriteDone::Done)
        }
        WriteOp::Rotate {
            old_manage_id,
            successor,
            now,
        } => Ok(WriteDone::Rotated(
            rotate_token_in(conn, old_manage_id, successor, *now).await?,
        )),
        WriteOp::Cancel { grant_id, now } => {
            cancel_grant_in(conn, grant_id, *now).await?;
            Ok(WriteDone::Done)
        }
    }
}

/// For a run of revocations (or of cancels): the rows to change, as a JSON array of
/// `[row key, time]` (see [`first_targets_and_times`]).
fn targets_and_times(run: &[WriteOp]) -> Result<String, StoreError> {
    serde_json::to_string(&first_targets_and_times(run)?)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn json_rows(rows: Vec<serde_json::Value>) -> String {
    serde_json::Value::Array(rows).to_string()
}

fn token_row(token: &AccessTokenRecord) -> serde_json::Value {
    serde_json::json!([
        token.manage_id,
        token.grant_id,
        hex::encode(token.hash.as_bytes()),
        token.created_at,
        token.expires_at,
        token.revoked_at,
    ])
}

/// Inserts the tokens of a JSON array made by [`token_row`], in one statement.
async fn insert_tokens(
    conn: &mut SqliteConnection,
    rows: Vec<serde_json::Value>,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO access_tokens (manage_id, grant_id, hash, created_at, expires_at, revoked_at) \
         SELECT j.value ->> 0, j.value ->> 1, unhex(j.value ->> 2), j.value ->> 3, \
         j.value ->> 4, j.value ->> 5 FROM json_each(?1) AS j ORDER BY j.key",
    )
    .bind(json_rows(rows))
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Applies a run of same-kind writes (see [`runs`]); one result per write, in order.
async fn apply_run(
    conn: &mut SqliteConnection,
    run: &[WriteOp],
) -> Result<Vec<WriteDone>, StoreError> {
    if run.len() == 1 {
        return Ok(vec![apply(conn, &run[0]).await?]);
    }
    match &run[0] {
        WriteOp::CreateGrant { .. } => create_grants(conn, run).await,
        WriteOp::Revoke { .. } => revoke_tokens(conn, run).await,
        WriteOp::Rotate { .. } => rotate_tokens(conn, run).await,
        WriteOp::Cancel { .. } => cancel_grants(conn, run).await,
    }
}

async fn create_grants(
    conn: &mut SqliteConnection,
    run: &[WriteOp],
) -> Result<Vec<WriteDone>, StoreError> {
    let mut grants = Vec::with_capacity(run.len());
    let mut tokens = Vec::with_capacity(run.len());
    for op in run {
        let WriteOp::CreateGrant { grant, token } = op else {
            return Err(mixed_run());
        };
        let columns = GrantColumns::of(grant)?;
        grants.push(serde_json::json!([
            grant.id,
            grant.continue_id,
            hex::encode(grant.continue_token_hash.as_bytes()),
            columns.client_kind,
            columns.client_value,
            columns.access,
            grant.state.as_str(),
            columns.wait_secs,
            grant.created_at,
            grant.last_continued_at,
        ]));
        if let Some(token) = token {
            tokens.push(token_row(token));
        }
    }
    sqlx::query(
        "INSERT INTO grants (id, continue_id, continue_token_hash, client_kind, client_value, \
         access, state, wait_secs, created_at, last_continued_at) \
         SELECT j.value ->> 0, j.value ->> 1, unhex(j.value ->> 2), j.value ->> 3, \
         j.value ->> 4, j.value ->> 5, j.value ->> 6, j.value ->> 7, j.value ->> 8, \
         j.value ->> 9 FROM json_each(?1) AS j ORDER BY j.key",
    )
    .bind(json_rows(grants))
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    insert_tokens(conn, tokens).await?;
    Ok(vec![WriteDone::Done; run.len()])
}

async fn revoke_tokens(
    conn: &mut SqliteConnection,
    run: &[WriteOp],
) -> Result<Vec<WriteDone>, StoreError> {
    // First revocation of a token wins (it sets `revoked_at`); later ones change nothing.
    sqlx::query(
        "UPDATE access_tokens SET revoked_at = j.value ->> 1 FROM json_each(?1) AS j \
         WHERE access_tokens.manage_id = j.value ->> 0 AND access_tokens.revoked_at IS NULL",
    )
    .bind(targets_and_times(run)?)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(vec![WriteDone::Done; run.len()])
}

async fn rotate_tokens(
    conn: &mut SqliteConnection,
    run: &[WriteOp],
) -> Result<Vec<WriteDone>, StoreError> {
    // Each old token is sent once: a second rotation of it in the run is `NotLive`, as it
    // would be after the first (which either killed it or found it not live).
    let mut rows = Vec::with_capacity(run.len());
    for op in first_writes_sorted(run) {
        let WriteOp::Rotate {
            old_manage_id,
            successor,
            now,
        } = op
        else {
            return Err(mixed_run());
        };
        rows.push(serde_json::json!([old_manage_id, now, successor.manage_id]));
    }
    // The conditional update is each rotation's lock, as in `rotate_token_in`.
    let killed: HashSet<String> = sqlx::query(
        "UPDATE access_tokens SET revoked_at = j.value ->> 1, rotated_to = j.value ->> 2 \
         FROM json_each(?1) AS j \
         WHERE access_tokens.manage_id = j.value ->> 0 AND access_tokens.revoked_at IS NULL \
         AND EXISTS (SELECT 1 FROM grants g WHERE g.id = access_tokens.grant_id \
                     AND g.state <> 'revoked') \
         RETURNING access_tokens.manage_id",
    )
    .bind(json_rows(rows))
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?
    .into_iter()
    .map(|row| row.try_get::<String, _>(0))
    .collect::<Result<_, _>>()
    .map_err(db_error)?;
    let results = rotation_outcomes(run, &killed)?;
    let successors = run
        .iter()
        .zip(&results)
        .filter_map(|(op, done)| match (op, done) {
            (WriteOp::Rotate { successor, .. }, WriteDone::Rotated(RotateOutcome::Rotated)) => {
                Some(token_row(successor))
            }
            _ => None,
        })
        .collect();
    insert_tokens(conn, successors).await?;
    Ok(results)
}

async fn cancel_grants(
    conn: &mut SqliteConnection,
    run: &[WriteOp],
) -> Result<Vec<WriteDone>, StoreError> {
    // The first cancel of a grant wins; later ones change nothing.
    let rows = targets_and_times(run)?;
    sqlx::query(
        "UPDATE grants SET state = 'revoked', finalized_at = j.value ->> 1 \
         FROM json_each(?1) AS j WHERE grants.id = j.value ->> 0 AND grants.state <> 'revoked'",
    )
    .bind(&rows)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    sqlx::query(
        "UPDATE access_tokens SET revoked_at = j.value ->> 1 FROM json_each(?1) AS j \
         WHERE access_tokens.grant_id = j.value ->> 0 AND access_tokens.revoked_at IS NULL",
    )
    .bind(&rows)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(vec![WriteDone::Done; run.len()])
}
