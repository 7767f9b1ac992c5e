//! Cross-node cache invalidation over PostgreSQL `LISTEN/NOTIFY`, and the health of that channel.
//!
//! Nodes [`publish`] events on [`INVALIDATION_CHANNEL`] ("this wallet's keys changed", for the
//! client-key cache). [`InvalidationFeed`] keeps one dedicated connection listening, hands every
//! event to subscribers, and reports whether the channel can be trusted. (Row triggers also
//! notified every token, grant and OAuth row change until migration 0004 removed them: nothing
//! caches those rows, and the triggers cost PostgreSQL time on every write.)
//!
//! # Fail closed
//!
//! Notifications are fire-and-forget: those sent while a listener is disconnected are lost. So a
//! cache may serve an entry only if no notification about it can have been missed. The feed
//! numbers each period of continuous listening with an *epoch*; [`InvalidationFeed::ticket`]
//! captures the current epoch and event count. The rule for a cache:
//!
//! 1. Take a ticket *before* reading the database. No ticket (channel down): do not cache.
//! 2. After the read, insert only if [`InvalidationFeed::is_current`] still holds for the ticket
//!    (no event arrived and the channel stayed up meanwhile: the read cannot be stale).
//! 3. Serve an entry only while [`InvalidationFeed::trusted_epoch`] equals the epoch of the
//!    ticket it was inserted under; remove entries named by events; on
//!    [`Invalidation::All`] (channel lost) or a lagged receiver, drop everything.
//!
//! Between a commit on one node and the notification's arrival on another there is a delay
//! (milliseconds on a LAN; `tests/pg_notify.rs` measures it). A cache therefore may serve state
//! that much out of date. Token *liveness* is never cached for that reason: introspection reads
//! the database, so a revoke is seen by every node as soon as it is acknowledged.

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::Executor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use super::postgres::{connect_options, db_error, PgSettings, INVALIDATION_CHANNEL};
use super::StoreError;

/// One invalidation event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// The client keys published at this URL (a wallet address or a JWKS URL) changed.
    ClientKeys(String),
    /// Events may have been missed (the channel was lost): drop every cached entry.
    All,
}

impl Invalidation {
    /// The notification payload of the event (`keys:<url>`, `all`).
    pub fn to_payload(&self) -> String {
        match self {
            Invalidation::ClientKeys(url) => format!("keys:{url}"),
            Invalidation::All => "all".to_string(),
        }
    }

    /// Parses a notification payload; `None` for payloads this version does not know (such as
    /// the `token:`/`grant:` events of nodes still running the triggers 0004 removed).
    pub fn from_payload(payload: &str) -> Option<Invalidation> {
        let (kind, rest) = payload.split_once(':').unwrap_or((payload, ""));
        match kind {
            "keys" if !rest.is_empty() => Some(Invalidation::ClientKeys(rest.to_string())),
            "all" => Some(Invalidation::All),
            _ => None,
        }
    }
}

/// Sends an invalidation to every node (delivered when the surrounding transaction, if any,
/// commits). Payloads are limited to 8000 bytes by PostgreSQL.
pub async fn publish(pool: &PgPool, event: &Invalidation) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(INVALIDATION_CHANNEL)
        .bind(event.to_payload())
        .execute(pool)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// The state of the invalidation channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelHealth {
    /// Not listening yet (starting, or reconnecting after a loss). Caches must not be trusted.
    Down,
    /// Listening without interruption since the start of `epoch`.
    Listening {
        /// Numbers the periods of continuous listening, from 1.
        epoch: u64,
    },
    /// The feed was shut down.
    Stopped,
}

/// A point in the feed's history; see the module documentation for how caches use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// The listening period.
    pub epoch: u64,
    /// Events received so far.
    pub events: u64,
}

/// Timing of the listener.
#[derive(Debug, Clone)]
pub struct FeedSettings {
    /// How often the listening connection is checked with a query. A connection that died
    /// without closing (a network partition) is noticed within `heartbeat + heartbeat_timeout`.
    pub heartbeat: Duration,
    /// How long a heartbeat may take.
    pub heartbeat_timeout: Duration,
    /// How long a connection attempt may take.
    pub connect_timeout: Duration,
    /// First wait after a failed connection attempt; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest wait between connection attempts.
    pub max_backoff: Duration,
    /// Events buffered per subscriber before it lags (and must drop everything).
    pub capacity: usize,
}

