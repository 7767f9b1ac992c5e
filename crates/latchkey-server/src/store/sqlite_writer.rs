//! The SQLite writer thread: the hot-path writes (GNAP grant, rotate, revoke, cancel; OAuth
//! token insert and revocation) run on one OS thread that owns a read-write connection, and
//! share commits.
//!
//! Why a thread of its own (issue 7). sqlx runs each statement of a SQLite connection on that
//! connection's worker thread and hands the result back to a Tokio task: a group transaction of
//! four statements (`BEGIN`, the run's `UPDATE`, its `INSERT`, `COMMIT`) was four round trips
//! between the worker thread and a task that, each time, waited its turn behind every request
//! task on the two cores. Measured under a 64-client rotate load: 0.6–1.0 ms for `BEGIN` alone,
//! 3.6–4.3 ms per group, with the writer (the serial resource) busy 80 % of the time. Here the
//! thread that owns the connection takes a whole group from the queue and runs it, statements
//! and commit, without handing anything back until every caller of the group is answered.
//!
//! The group-commit rules are those of [`super::group`]: each caller is answered only after the
//! commit that holds its write returned (durability is that of a write of its own); the writes
//! of a group take effect in arrival order, each with the outcome it would have had alone; if
//! one write fails, the group is rolled back and each write replayed in a transaction of its
//! own, so one bad write never fails or changes another's outcome; if the commit itself fails,
//! every caller of the group gets that error.
//!
//! Every other write (interactions, consent, OAuth client administration, purges) is rare and
//! goes through the store's sqlx writer connection. SQLite lets one connection write at a time:
//! each side takes the write lock when its transaction begins (`BEGIN IMMEDIATE`, so that no
//! transaction that has read can fail to upgrade its lock) and waits for the other, up to the
//! busy timeout, when it finds the lock taken.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::group::{runs, Failure, WriteDone, WriteOp, MAX_GROUP};
use super::oauth::{apply_oauth_run, OAuthWrite};
use super::sqlite_busy::writer_wait;
use super::sqlite_checkpoint::WalRestart;
use super::sqlite_group::apply_gnap_run;
use super::StoreError;

type Reply<D> = oneshot::Sender<Result<D, StoreError>>;

enum Message {
    Gnap(WriteOp, Reply<WriteDone>),
    OAuth(OAuthWrite, Reply<bool>),
    /// Ends the thread (see [`SqliteWriter::close`]).
    Close,
}

/// Handle on the writer thread; cheap to clone. The thread ends, closing its connection, when
/// the last handle is dropped.
#[derive(Clone)]
pub(super) struct SqliteWriter {
    queue: mpsc::Sender<Message>,
}

impl std::fmt::Debug for SqliteWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteWriter")
    }
}

/// A group slower than this is logged (at `warn`).
const SLOW_GROUP: Duration = Duration::from_millis(100);

fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite writer has stopped".into())
}

/// Maps a SQLite error: a uniqueness violation is a conflict, anything else makes the store
/// unavailable for this write.
pub(super) fn write_error(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(failure, message)
            if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::Conflict(message.clone().unwrap_or_else(|| e.to_string()))
        }
        _ => StoreError::Unavailable(e.to_string()),
    }
}

