//! Group commit of the GNAP writes on SQLite (grant creation, rotation, revocation, cancel).
//!
//! SQLite has one writer, and with `synchronous=FULL` every commit waits for an fsync of the
//! WAL: one write transaction per request caps the server at one request per fsync, whatever
//! the CPU could do. Here every write goes through one queue; a task takes all the writes that
//! arrived while the previous commit was under way (up to [`MAX_GROUP`]) and applies them in
//! one transaction, so one fsync serves the whole group.
//!
//! Durability is unchanged: each caller is answered only after the commit that holds its write
//! returned. Semantics are unchanged: the writes of a group run one after the other in arrival
//! order inside the transaction, exactly as if each had had its own (a rotation queued behind a
//! cancel of its grant still finds the grant cancelled). If any write of a group fails (a
//! uniqueness conflict, say), the whole group is rolled back and each write is replayed in its
//! own transaction, so one bad write never fails or changes another's outcome.

use sqlx::sqlite::SqlitePool;
use sqlx::SqliteConnection;
use tokio::sync::{mpsc, oneshot};

use super::sqlite::{cancel_grant_in, create_grant_in, db_error, revoke_token_in, rotate_token_in};
use super::{RotateOutcome, StoreError};
use crate::domain::clock::Millis;
use crate::domain::grant::Grant;
use crate::domain::token::AccessTokenRecord;

/// Most writes committed together.
pub const MAX_GROUP: usize = 256;

/// One GNAP write, as [`super::Store`] describes it.
#[derive(Debug)]
pub(super) enum WriteOp {
    /// [`super::Store::create_grant`].
    CreateGrant {
        /// Boxed: a grant is several times the size of the other writes.
        grant: Box<Grant>,
        token: Option<AccessTokenRecord>,
    },
    /// [`super::Store::revoke_token`].
    Revoke { manage_id: String, now: Millis },
    /// [`super::Store::rotate_token`].
    Rotate {
        old_manage_id: String,
        successor: AccessTokenRecord,
        now: Millis,
    },
    /// [`super::Store::cancel_grant`].
    Cancel { grant_id: String, now: Millis },
}

/// What a write reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WriteDone {
    /// Create, revoke, cancel.
    Done,
    /// Rotate.
    Rotated(RotateOutcome),
}

type Pending = (WriteOp, oneshot::Sender<Result<WriteDone, StoreError>>);

/// The queue in front of the writer connection; cheap to clone.
#[derive(Clone, Debug)]
pub(super) struct WriteQueue {
    sender: mpsc::Sender<Pending>,
}

impl WriteQueue {
    /// Starts the committing task on `writer` (needs a Tokio runtime). The task ends when the
    /// last queue handle is dropped.
    pub(super) fn start(writer: SqlitePool) -> Self {
        let (sender, receiver) = mpsc::channel(4 * MAX_GROUP);
        tokio::spawn(run(writer, receiver));
        WriteQueue { sender }
    }

    /// Queues `op` and waits until the transaction holding it has committed.
    pub(super) async fn submit(&self, op: WriteOp) -> Result<WriteDone, StoreError> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Unavailable("the SQLite writer has stopped".into());
        self.sender.send((op, reply)).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn run(writer: SqlitePool, mut queue: mpsc::Receiver<Pending>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_GROUP);
    while queue.recv_many(&mut batch, MAX_GROUP).await > 0 {
        if batch.len() > 1 {
            match together(&writer, &batch).await {
                Ok(results) => {
                    for ((_, reply), result) in batch.drain(..).zip(results) {
                        let _ = reply.send(Ok(result));
                    }
                    continue;
                }
                Err(Failure::Commit(e)) => {
                    let message = e.to_string();
                    for (_, reply) in batch.drain(..) {
                        let _ = reply.send(Err(StoreError::Unavailable(message.clone())));
                    }
                    continue;
                }
                // Replay each write alone below.
                Err(Failure::Write) => {}
            }
        }
        for (op, reply) in batch.drain(..) {
            let _ = reply.send(alone(&writer, &op).await);
        }
    }
}

/// Why a group did not commit.
enum Failure {
    /// One write failed; the group was rolled back and each write must be replayed alone.
    Write,
    /// The transaction could not begin or commit: every write of the group failed.
    Commit(StoreError),
}

async fn together(writer: &SqlitePool, batch: &[Pending]) -> Result<Vec<WriteDone>, Failure> {
    let mut tx = writer
        .begin()
        .await
        .map_err(|e| Failure::Commit(db_error(e)))?;
    let mut results = Vec::with_capacity(batch.len());
    for (op, _) in batch {
        match apply(&mut tx, op).await {
            Ok(done) => results.push(done),
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