impl Default for FeedSettings {
    fn default() -> Self {
        FeedSettings {
            heartbeat: Duration::from_secs(5),
            heartbeat_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(5),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            capacity: 4096,
        }
    }
}

/// A listener task on [`INVALIDATION_CHANNEL`], reconnecting by itself.
pub struct InvalidationFeed {
    health: watch::Receiver<ChannelHealth>,
    events: broadcast::Sender<Invalidation>,
    received: Arc<AtomicU64>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl InvalidationFeed {
    /// Starts listening on the database at `url`. Returns at once; the channel is
    /// [`ChannelHealth::Down`] until the first connection is listening (see
    /// [`InvalidationFeed::wait_listening`]).
    pub fn start(url: &str, settings: FeedSettings) -> Result<InvalidationFeed, StoreError> {
        let options =
            connect_options(url, &PgSettings::default())?.application_name("latchkey-listener");
        let (health_tx, health) = watch::channel(ChannelHealth::Down);
        let (events, _) = broadcast::channel(settings.capacity.max(1));
        let received = Arc::new(AtomicU64::new(0));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(run(
            options,
            settings,
            health_tx,
            events.clone(),
            received.clone(),
            shutdown_rx,
        ));
        Ok(InvalidationFeed {
            health,
            events,
            received,
            shutdown,
            task,
        })
    }

    /// The channel's state now.
    pub fn health(&self) -> ChannelHealth {
        *self.health.borrow()
    }

    /// A receiver of health changes.
    pub fn watch_health(&self) -> watch::Receiver<ChannelHealth> {
        self.health.clone()
    }

    /// The current epoch if the channel is listening (caches may be trusted), else `None`.
    pub fn trusted_epoch(&self) -> Option<u64> {
        match self.health() {
            ChannelHealth::Listening { epoch } => Some(epoch),
            ChannelHealth::Down | ChannelHealth::Stopped => None,
        }
    }

    /// A ticket for a cache fill, or `None` when the channel is down (do not cache).
    pub fn ticket(&self) -> Option<Ticket> {
        // Read the count first: an event counted after this read makes the ticket stale,
        // which errs on the side of not caching.
        let events = self.received.load(Ordering::SeqCst);
        self.trusted_epoch().map(|epoch| Ticket { epoch, events })
    }

    /// True when no event arrived and the channel stayed up since `ticket` was taken.
    pub fn is_current(&self, ticket: &Ticket) -> bool {
        self.trusted_epoch() == Some(ticket.epoch)
            && self.received.load(Ordering::SeqCst) == ticket.events
    }

    /// Subscribes to events (including [`Invalidation::All`] when the channel is lost).
    pub fn subscribe(&self) -> broadcast::Receiver<Invalidation> {
        self.events.subscribe()
    }

    /// Waits until the channel is listening; false if `limit` passed first or it stopped.
    pub async fn wait_listening(&self, limit: Duration) -> bool {
        let mut health = self.health.clone();
        let listening = tokio::time::timeout(
            limit,
            health.wait_for(|h| matches!(h, ChannelHealth::Listening { .. })),
        )
        .await;
        matches!(listening, Ok(Ok(_)))
    }

    /// Stops listening and waits for the task to end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Why a listening period ended.
enum Ended {
    Lost(String),
    Shutdown,
}

async fn run(
    options: PgConnectOptions,
    settings: FeedSettings,
    health: watch::Sender<ChannelHealth>,
    events: broadcast::Sender<Invalidation>,
    received: Arc<AtomicU64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut epoch = 0u64;
    let mut backoff = settings.min_backoff;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let connected =
            tokio::time::timeout(settings.connect_timeout, listen(&options, &settings)).await;
        let (pool, mut listener) = match connected {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, ?backoff, "invalidation channel: cannot listen");
                if sleep_or_stop(backoff, &mut shutdown).await {
                    break;
                }
                backoff = (backoff * 2).min(settings.max_backoff);
                continue;
            }
            Err(_) => {
                tracing::warn!(
                    ?backoff,
                    "invalidation channel: connection attempt timed out"
                );
                if sleep_or_stop(backoff, &mut shutdown).await {
                    break;
                }
                backoff = (backoff * 2).min(settings.max_backoff);
                continue;
            }
        };
        backoff = settings.min_backoff;
        // LISTEN is in force from here: every commit from now on will be delivered. Anything
        // before may have been missed, which the new epoch tells caches.
        epoch += 1;
        health.send_replace(ChannelHealth::Listening { epoch });
        tracing::info!(epoch, "invalidation channel listening");
        let ended = serve(&mut listener, &settings, &events, &received, &mut shutdown).await;
        health.send_replace(ChannelHealth::Down);
        let _ = events.send(Invalidation::All);
        drop(listener);
        // Closing waits for the connection to drain; on a silently dead link that can take
        // until TCP gives up, so it happens in the background, bounded.
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(30), pool.close()).await;
        });
        match ended {
            Ended::Shutdown => break,
            Ended::Lost(why) => {
                tracing::warn!(epoch, reason = %why, "invalidation channel lost; caches distrusted")
            }
        }
    }
    health.send_replace(ChannelHealth::Stopped);
}