impl SqliteWriter {
    /// Opens the read-write connection to the (already migrated) database at `path` with the
    /// store's settings and starts the thread.
    pub(super) fn start(
        path: &Path,
        autocheckpoint_pages: i64,
        restart: WalRestart,
    ) -> Result<Self, StoreError> {
        let open_error = |e: rusqlite::Error| StoreError::Open(format!("SQLite writer: {e}"));
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_error)?;
        conn.busy_handler(Some(writer_wait)).map_err(open_error)?;
        // The settings of every connection of the store (see `SqliteStore::open`): WAL, a
        // commit is durable once the WAL is synced, foreign keys enforced, statement journals in
        // memory; plus the writer's automatic checkpoint, a backstop only.
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
             PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = {autocheckpoint_pages};"
        ))
        .map_err(open_error)?;
        let (queue, messages) = mpsc::channel(4 * MAX_GROUP);
        std::thread::Builder::new()
            .name("latchkey-sqlite-writer".into())
            .spawn(move || serve(conn, messages, restart))
            .map_err(|e| StoreError::Open(format!("cannot start the SQLite writer: {e}")))?;
        Ok(SqliteWriter { queue })
    }

    /// Queues a GNAP write and waits until the transaction holding it has committed.
    pub(super) async fn gnap(&self, op: WriteOp) -> Result<WriteDone, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Message::Gnap(op, reply)).await?;
        answer.await.map_err(|_| stopped())?
    }

    /// Queues an OAuth token write and waits until the transaction holding it has committed.
    pub(super) async fn oauth(&self, op: OAuthWrite) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Message::OAuth(op, reply)).await?;
        answer.await.map_err(|_| stopped())?
    }

    /// Ends the thread once every write queued before is answered, and closes its connection;
    /// later writes fail with "the SQLite writer has stopped".
    pub(super) async fn close(&self) {
        let _ = self.queue.send(Message::Close).await;
        self.queue.closed().await;
    }

    async fn send(&self, message: Message) -> Result<(), StoreError> {
        self.queue.send(message).await.map_err(|_| stopped())
    }
}

/// Runs `work` in a transaction that takes the write lock at once (`BEGIN IMMEDIATE`), so that
/// a transaction that reads before it writes never fails to upgrade its lock; committed if
/// `work` succeeds, rolled back otherwise.
pub(super) fn immediate<T>(
    conn: &mut Connection,
    work: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(write_error)?;
    let value = work(&tx)?;
    tx.commit().map_err(write_error)?;
    Ok(value)
}

/// The thread: takes everything queued (up to [`MAX_GROUP`] writes), applies it as one group,
/// answers, and waits for more; between two groups, checkpoints when the checkpointing task
/// asks (see [`WalRestart`]).
fn serve(mut conn: Connection, mut messages: mpsc::Receiver<Message>, restart: WalRestart) {
    let mut group = Group::default();
    while let Some(first) = messages.blocking_recv() {
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(message) = next.take() {
            taken += 1;
            match message {
                Message::Gnap(op, reply) => group.push_gnap(op, reply),
                Message::OAuth(op, reply) => group.push_oauth(op, reply),
                Message::Close => {
                    group.commit(&mut conn);
                    // Dropping the receiver fails every later send; `close` waits for that.
                    return;
                }
            }
            if taken < MAX_GROUP {
                next = messages.try_recv().ok();
            }
        }
        group.commit(&mut conn);
        if restart.take() {
            checkpoint_for_restart(&conn);
        }
    }
}

/// Copies back the frames the checkpointing task's last pass left (those of the groups
/// committed while it ran), so that the next group's transaction begins on a fully
/// backfilled WAL and writes it from its start again. A checkpoint is never needed for
/// durability: a failure only leaves the WAL longer until the next request.
fn checkpoint_for_restart(conn: &Connection) {
    let started = std::time::Instant::now();
    let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
    });
    match result {
        Ok((frames, copied)) => tracing::trace!(
            frames,
            copied,
            micros = started.elapsed().as_micros() as u64,
            "checkpoint for a WAL restart"
        ),
        Err(e) => tracing::debug!(error = %e, "checkpoint for a WAL restart failed"),
    }
}

/// Queued writes of one family and their callers.
struct Pending<O, D> {
    ops: Vec<O>,
    replies: Vec<Reply<D>>,
}

impl<O, D> Pending<O, D> {
    fn new(op: O, reply: Reply<D>) -> Self {
        Pending {
            ops: vec![op],
            replies: vec![reply],
        }
    }

