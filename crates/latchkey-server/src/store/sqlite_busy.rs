//! How the hot-path SQLite connections (the writer thread's, the inline readers') wait for a
//! lock another connection holds: in steps of a tenth of a millisecond.
//!
//! SQLite's own handler (`sqlite3_busy_timeout`) sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50,
//! 50 and then 100 ms between attempts (`sqliteDefaultBusyCallback` in SQLite's `main.c`). The
//! locks met on the hot path are held for microseconds: a reader that found the WAL index
//! header half-written takes the write lock to read it again; a checkpoint or a WAL restart
//! takes the read-mark locks. Under that handler a writer that met such a lock slept at least
//! a millisecond, and a few misses in a row tens of milliseconds while every queued write
//! waited (issue 7). Here the first [`FINE_STEPS`] waits are [`FINE_STEP`] long, later ones
//! [`COARSE_STEP`]; a wait that passes [`SLOW_WAIT`] is logged.

use std::time::Duration;

/// The step of the first waits.
const FINE_STEP: Duration = Duration::from_micros(100);
/// How many waits are [`FINE_STEP`] long (20 ms in all).
const FINE_STEPS: i32 = 200;
/// The step of later waits.
const COARSE_STEP: Duration = Duration::from_millis(1);
/// A wait this long is logged at `warn`.
const SLOW_WAIT: Duration = Duration::from_millis(20);

/// How long the writer thread waits for a lock before its write fails with "database is
/// locked": the store's sqlx writer (interactions, consent, client administration, purges) or
/// the `oauth-client` admin command beside a running server may hold the write lock for a
/// whole transaction, and on a loaded machine 5 s proved too short.
const WRITER_LIMIT: Duration = Duration::from_secs(30);
/// How long an inline read waits: short, because the wait blocks a Tokio worker.
const READER_LIMIT: Duration = Duration::from_secs(1);

/// The writer thread's busy handler (see [`rusqlite::Connection::busy_handler`]).
pub(super) fn writer_wait(attempts: i32) -> bool {
    wait(attempts, WRITER_LIMIT, "the SQLite writer")
}

/// The inline readers' busy handler.
pub(super) fn reader_wait(attempts: i32) -> bool {
    wait(attempts, READER_LIMIT, "a SQLite read")
}

/// The time waited before attempt number `attempts` (counted from 0 by SQLite for each
/// lock it waits for), sleeping's own overshoot aside.
fn waited_before(attempts: i32) -> Duration {
    let fine = attempts.clamp(0, FINE_STEPS) as u32;
    let coarse = (attempts.max(FINE_STEPS) - FINE_STEPS) as u32;
    FINE_STEP * fine + COARSE_STEP * coarse
}

/// Sleeps one step and answers "try again", until `limit` has been waited.
fn wait(attempts: i32, limit: Duration, who: &str) -> bool {
    let waited = waited_before(attempts);
    if waited >= limit {
        tracing::warn!(
            millis = waited.as_millis() as u64,
            "{who} gave up waiting for a lock"
        );
        return false;
    }
    if attempts == 0 {
        tracing::trace!("{who} waits for a lock");
    } else if waited_before(attempts - 1) < SLOW_WAIT && waited >= SLOW_WAIT {
        tracing::warn!(
            millis = waited.as_millis() as u64,
            "{who} has waited long for a lock"
        );
    }
    std::thread::sleep(waited_before(attempts + 1) - waited);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_fine_steps_first_then_coarse_ones_up_to_the_limit() {
        assert_eq!(waited_before(0), Duration::ZERO);
        assert_eq!(waited_before(10), Duration::from_millis(1));
        assert_eq!(waited_before(FINE_STEPS), Duration::from_millis(20));
        assert_eq!(waited_before(FINE_STEPS + 5), Duration::from_millis(25));
        let reader_attempts = (0..)
            .take_while(|&n| waited_before(n) < READER_LIMIT)
            .count();
        assert_eq!(
            reader_attempts,
            200 + 980,
            "1 s: 200 steps of 0.1 ms, 980 of 1 ms"
        );
        assert!(
            !reader_wait(reader_attempts as i32),
            "gives up at the limit"
        );
        assert!(reader_wait(0), "tries again below it");
    }
}
