//! The janitor: removes state that can no longer matter, so tables stay bounded.
//!
//! After a configurable retention it deletes access tokens that expired (a revoked token once it
//! has expired too: see `purge::TOKENS` in the store), then
//! grants that were cancelled or rejected, issued grants with no token left, and grants
//! abandoned in interaction (see [`crate::store::Store::purge_expired`]). It works batch by batch (short
//! transactions, short row locks) and pauses between batches. On PostgreSQL each batch takes a
//! transaction-scoped advisory lock, so one node at a time cleans; the others skip the round.
//!
//! Deleting never makes a token active (an unknown token introspects as inactive), so the
//! janitor cannot break invariant 1. What it does end: after the retention an expired token can
//! no longer be rotated, and cancelling a long-cancelled grant again answers 404, not 204.

use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::domain::clock::{now_ms, Millis};
use crate::store::{SharedOAuthStore, SharedStore, StoreError};

/// Janitor settings.
#[derive(Debug, Clone)]
pub struct JanitorSettings {
    /// How long dead state is kept before it is deleted.
    pub retention: Duration,
    /// Time between rounds.
    pub interval: Duration,
    /// Rows per batch (per table).
    pub batch_size: u32,
    /// Pause between batches of one round, to leave room for traffic.
    pub pause: Duration,
    /// Most batches in one round; the rest waits for the next round.
    pub max_batches: u32,
}

impl Default for JanitorSettings {
    fn default() -> Self {
        JanitorSettings {
            retention: Duration::from_secs(7 * 24 * 3600),
            interval: Duration::from_secs(300),
            batch_size: 1000,
            pause: Duration::from_millis(50),
            max_batches: 1000,
        }
    }
}

/// What one round removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Access tokens deleted (besides those deleted with their grant).
    pub tokens: u64,
    /// Grants deleted.
    pub grants: u64,
    /// OAuth access tokens deleted.
    pub oauth_tokens: u64,
    /// Batches run.
    pub batches: u32,
    /// True when another node held the lock and this round stopped early.
    pub skipped: bool,
}

/// The janitor of one node.
#[derive(Clone)]
pub struct Janitor {
    store: SharedStore,
    oauth: Option<SharedOAuthStore>,
    settings: JanitorSettings,
}

fn millis(d: Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Janitor {
    /// A janitor over the GNAP store and, optionally, the OAuth store.
    pub fn new(
        store: SharedStore,
        oauth: Option<SharedOAuthStore>,
        settings: JanitorSettings,
    ) -> Janitor {
        Janitor {
            store,
            oauth,
            settings,
        }
    }

    /// One round as of `now`: batches until a batch finds less than a full batch of work,
    /// another node holds the lock, or [`JanitorSettings::max_batches`] is reached.
    pub async fn run_round(&self, now: Millis) -> Result<RoundReport, StoreError> {
        let cutoff = now.saturating_sub(millis(self.settings.retention));
        let limit = self.settings.batch_size.max(1);
        let mut report = RoundReport::default();
        while report.batches < self.settings.max_batches {
            let batch = self.store.purge_expired(cutoff, limit).await?;
            report.batches += 1;
            if batch.skipped {
                report.skipped = true;
                break;
            }
            report.tokens += batch.tokens;
            report.grants += batch.grants;
            if batch.tokens < u64::from(limit) && batch.grants < u64::from(limit) {
                break;
            }
            tokio::time::sleep(self.settings.pause).await;
        }
        if let Some(oauth) = &self.oauth {
            report.oauth_tokens = oauth.delete_expired_tokens(cutoff).await?;
        }
        Ok(report)
    }

    /// Runs a round every [`JanitorSettings::interval`] until `shutdown` turns true. Failures
    /// (say, the database is down) are logged and retried next round.
    pub fn spawn(self, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                match self.run_round(now_ms()).await {
                    Ok(report) if report.tokens + report.grants + report.oauth_tokens > 0 => {
                        tracing::info!(
                            tokens = report.tokens,
                            grants = report.grants,
                            oauth_tokens = report.oauth_tokens,
                            batches = report.batches,
                            "janitor removed expired state"
                        );
                    }
                    Ok(report) => {
                        tracing::debug!(skipped = report.skipped, "janitor: nothing to remove");
                    }
                    Err(e) => tracing::warn!(error = %e, "janitor round failed"),
                }
                let stop = tokio::select! {
                    _ = tokio::time::sleep(self.settings.interval) => false,
                    _ = shutdown.wait_for(|stop| *stop) => true,
                };
                if stop || *shutdown.borrow() {
                    break;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::grant::{ClientKeySource, Grant};
    use crate::domain::token::AccessTokenRecord;

    const DAY: Millis = 24 * 3600 * 1000;

    async fn expired_grant(store: &SharedStore, at: Millis) -> AccessTokenRecord {
        let (grant, _) = Grant::issue(
            ClientKeySource::WalletAddress("https://wallet.example/alice".into()),
            vec![],
            5,
            at,
        );
        let (token, _) = AccessTokenRecord::issue(&grant.id, at, 600_000);
        store
            .create_grant(&grant, Some(&token))
            .await
            .expect("create");
        token
    }

    #[tokio::test]
    async fn a_round_removes_state_older_than_the_retention_in_batches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("j.db").display());
        let store = crate::store::open(&url).await.expect("open");
        let now = now_ms();
        for _ in 0..7 {
            expired_grant(&store, now - 10 * DAY).await;
        }
        let recent = expired_grant(&store, now - DAY).await;
        let janitor = Janitor::new(
            store.clone(),
            None,
            JanitorSettings {
                retention: Duration::from_secs(7 * 24 * 3600),
                batch_size: 3,
                pause: Duration::ZERO,
                ..JanitorSettings::default()
            },
        );
        let report = janitor.run_round(now).await.expect("round");
        assert_eq!(report.tokens, 7);
        assert_eq!(report.grants, 7);
        assert_eq!(report.batches, 3, "3 + 3 + 1");
        assert!(!report.skipped);
        // Within the retention: kept, even though expired.
        assert!(store
            .token_by_manage_id(&recent.manage_id)
            .await
            .expect("lookup")
            .is_some());
        assert_eq!(janitor.run_round(now).await.expect("round").tokens, 0);
    }

    #[tokio::test]
    async fn the_task_runs_rounds_until_shut_down() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("j.db").display());
        let store = crate::store::open(&url).await.expect("open");
        let old = expired_grant(&store, now_ms() - 10 * DAY).await;
        let (stop, stopped) = watch::channel(false);
        let task = Janitor::new(
            store.clone(),
            None,
            JanitorSettings {
                interval: Duration::from_millis(20),
                ..JanitorSettings::default()
            },
        )
        .spawn(stopped);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while store
            .token_by_manage_id(&old.manage_id)
            .await
            .expect("lookup")
            .is_some()
        {
            assert!(tokio::time::Instant::now() < deadline, "janitor never ran");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops")
            .expect("no panic");
    }
}