    fn push(&mut self, op: O, reply: Reply<D>) {
        self.ops.push(op);
        self.replies.push(reply);
    }

    /// Drops the writes whose caller gave up before the group started: they were acknowledged
    /// nothing, so they are not applied.
    fn drop_abandoned(&mut self) {
        let (ops, replies) = std::mem::take(&mut self.ops)
            .into_iter()
            .zip(std::mem::take(&mut self.replies))
            .filter(|(_, reply)| !reply.is_closed())
            .unzip();
        self.ops = ops;
        self.replies = replies;
    }

    fn answer(self, results: Vec<D>) {
        for (reply, result) in self.replies.into_iter().zip(results) {
            let _ = reply.send(Ok(result));
        }
    }

    fn fail(self, message: &str) {
        for reply in self.replies {
            let _ = reply.send(Err(StoreError::Unavailable(message.to_string())));
        }
    }

    /// Each write in a transaction of its own.
    fn replay_alone(
        self,
        conn: &mut Connection,
        apply: fn(&Transaction<'_>, &[O]) -> Result<Vec<D>, StoreError>,
    ) {
        for (op, reply) in self.ops.iter().zip(self.replies) {
            if reply.is_closed() {
                continue;
            }
            let result = immediate(conn, |tx| {
                apply(tx, std::slice::from_ref(op))?
                    .pop()
                    .ok_or_else(|| StoreError::Corrupt("a write with no outcome".into()))
            });
            let _ = reply.send(result);
        }
    }
}

/// A stretch of consecutive writes of one family.
enum Stretch {
    Gnap(Pending<WriteOp, WriteDone>),
    OAuth(Pending<OAuthWrite, bool>),
}

impl Stretch {
    fn drop_abandoned(&mut self) -> usize {
        match self {
            Stretch::Gnap(p) => {
                p.drop_abandoned();
                p.ops.len()
            }
            Stretch::OAuth(p) => {
                p.drop_abandoned();
                p.ops.len()
            }
        }
    }
}

/// What one stretch's statements reported.
enum Applied {
    Gnap(Vec<WriteDone>),
    OAuth(Vec<bool>),
}

/// The hot writes gathered for the next commit, in arrival order.
#[derive(Default)]
struct Group {
    stretches: Vec<Stretch>,
}

impl Group {
    fn push_gnap(&mut self, op: WriteOp, reply: Reply<WriteDone>) {
        match self.stretches.last_mut() {
            Some(Stretch::Gnap(pending)) => pending.push(op, reply),
            _ => self.stretches.push(Stretch::Gnap(Pending::new(op, reply))),
        }
    }

    fn push_oauth(&mut self, op: OAuthWrite, reply: Reply<bool>) {
        match self.stretches.last_mut() {
            Some(Stretch::OAuth(pending)) => pending.push(op, reply),
            _ => self.stretches.push(Stretch::OAuth(Pending::new(op, reply))),
        }
    }

