//! WAL checkpoints on a connection of their own, off the writer's critical path.
//!
//! In WAL mode every committed page is written twice: once to the WAL at commit, once more to
//! the database file when a checkpoint copies it back. By default SQLite runs that checkpoint
//! inside the commit that pushes the WAL past 1,000 pages, on the one writer connection, so
//! every few group commits the writer also reads the WAL, writes the database file and fsyncs
//! it while every queued write waits (issue 7: about a third of the writer's time in a grant
//! profile, and the latency spikes behind the p99).
//!
//! Here a task runs `PRAGMA wal_checkpoint(PASSIVE)` from its own connection whenever the WAL
//! has grown, concurrently with the writer (a passive checkpoint takes no lock a writer needs:
//! "Checkpoint as many frames as possible without waiting for any database readers or writers
//! to finish", sqlite.org/pragma.html#pragma_wal_checkpoint). The writer's own automatic
//! checkpoint stays as a backstop at [`WRITER_AUTOCHECKPOINT_PAGES`], should this task fall
//! behind. Durability is unchanged: a commit is durable once its WAL frames are synced, before
//! any checkpoint.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::sqlite::SqlitePool;
use sqlx::Row;

/// `wal_autocheckpoint` of the writer connection: a backstop only, twice [`RESTART_FRAMES`].
pub(super) const WRITER_AUTOCHECKPOINT_PAGES: i64 = 2 * RESTART_FRAMES;

/// Pause between two looks at the WAL. At 6,000 grants/s the WAL grows by a few hundred pages
/// in this time, so each pass copies a few hundred pages and syncs the database file once.
const PAUSE: Duration = Duration::from_millis(25);

/// WAL length (frames, one page each) past which a pass asks the writer to let the WAL start
/// over: 32 MB of 4 KiB pages. Each restart pauses the writer for a checkpoint of the last
/// frames and a sync of the database file (after [`catch_up`], median 1.6 ms and p90 7.3 ms
/// at 5,000 rotations/s), so a longer WAL means fewer pauses: 2,000 frames gave 8–12 restarts
/// a second at that load, this 2–3.
const RESTART_FRAMES: i64 = 8000;

/// Frames added during a catch-up pass (see [`catch_up`]) few enough to leave to the writer.
const SMALL_TAIL: i64 = 64;

/// Most catch-up passes before the writer is asked anyway.
const CATCH_UP_PASSES: usize = 4;

/// The checkpointing task's request to the writer thread: "checkpoint the last few frames
/// between two groups, so that the WAL can start over". Cheap to clone.
#[derive(Clone, Debug, Default)]
pub(super) struct WalRestart(Arc<AtomicBool>);

impl WalRestart {
    fn ask(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Takes the request: true once per [`WalRestart::ask`].
    pub(super) fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

/// Starts the checkpointing task on `pool` (one read-write connection to the database at
/// `database`). It ends, closing `pool`, when the pool is closed or when `store` can no longer
/// be upgraded (every handle of the store that owns it is gone, closed or not).
pub(super) fn start(pool: SqlitePool, database: &Path, store: Weak<()>, restart: WalRestart) {
    let mut wal = database.as_os_str().to_owned();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    tokio::spawn(async move {
        let mut last_seen = None;
        while !pool.is_closed() {
            tokio::time::sleep(PAUSE).await;
            if store.upgrade().is_none() {
                pool.close().await;
                break;
            }
            // Every commit writes to the WAL file: an unchanged modification time means
            // nothing new to copy back, and an idle server costs one `stat` per pause. No WAL
            // file (not created yet, or a path this task cannot see) means nothing to do
            // either; the writer's own backstop checkpoint still works. (A commit in the same
            // clock tick as the last one seen leaves the time unchanged: its pages wait for the
            // next commit's pass, which delays a checkpoint, never durability.)
            let modified = std::fs::metadata(&wal).and_then(|m| m.modified()).ok();
            if modified.is_none() || modified == last_seen {
                continue;
            }
            last_seen = modified;
            match pass(&pool).await {
                Ok(frames) if frames > RESTART_FRAMES => {
                    if catch_up(&pool, frames).await.is_ok() {
                        restart.ask();
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if pool.is_closed() {
                        break;
                    }
                    tracing::warn!(error = %e, "background WAL checkpoint failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
}

/// One passive checkpoint; the WAL's length in frames when it began.
async fn pass(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    // The pragma answers one row: busy, frames in the WAL, frames copied back.
    let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(pool)
        .await?;
    row.try_get::<i64, _>(1)
}

/// Before the writer is asked to restart the WAL: passes one after another until one finds
/// few frames added since the last began ([`SMALL_TAIL`]), so that the frames left for the
/// writer to copy, and to sync while every write waits, are those of one short pass. Each
/// pass copies what arrived during the one before, so the tail shrinks quickly; at most
/// [`CATCH_UP_PASSES`] are made.
async fn catch_up(pool: &SqlitePool, mut frames: i64) -> Result<(), sqlx::Error> {
    for _ in 0..CATCH_UP_PASSES {
        let now = pass(pool).await?;
        // Fewer frames than before: the WAL has started over meanwhile.
        if now - frames <= SMALL_TAIL {
            break;
        }
        frames = now;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_request_is_taken_once() {
        let restart = WalRestart::default();
        assert!(!restart.take(), "nothing asked yet");
        restart.ask();
        restart.clone().ask();
        assert!(restart.take());
        assert!(!restart.take(), "two asks before one take are one request");
    }
}
