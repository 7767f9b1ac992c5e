//! The GNAP write statements of the SQLite store (grant creation, rotation, revocation,
//! cancel), run by the writer thread ([`super::sqlite_writer`]) inside a group transaction.
//!
//! SQLite has one writer, and with `synchronous=FULL` every commit waits for an fsync of the
//! WAL: one write transaction per request would cap the server at one request per fsync,
//! whatever the CPU could do. The writer thread applies every write that arrived while the
//! previous commit was under way in one transaction, so one fsync serves the whole group.
//!
//! Inside a group, each run of consecutive same-kind writes (see [`super::group::runs`]) is sent
//! as one SQL statement (two for grant creation, rotation and cancel) over a JSON array of
//! rows, instead of one or two statements per write. Runs keep arrival order, so a write still
//! sees everything queued before it. Within a run of rotations each old token is sent once (a
//! later rotation of the same token in the run reports [`RotateOutcome::NotLive`], as it would
//! after the first), and a rotation of a successor created earlier in the run starts a new run.
//! A write replayed alone is a run of one.

use std::collections::HashSet;

use rusqlite::Transaction;

use super::group::{
    first_targets_and_times, first_writes_sorted, mixed_run, rotation_outcomes, WriteDone, WriteOp,
};
use super::sqlite_writer::write_error;
use super::{GrantColumns, RotateOutcome, StoreError};
use crate::domain::token::AccessTokenRecord;

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

/// Runs `sql` (a cached statement) with one parameter, the JSON array of rows.
fn execute(tx: &Transaction<'_>, sql: &str, rows: &str) -> Result<usize, StoreError> {
    tx.prepare_cached(sql)
        .and_then(|mut statement| statement.execute([rows]))
        .map_err(write_error)
}

/// Inserts the tokens of a JSON array made by [`token_row`], in one statement.
fn insert_tokens(tx: &Transaction<'_>, rows: Vec<serde_json::Value>) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    execute(
        tx,
        "INSERT INTO access_tokens (manage_id, grant_id, hash, created_at, expires_at, revoked_at) \
         SELECT j.value ->> 0, j.value ->> 1, unhex(j.value ->> 2), j.value ->> 3, \
         j.value ->> 4, j.value ->> 5 FROM json_each(?1) AS j ORDER BY j.key",
        &json_rows(rows),
    )?;
    Ok(())
}

/// Applies a run of same-kind writes (see [`super::group::runs`]) in the caller's
/// transaction; one result per write, in order.
pub(super) fn apply_gnap_run(
    tx: &Transaction<'_>,
    run: &[WriteOp],
) -> Result<Vec<WriteDone>, StoreError> {
    match run.first() {
        None => Ok(Vec::new()),
        Some(WriteOp::CreateGrant { .. }) => create_grants(tx, run),
        Some(WriteOp::Revoke { .. }) => revoke_tokens(tx, run),
        Some(WriteOp::Rotate { .. }) => rotate_tokens(tx, run),
        Some(WriteOp::Cancel { .. }) => cancel_grants(tx, run),
    }
}

fn create_grants(tx: &Transaction<'_>, run: &[WriteOp]) -> Result<Vec<WriteDone>, StoreError> {
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
    execute(
        tx,
        "INSERT INTO grants (id, continue_id, continue_token_hash, client_kind, client_value, \
         access, state, wait_secs, created_at, last_continued_at) \
         SELECT j.value ->> 0, j.value ->> 1, unhex(j.value ->> 2), j.value ->> 3, \
         j.value ->> 4, j.value ->> 5, j.value ->> 6, j.value ->> 7, j.value ->> 8, \
         j.value ->> 9 FROM json_each(?1) AS j ORDER BY j.key",
        &json_rows(grants),
    )?;
    insert_tokens(tx, tokens)?;
    Ok(vec![WriteDone::Done; run.len()])
}

fn revoke_tokens(tx: &Transaction<'_>, run: &[WriteOp]) -> Result<Vec<WriteDone>, StoreError> {
    // First revocation of a token wins (it sets `revoked_at`); later ones change nothing.
    execute(
        tx,
        "UPDATE access_tokens SET revoked_at = j.value ->> 1 FROM json_each(?1) AS j \
         WHERE access_tokens.manage_id = j.value ->> 0 AND access_tokens.revoked_at IS NULL",
        &targets_and_times(run)?,
    )?;
    Ok(vec![WriteDone::Done; run.len()])
}

fn rotate_tokens(tx: &Transaction<'_>, run: &[WriteOp]) -> Result<Vec<WriteDone>, StoreError> {
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
    // The conditional update is each rotation's lock: only one write can turn an old token
    // from unrevoked to revoked, and a cancelled grant's tokens cannot be rotated.
    let killed: HashSet<String> = tx
        .prepare_cached(
            "UPDATE access_tokens SET revoked_at = j.value ->> 1, rotated_to = j.value ->> 2 \
             FROM json_each(?1) AS j \
             WHERE access_tokens.manage_id = j.value ->> 0 AND access_tokens.revoked_at IS NULL \
             AND EXISTS (SELECT 1 FROM grants g WHERE g.id = access_tokens.grant_id \
                         AND g.state <> 'revoked') \
             RETURNING access_tokens.manage_id",
        )
        .and_then(|mut statement| {
            statement
                .query_map([json_rows(rows)], |row| row.get::<_, String>(0))?
                .collect()
        })
        .map_err(write_error)?;
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
    insert_tokens(tx, successors)?;
    Ok(results)
}

fn cancel_grants(tx: &Transaction<'_>, run: &[WriteOp]) -> Result<Vec<WriteDone>, StoreError> {
    // The first cancel of a grant wins; later ones change nothing.
    let rows = targets_and_times(run)?;
    execute(
        tx,
        "UPDATE grants SET state = 'revoked', finalized_at = j.value ->> 1 \
         FROM json_each(?1) AS j WHERE grants.id = j.value ->> 0 AND grants.state <> 'revoked'",
        &rows,
    )?;
    execute(
        tx,
        "UPDATE access_tokens SET revoked_at = j.value ->> 1 FROM json_each(?1) AS j \
         WHERE access_tokens.grant_id = j.value ->> 0 AND access_tokens.revoked_at IS NULL",
        &rows,
    )?;
    Ok(vec![WriteDone::Done; run.len()])
}