    /// Applies the group in one transaction and answers its callers (see the module's rules).
    fn commit(&mut self, conn: &mut Connection) {
        let mut stretches = std::mem::take(&mut self.stretches);
        let writes: usize = stretches.iter_mut().map(Stretch::drop_abandoned).sum();
        if writes == 0 {
            return;
        }
        // A group of one is a transaction of its own: nothing to replay it apart from.
        let started = std::time::Instant::now();
        let outcome = if writes == 1 {
            Err(Failure::Write)
        } else {
            together(conn, &stretches)
        };
        match outcome {
            Ok(applied) => {
                for (stretch, applied) in stretches.into_iter().zip(applied) {
                    match (stretch, applied) {
                        (Stretch::Gnap(p), Applied::Gnap(done)) => p.answer(done),
                        (Stretch::OAuth(p), Applied::OAuth(done)) => p.answer(done),
                        (Stretch::Gnap(p), _) => p.fail("the writer mixed up its outcomes"),
                        (Stretch::OAuth(p), _) => p.fail("the writer mixed up its outcomes"),
                    }
                }
            }
            Err(Failure::Commit(e)) => {
                let message = e.to_string();
                for stretch in stretches {
                    match stretch {
                        Stretch::Gnap(p) => p.fail(&message),
                        Stretch::OAuth(p) => p.fail(&message),
                    }
                }
            }
            Err(Failure::Write) => {
                for stretch in stretches {
                    match stretch {
                        Stretch::Gnap(p) => p.replay_alone(conn, apply_gnap),
                        Stretch::OAuth(p) => p.replay_alone(conn, apply_oauth),
                    }
                }
            }
        }
        // Measured to the last answer, replays included (a group of one is a replay).
        let took = started.elapsed();
        if took >= SLOW_GROUP {
            tracing::warn!(
                writes,
                millis = took.as_millis() as u64,
                "a SQLite write group took long; every write queued behind it waited"
            );
        } else {
            tracing::trace!(writes, micros = took.as_micros() as u64, "group applied");
        }
    }
}

/// GNAP writes in the caller's transaction, in order: one statement (or two) per run.
fn apply_gnap(tx: &Transaction<'_>, ops: &[WriteOp]) -> Result<Vec<WriteDone>, StoreError> {
    let mut done = Vec::with_capacity(ops.len());
    for run in runs(ops) {
        done.extend(apply_gnap_run(tx, &ops[run])?);
    }
    Ok(done)
}

/// OAuth writes in the caller's transaction, in order: one statement per run of inserts (or of
/// revocations).
fn apply_oauth(tx: &Transaction<'_>, ops: &[OAuthWrite]) -> Result<Vec<bool>, StoreError> {
    let mut done = Vec::with_capacity(ops.len());
    for run in ops.chunk_by(|a, b| a.is_insert() == b.is_insert()) {
        done.extend(apply_oauth_run(tx, run)?);
    }
    Ok(done)
}

/// Every stretch of the group in one transaction.
fn together(conn: &mut Connection, stretches: &[Stretch]) -> Result<Vec<Applied>, Failure> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| Failure::Commit(write_error(e)))?;
    let mut applied = Vec::with_capacity(stretches.len());
    for stretch in stretches {
        let outcome = match stretch {
            Stretch::Gnap(p) => apply_gnap(&tx, &p.ops).map(Applied::Gnap),
            Stretch::OAuth(p) => apply_oauth(&tx, &p.ops).map(Applied::OAuth),
        };
        match outcome {
            Ok(done) => applied.push(done),
            Err(e) => {
                tracing::debug!(error = %e, "a write of a group failed; replaying each alone");
                // Dropping the transaction rolls it back.
                return Err(Failure::Write);
            }
        }
    }
    tx.commit().map_err(|e| Failure::Commit(write_error(e)))?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_bytes(database: &Path) -> u64 {
        let mut wal = database.as_os_str().to_owned();
        wal.push("-wal");
        std::fs::metadata(wal).expect("the WAL exists").len()
    }

    fn commit_rows(conn: &Connection, rows: usize) {
        for i in 0..rows {
            conn.execute("INSERT INTO t (v) VALUES (?1)", [format!("{i:0>2000}")])
                .expect("insert");
        }
    }

    #[test]
    fn a_checkpoint_between_groups_lets_the_wal_start_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; \
             CREATE TABLE t (v TEXT);",
        )
        .expect("setup");
        commit_rows(&conn, 20);
        let before = wal_bytes(&path);
        commit_rows(&conn, 20);
        let grown = wal_bytes(&path);
        assert!(
            grown > before,
            "without a checkpoint every commit appends to the WAL"
        );
        checkpoint_for_restart(&conn);
        commit_rows(&conn, 20);
        assert_eq!(
            wal_bytes(&path),
            grown,
            "after the checkpoint, the next commits write the WAL from its start again"
        );
    }
}