/// Sleeps for `wait` unless shut down first; true when shut down.
async fn sleep_or_stop(wait: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(wait) => false,
        _ = shutdown.wait_for(|stop| *stop) => true,
    };
    stopped || *shutdown.borrow()
}

/// One dedicated connection (its own pool of one, closed on loss) listening on the channel.
async fn listen(
    options: &PgConnectOptions,
    settings: &FeedSettings,
) -> Result<(PgPool, PgListener), sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(settings.connect_timeout)
        .connect_with(options.clone())
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    // We reconnect ourselves (with a new epoch); sqlx's silent reconnect would hide the gap.
    listener.eager_reconnect(false);
    listener.ignore_pool_close_event(true);
    listener.listen(INVALIDATION_CHANNEL).await?;
    Ok((pool, listener))
}

enum Step {
    Received(Result<Option<sqlx::postgres::PgNotification>, sqlx::Error>),
    Heartbeat,
    Stop,
}

async fn serve(
    listener: &mut PgListener,
    settings: &FeedSettings,
    events: &broadcast::Sender<Invalidation>,
    received: &AtomicU64,
    shutdown: &mut watch::Receiver<bool>,
) -> Ended {
    let mut heartbeat = tokio::time::interval(settings.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.tick().await;
    loop {
        // `try_recv` is cancel-safe in sqlx 0.8 (a heartbeat tick may interrupt it).
        let step = tokio::select! {
            r = listener.try_recv() => Step::Received(r),
            _ = heartbeat.tick() => Step::Heartbeat,
            _ = shutdown.wait_for(|stop| *stop) => Step::Stop,
        };
        match step {
            Step::Stop => return Ended::Shutdown,
            Step::Received(Ok(Some(notification))) => {
                match Invalidation::from_payload(notification.payload()) {
                    Some(event) => {
                        received.fetch_add(1, Ordering::SeqCst);
                        // No subscriber is fine: nobody caches anything.
                        let _ = events.send(event);
                    }
                    None => tracing::debug!(
                        payload = notification.payload(),
                        "invalidation channel: unknown payload ignored"
                    ),
                }
            }
            Step::Received(Ok(None)) => return Ended::Lost("connection closed".into()),
            Step::Received(Err(e)) => return Ended::Lost(e.to_string()),
            Step::Heartbeat => {
                let ping = tokio::time::timeout(
                    settings.heartbeat_timeout,
                    (&mut *listener).execute("SELECT 1"),
                )
                .await;
                match ping {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Ended::Lost(format!("heartbeat failed: {e}")),
                    Err(_) => return Ended::Lost("heartbeat timed out".into()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_unknown_ones_are_ignored() {
        let events = [
            Invalidation::ClientKeys("https://wallet.example/alice".into()),
            Invalidation::All,
        ];
        for event in events {
            assert_eq!(Invalidation::from_payload(&event.to_payload()), Some(event));
        }
        assert_eq!(Invalidation::from_payload("keys:"), None);
        assert_eq!(Invalidation::from_payload("future-kind:1"), None);
        // What the triggers removed by migration 0004 sent: ignored, not misread.
        assert_eq!(Invalidation::from_payload("token:abcd"), None);
        assert_eq!(Invalidation::from_payload("grant:g1"), None);
    }
}
