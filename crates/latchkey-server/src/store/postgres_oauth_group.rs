//! Group commit of the OAuth hot-path writes on PostgreSQL: `client_credentials` token inserts
//! and RFC 7009 revocations, per node, through [`super::group`] like the SQLite OAuth store.
//!
//! Each run of inserts (or of revocations) is one statement over arrays of rows; a group of
//! one run is that statement alone (atomic, no `BEGIN`/`COMMIT`), a mixed group one transaction
//! with two statements: all its inserts, then all its revocations (see `together`). Why the
//! single-write rules still hold between nodes (see `postgres_oauth.rs` for the race with
//! disabling a client):
//!
//! - *An insert only for an enabled client, under the secret it was authenticated with.* The
//!   insert statement first locks (`FOR SHARE`, in client id order) the rows of its clients
//!   that are enabled, in a CTE: a locking read waits for a concurrent disable (or secret
//!   rotation) and re-checks `disabled_at IS NULL` on the newest version (fact 2), whose
//!   `secret_hash` the join then compares with the insert's, so a client disabled (or given a
//!   new secret) before us gets no token; a disable after us waits for our commit, and its
//!   sweep (a later statement) revokes our tokens. Only tokens whose client row
//!   came out of that locking CTE are inserted. Shared locks do not conflict with each other,
//!   a disable, secret rotation or delete locks one client row, then its tokens, and a group
//!   takes its client locks before any token lock (inserts first): no lock cycle.
//! - *A revocation only of the caller's own client's unrevoked token.* The same conditional
//!   update as alone, per row; the first revocation of a (token, client) pair in a run is the
//!   one that can revoke it, as one by one.
//! - *Two lanes.* A node commits up to two groups at once (`OAUTH_WRITE_LANES`); each is safe
//!   against the other exactly as against another node's: inserts only share client locks, a
//!   revocation is a conditional update, and two revocation runs that meet on two tokens in
//!   opposite orders (rows are sent sorted, so unlikely) end in a deadlock error that rolls
//!   one group back for replay.
//! - *Failures.* As for the GNAP writes (`postgres_group.rs`): a failed statement replays each
//!   write alone; a lost connection or a failed commit fails the whole group as unavailable;
//!   each group and each replay is bounded by the operation timeout.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Acquire, Row};

use super::group::{Failure, GroupWriter};
use super::oauth::{first_revocations, outcomes, OAuthWrite};
use super::postgres::{db_error, within};
use super::postgres_group::{replay_unless_lost, settle, unavailable, within_group};
use super::postgres_oauth::{insert_token_alone, revoke_token_alone};
use super::StoreError;
use crate::token_format::TokenHash;

/// The PostgreSQL side of the OAuth group commit.
pub(super) struct PgOAuthGroupWriter {
    pub(super) pool: PgPool,
    /// Bound of a whole group, and of each replay.
    pub(super) operation_timeout: Duration,
}

#[async_trait]
impl GroupWriter for PgOAuthGroupWriter {
    type Op = OAuthWrite;
    type Done = bool;

    async fn together(&self, ops: &[OAuthWrite]) -> Result<Vec<bool>, Failure> {
        within_group(self.operation_timeout, together(&self.pool, ops)).await
    }

    async fn alone(&self, op: &OAuthWrite) -> Result<bool, StoreError> {
        within(self.operation_timeout, async {
            match op {
                OAuthWrite::Insert { token, secret } => {
                    insert_token_alone(&self.pool, token, secret).await
                }
                OAuthWrite::Revoke {
                    hash,
                    client_id,
                    now,
                } => revoke_token_alone(&self.pool, hash, client_id, *now).await,
            }
        })
        .await
    }
}

