//! Coalesced reads (PostgreSQL), **never cached**: a lane takes every lookup that arrived while
//! the previous read ran and answers them all from one `SELECT`. Each lookup's read starts after
//! the lookup arrived, so it sees every write committed before it (a revocation, a disabled
//! client, is visible at once, as with a read of its own). What is saved is the per-request
//! statement: its round trip and pool checkout. (SQLite's hot reads need no coalescing: they
//! run on the calling thread, [`super::sqlite_read`].)
//!
//! A lookup that finds no other in flight reads directly, without the queue: with nothing to
//! coalesce, the hop to a lane would only add latency (one client at a time).

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::StoreError;

/// Counts lookups under way.
#[derive(Default)]
pub(super) struct InFlight(AtomicUsize);

/// One lookup under way; counted down when dropped (finished or cancelled).
pub(super) struct InFlightGuard<'a>(&'a InFlight);

impl InFlight {
    /// Counts a lookup in; true when no other was under way.
    pub(super) fn enter(&self) -> (InFlightGuard<'_>, bool) {
        let before = self.0.fetch_add(1, Ordering::AcqRel);
        (InFlightGuard(self), before == 0)
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The reads behind a [`Coalesced`] lookup.
#[async_trait]
pub(super) trait BatchRead: Send + Sync + 'static {
    /// What is looked up (a token hash, a client id).
    type Key: Clone + Eq + Hash + Send + Sync + 'static;
    /// What is found.
    type Value: Clone + Send + 'static;

    /// Reads one key.
    async fn one(&self, key: &Self::Key) -> Result<Option<Self::Value>, StoreError>;

    /// Reads several distinct keys in one statement; keys not found are left out.
    async fn many(&self, keys: &[Self::Key])
        -> Result<HashMap<Self::Key, Self::Value>, StoreError>;
}

type Pending<K, V> = (K, oneshot::Sender<Result<Option<V>, StoreError>>);
/// The lanes' shared queue: one lane at a time gathers a batch from it.
type Queue<K, V> = Arc<Mutex<mpsc::Receiver<Pending<K, V>>>>;

/// Lookups through a [`BatchRead`], coalesced when others are in flight; cheap to clone.
pub(super) struct Coalesced<R: BatchRead> {
    sender: mpsc::Sender<Pending<R::Key, R::Value>>,
    reader: Arc<R>,
    in_flight: Arc<InFlight>,
    /// Named in errors: which reader stopped.
    name: &'static str,
}

impl<R: BatchRead> Clone for Coalesced<R> {
    fn clone(&self) -> Self {
        Coalesced {
            sender: self.sender.clone(),
            reader: self.reader.clone(),
            in_flight: self.in_flight.clone(),
            name: self.name,
        }
    }
}

impl<R: BatchRead> Coalesced<R> {
    /// Starts `lanes` reading tasks, each answering up to `max_batch` lookups per read (needs
    /// a Tokio runtime; the tasks end when the last handle is dropped).
    pub(super) fn start(reader: R, lanes: usize, max_batch: usize, name: &'static str) -> Self {
        let (sender, receiver) = mpsc::channel(4 * max_batch);
        let receiver = Arc::new(Mutex::new(receiver));
        let reader = Arc::new(reader);
        for _ in 0..lanes {
            tokio::spawn(lane(reader.clone(), receiver.clone(), max_batch));
        }
        Coalesced {
            sender,
            reader,
            in_flight: Arc::default(),
            name,
        }
    }

    /// Looks `key` up: directly when no other lookup is under way, else through a lane.
    pub(super) async fn lookup(&self, key: R::Key) -> Result<Option<R::Value>, StoreError> {
        let (_counted, alone) = self.in_flight.enter();
        if alone {
            return self.reader.one(&key).await;
        }
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Unavailable(format!("the {} has stopped", self.name));
        self.sender.send((key, reply)).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn lane<R: BatchRead>(reader: Arc<R>, queue: Queue<R::Key, R::Value>, max_batch: usize) {
    let mut batch: Vec<Pending<R::Key, R::Value>> = Vec::with_capacity(max_batch);
    loop {
        if queue.lock().await.recv_many(&mut batch, max_batch).await == 0 {
            return;
        }
        // A key asked for twice in one batch is read once and answered to both.
        let mut seen = HashSet::with_capacity(batch.len());
        let keys: Vec<R::Key> = batch
            .iter()
            .filter(|(key, _)| seen.insert(key))
            .map(|(key, _)| key.clone())
            .collect();
        let found = if let [key] = keys.as_slice() {
            reader
                .one(key)
                .await
                .map(|hit| hit.map(|v| (key.clone(), v)).into_iter().collect())
        } else {
            reader.many(&keys).await
        };
        match found {
            Ok(found) => {
                for (key, reply) in batch.drain(..) {
                    let _ = reply.send(Ok(found.get(&key).cloned()));
                }
            }
            // One statement for many callers must not let one caller's bad key (a value the
            // database refuses, say) fail the others: each key is read again on its own, and
            // each caller gets its own key's answer or error, as without coalescing.
            // Callers that already gave up (most often on the same deadline that failed the
            // batch) are not read for again.
            Err(_) if keys.len() > 1 => {
                batch.retain(|(_, reply)| !reply.is_closed());
                let mut answers = HashMap::with_capacity(batch.len());
                for (key, _) in &batch {
                    if !answers.contains_key(key) {
                        answers.insert(key.clone(), reader.one(key).await);
                    }
                }
                for (key, reply) in batch.drain(..) {
                    let _ = reply.send(answers.get(&key).cloned().unwrap_or(Ok(None)));
                }
            }
            Err(e) => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
