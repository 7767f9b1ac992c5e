//! `latchkey bench fill`: puts N filler grants, each with one live access token, straight into a
//! database, to measure how the cost of each call grows with the number of stored tokens
//! (10 thousand, 1 million, 10 million) without spending hours issuing them over HTTP.
//!
//! The rows are shaped like real ones (the same access JSON as the `grant` scenario, 32-byte
//! hashes, an expiry a month ahead so the janitor leaves them alone), but nobody knows their
//! token values: they only make the indexes as big as a busy server's.

use anyhow::Context;
use sqlx::{ConnectOptions, Connection};
use std::str::FromStr;
use std::time::Instant;

/// Rows per transaction.
const BATCH: u64 = 200_000;

const FILLER_ACCESS: &str = r#"[{"type":"incoming-payment","actions":["create","read","list"],"identifier":"http://filler.invalid/alice"}]"#;
const FILLER_CLIENT: &str = "http://filler.invalid/alice";
/// A month, in milliseconds.
const MONTH_MS: i64 = 30 * 24 * 3600 * 1000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A prefix unique to this fill run, so that several runs add up.
fn run_tag() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 6];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("fill-{hex}-")
}

/// Inserts `tokens` filler grants and tokens into the database at `url` (migrating it first).
/// Returns the seconds it took.
pub async fn fill(url: &str, tokens: u64, quiet: bool) -> anyhow::Result<f64> {
    latchkey_server::store::migrate(url)
        .await
        .context("cannot migrate the database")?;
    let started = Instant::now();
    let tag = run_tag();
    if url.starts_with("sqlite:") {
        fill_sqlite(url, tokens, &tag, quiet).await?;
    } else if latchkey_server::store::is_postgres_url(url) {
        fill_postgres(url, tokens, &tag, quiet).await?;
    } else {
        anyhow::bail!("fill supports sqlite:// and postgres:// URLs");
    }
    Ok(started.elapsed().as_secs_f64())
}

fn progress(quiet: bool, done: u64, total: u64, started: Instant) {
    if !quiet {
        eprintln!(
            "fill: {done}/{total} rows ({:.0}/s)",
            done as f64 / started.elapsed().as_secs_f64().max(1e-9)
        );
    }
}

async fn fill_sqlite(url: &str, tokens: u64, tag: &str, quiet: bool) -> anyhow::Result<()> {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    let options = SqliteConnectOptions::from_str(url)?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        // Each batch statement takes seconds by design: no "slow statement" warnings.
        .disable_statement_logging();
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
    let started = Instant::now();
    let (now, expires) = (now_ms(), now_ms() + MONTH_MS);
    let mut done = 0u64;
    while done < tokens {
        let (first, last) = (done + 1, (done + BATCH).min(tokens));
        let mut tx = conn.begin().await?;
        sqlx::query(
            "WITH RECURSIVE seq(n) AS (SELECT ?1 UNION ALL SELECT n + 1 FROM seq WHERE n < ?2) \
             INSERT INTO grants (id, continue_id, continue_token_hash, client_kind, client_value, \
             access, state, wait_secs, created_at) \
             SELECT ?3 || 'g' || n, ?3 || 'c' || n, randomblob(32), 'wallet_address', ?4, ?5, \
             'issued', 5, ?6 FROM seq",
        )
        .bind(first as i64)
        .bind(last as i64)
        .bind(tag)
        .bind(FILLER_CLIENT)
        .bind(FILLER_ACCESS)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("inserting filler grants")?;
        sqlx::query(
            "WITH RECURSIVE seq(n) AS (SELECT ?1 UNION ALL SELECT n + 1 FROM seq WHERE n < ?2) \
             INSERT INTO access_tokens (manage_id, grant_id, hash, created_at, expires_at) \
             SELECT ?3 || 'm' || n, ?3 || 'g' || n, randomblob(32), ?4, ?5 FROM seq",
        )
        .bind(first as i64)
        .bind(last as i64)
        .bind(tag)
        .bind(now)
        .bind(expires)
        .execute(&mut *tx)
        .await
        .context("inserting filler tokens")?;
        tx.commit().await?;
        done = last;
        progress(quiet, done, tokens, started);
    }
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

async fn fill_postgres(url: &str, tokens: u64, tag: &str, quiet: bool) -> anyhow::Result<()> {
    let options = sqlx::postgres::PgConnectOptions::from_str(url)?.disable_statement_logging();
    let mut conn = sqlx::PgConnection::connect_with(&options).await?;
    let started = Instant::now();
    let (now, expires) = (now_ms(), now_ms() + MONTH_MS);
    let mut done = 0u64;
    while done < tokens {
        let (first, last) = (done + 1, (done + BATCH).min(tokens));
        let mut tx = conn.begin().await?;
        sqlx::query(
            "INSERT INTO grants (id, continue_id, continue_token_hash, client_kind, client_value, \
             access, state, wait_secs, created_at) \
             SELECT $3 || 'g' || n, $3 || 'c' || n, sha256(convert_to($3 || 'c' || n, 'UTF8')), \
             'wallet_address', $4, $5, 'issued', 5, $6 FROM generate_series($1::bigint, $2::bigint) AS n",
        )
        .bind(first as i64)
        .bind(last as i64)
        .bind(tag)
        .bind(FILLER_CLIENT)
        .bind(FILLER_ACCESS)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("inserting filler grants")?;
        sqlx::query(
            "INSERT INTO access_tokens (manage_id, grant_id, hash, created_at, expires_at) \
             SELECT $3 || 'm' || n, $3 || 'g' || n, sha256(convert_to($3 || 't' || n, 'UTF8')), \
             $4, $5 FROM generate_series($1::bigint, $2::bigint) AS n",
        )
        .bind(first as i64)
        .bind(last as i64)
        .bind(tag)
        .bind(now)
        .bind(expires)
        .execute(&mut *tx)
        .await
        .context("inserting filler tokens")?;
        tx.commit().await?;
        done = last;
        progress(quiet, done, tokens, started);
    }
    sqlx::query("ANALYZE grants").execute(&mut conn).await?;
    sqlx::query("ANALYZE access_tokens")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}