async fn together(pool: &PgPool, ops: &[OAuthWrite]) -> Result<Vec<bool>, Failure> {
    let mut conn = pool.acquire().await.map_err(unavailable)?;
    let runs: Vec<&[OAuthWrite]> = ops
        .chunk_by(|a, b| a.is_insert() == b.is_insert())
        .collect();
    if let [run] = runs.as_slice() {
        return match write_run(&mut conn, run).await {
            Ok(done) => Ok(done),
            Err(e) => Err(replay_unless_lost(&mut conn, e, ops.len()).await),
        };
    }
    // A mixed group: every insert first, then every revocation, whatever their arrival order.
    // The two never concern the same token (a revocation names a token whose insert was
    // acknowledged, so committed, before), and this way a group takes its client row locks
    // (the inserts' `FOR SHARE`) before any token row lock, the order in which disabling,
    // deleting or re-keying a client takes them: no lock cycle with those.
    let inserts_first: Vec<usize> = (0..ops.len())
        .filter(|&i| ops[i].is_insert())
        .chain((0..ops.len()).filter(|&i| !ops[i].is_insert()))
        .collect();
    let (inserts, revocations): (Vec<OAuthWrite>, Vec<OAuthWrite>) =
        ops.iter().cloned().partition(OAuthWrite::is_insert);
    let mut tx = conn.begin().await.map_err(unavailable)?;
    let applied = async {
        let mut done = Vec::with_capacity(ops.len());
        for run in [inserts.as_slice(), revocations.as_slice()] {
            done.extend(write_run(&mut tx, run).await?);
        }
        Ok::<_, StoreError>(done)
    }
    .await;
    let done = settle(tx, applied, ops.len()).await?;
    // Back to arrival order: `done[k]` is the outcome of `ops[inserts_first[k]]`.
    let mut in_order = vec![false; ops.len()];
    for (k, outcome) in done.into_iter().enumerate() {
        in_order[inserts_first[k]] = outcome;
    }
    Ok(in_order)
}

/// One statement for a run of inserts (or of revocations); one outcome per write, in order.
async fn write_run(conn: &mut PgConnection, run: &[OAuthWrite]) -> Result<Vec<bool>, StoreError> {
    let returned = if run.first().is_some_and(OAuthWrite::is_insert) {
        let n = run.len();
        let (mut hashes, mut clients, mut scopes) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut created, mut expires, mut revoked) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let mut secrets = Vec::with_capacity(n);
        for write in run {
            if let OAuthWrite::Insert { token: t, secret } = write {
                secrets.push(secret.as_bytes());
                hashes.push(t.hash.as_bytes());
                clients.push(t.client_id.as_str());
                scopes.push(t.scopes.join(" "));
                created.push(t.created_at);
                expires.push(t.expires_at);
                revoked.push(t.revoked_at);
            }
        }
        sqlx::query(
            "WITH i AS (SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[], $4::int8[], \
             $5::int8[], $6::int8[], $7::bytea[]) AS i(hash, client_id, scopes, created_at, \
             expires_at, revoked_at, secret)), \
             c AS MATERIALIZED (SELECT id, secret_hash FROM oauth_clients \
             WHERE id IN (SELECT client_id FROM i) AND disabled_at IS NULL ORDER BY id FOR SHARE) \
             INSERT INTO oauth_tokens (hash, client_id, scopes, created_at, expires_at, \
             revoked_at) SELECT i.hash, i.client_id, i.scopes, i.created_at, i.expires_at, \
             i.revoked_at FROM i JOIN c ON c.id = i.client_id AND c.secret_hash = i.secret \
             RETURNING hash, client_id",
        )
        .bind(hashes)
        .bind(clients)
        .bind(scopes)
        .bind(created)
        .bind(expires)
        .bind(revoked)
        .bind(secrets)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?
    } else {
        let mut rows: Vec<(&TokenHash, &str, i64)> = run
            .iter()
            .zip(first_revocations(run))
            .filter_map(|(write, first)| match write {
                OAuthWrite::Revoke {
                    hash,
                    client_id,
                    now,
                } if first => Some((hash, client_id.as_str(), *now)),
                _ => None,
            })
            .collect();
        // Sorted, so two groups lock common rows in the same order.
        rows.sort_unstable_by(|a, b| (a.0 .0, a.1).cmp(&(b.0 .0, b.1)));
        sqlx::query(
            "UPDATE oauth_tokens AS t SET revoked_at = i.now \
             FROM unnest($1::bytea[], $2::text[], $3::int8[]) AS i(hash, client_id, now) \
             WHERE t.hash = ANY($1) AND t.hash = i.hash AND t.client_id = i.client_id \
             AND t.revoked_at IS NULL \
             RETURNING t.hash, t.client_id",
        )
        .bind(rows.iter().map(|r| r.0.as_bytes()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.1).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.2).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?
    };
    let mut affected = HashSet::with_capacity(returned.len());
    for row in &returned {
        let bytes: Vec<u8> = row.try_get(0).map_err(db_error)?;
        let hash = TokenHash::from_slice(&bytes)
            .ok_or_else(|| StoreError::Corrupt("hash is not 32 bytes".into()))?;
        let client_id: String = row.try_get(1).map_err(db_error)?;
        affected.insert((hash, client_id));
    }
    Ok(outcomes(run, affected))
}
