//! The SQLite hot-path reads (a token by hash or manage id, a grant by continue id, an OAuth
//! client or token), run **on the calling thread** with a connection of a small pool, never
//! cached.
//!
//! Why not on sqlx's reader pool (issue 7). sqlx runs every statement of a SQLite connection on
//! that connection's worker thread and hands the rows back to a Tokio task: two thread wake-ups
//! per read, which on two cores cost more than the read itself. Coalescing lookups into one
//! `SELECT … IN (json_each(…))` amortised the hand-off but added a queue, a JSON list and a hash
//! map per batch. A point read through an index on pages the operating system has cached takes
//! a few microseconds, less than the hand-off it replaces, so it runs where the request runs.
//!
//! What it costs: the read blocks the calling Tokio worker for its duration. In WAL mode a reader
//! never waits for the writer (it reads the last committed snapshot), so the duration is that of
//! the B-tree walk, plus a disk read for a page the operating system has not cached (a database
//! larger than memory). A reader can meet a lock only while the WAL is being recovered or
//! restarted; it then waits at most a second ([`super::sqlite_busy`]).
//!
//! Freshness is that of a read of its own: each statement is its own read transaction, begun
//! after the request arrived, so it sees every write committed before (a revocation, a disabled
//! client, a cancelled grant).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, ToSql};

use super::sqlite_busy::reader_wait;
use super::sqlite_rows::NamedColumns;
use super::StoreError;

/// Idle connections kept for reuse. More can be open at a moment (one per thread reading at
/// once); the extra ones are closed when given back.
const MAX_IDLE: usize = 8;

/// Statements kept prepared per connection (the hot reads are a handful).
const STATEMENT_CACHE: usize = 16;

/// A read slower than this is logged (at `warn`): it held a Tokio worker, and every request
/// queued on that worker, for as long.
const SLOW_READ: Duration = Duration::from_millis(100);

/// A pool of read-only connections used on the calling thread.
pub(super) struct InlineReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// Set by [`InlineReads::close`]: later reads fail, as with the store's other connections.
    closed: AtomicBool,
}

impl std::fmt::Debug for InlineReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InlineReads")
    }
}

/// A failed read: the store cannot answer this request.
pub(super) fn read_error(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl InlineReads {
    /// Opens one connection to the (already migrated) database at `path`, so that a database
    /// that cannot be read fails the store's opening rather than its first request.
    pub(super) fn open(path: &Path) -> Result<Self, StoreError> {
        let reads = InlineReads {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        };
        let first = reads
            .connect()
            .map_err(|e| StoreError::Open(format!("SQLite reader: {e}")))?;
        reads.give_back(first);
        Ok(reads)
    }

    fn connect(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_handler(Some(reader_wait))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE && !self.closed.load(Ordering::Acquire) {
            idle.push(conn);
        }
    }

    /// Closes the idle connections; a read under way closes its own when it ends, and later
    /// reads fail.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The first row `sql` returns for the one parameter `param`, mapped by `map`; `None` when
    /// there is none. `sql` is `'static`: its column names are cached by its address.
    pub(super) fn one<T>(
        &self,
        sql: &'static str,
        param: impl ToSql,
        map: impl FnOnce(&NamedColumns<'_, '_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable("the SQLite store is closed".into()));
        }
        let taken = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match taken {
            Some(conn) => conn,
            None => self.connect().map_err(read_error)?,
        };
        let started = Instant::now();
        let found = read_first(&conn, sql, param, map);
        let took = started.elapsed();
        if took >= SLOW_READ {
            tracing::warn!(
                millis = took.as_millis() as u64,
                "a SQLite read held its thread for long (a lock, or a disk read)"
            );
        }
        self.give_back(conn);
        found
    }
}

fn read_first<T>(
    conn: &Connection,
    sql: &'static str,
    param: impl ToSql,
    map: impl FnOnce(&NamedColumns<'_, '_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut statement = conn.prepare_cached(sql).map_err(read_error)?;
    let mut rows = statement.query([param]).map_err(read_error)?;
    match rows.next().map_err(read_error)? {
        Some(row) => map(&NamedColumns::of(row, sql)).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(dir: &tempfile::TempDir) -> PathBuf {
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).expect("create");
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER); \
             INSERT INTO t VALUES ('a', 1);",
        )
        .expect("schema");
        path
    }

    #[test]
    fn a_missing_database_fails_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = InlineReads::open(&dir.path().join("absent.db")).expect_err("no file");
        assert!(matches!(err, StoreError::Open(_)), "{err:?}");
    }

    #[test]
    fn reads_from_many_threads_keep_at_most_max_idle_connections() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reads = InlineReads::open(&database(&dir)).expect("open");
        let sql = "SELECT v FROM t WHERE k = ?1";
        std::thread::scope(|scope| {
            for _ in 0..3 * MAX_IDLE {
                scope.spawn(|| {
                    for _ in 0..50 {
                        let found = reads.one(sql, "a", |row| Ok(row.get::<_, i64>(0).ok()));
                        assert_eq!(found.expect("read"), Some(Some(1)));
                        let missing = reads.one(sql, "b", |row| Ok(row.get::<_, i64>(0).ok()));
                        assert_eq!(missing.expect("read"), None);
                    }
                });
            }
        });
        let idle = reads.idle.lock().expect("lock").len();
        assert!((1..=MAX_IDLE).contains(&idle), "{idle} idle connections");
    }

    #[test]
    fn reads_fail_once_closed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reads = InlineReads::open(&database(&dir)).expect("open");
        let sql = "SELECT v FROM t WHERE k = ?1";
        let read = |reads: &InlineReads| reads.one(sql, "a", |row| Ok(row.get::<_, i64>(0).ok()));
        assert_eq!(read(&reads).expect("read"), Some(Some(1)));
        reads.close();
        assert!(reads.idle.lock().expect("lock").is_empty());
        let err = read(&reads).expect_err("closed");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }

    #[test]
    fn a_read_sees_a_write_committed_by_another_connection() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = database(&dir);
        let reads = InlineReads::open(&path).expect("open");
        let sql = "SELECT v FROM t WHERE k = ?1";
        let value = |reads: &InlineReads| {
            reads
                .one(sql, "a", |row| row.get::<_, i64>(0).map_err(read_error))
                .expect("read")
        };
        assert_eq!(value(&reads), Some(1));
        Connection::open(&path)
            .expect("writer")
            .execute("UPDATE t SET v = 2 WHERE k = 'a'", [])
            .expect("update");
        assert_eq!(
            value(&reads),
            Some(2),
            "the pooled connection read a stale snapshot"
        );
    }
}
