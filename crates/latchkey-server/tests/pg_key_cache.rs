//! The client-key cache on a real PostgreSQL invalidation feed (`ClientKeyResolver::with_feed`):
//! it serves cached key sets while the `LISTEN` connection is up, stops trusting them when that
//! connection is killed (fail closed: every lookup refetches), caches again once the feed
//! listens again, and drops a wallet's set when another connection publishes `keys:<wallet>`.
//!
//! Fetches are counted by a tiny local JWKS server. Nothing here asserts on elapsed time: the
//! tests wait (with a deadline) for the feed or the cache to reach a state, then count fetches.

mod pg_support;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use latchkey_proto::keys::{generate_signing_key, Jwk, JwkSet};
use latchkey_server::client_keys::{ClientKeyResolver, KeyResolverConfig};
use latchkey_server::domain::grant::ClientKeySource;
use latchkey_server::store::postgres_notify::{
    publish, ChannelHealth, FeedSettings, Invalidation, InvalidationFeed,
};
use pg_support::{admin_url, PgTestDb};
use sqlx::{Connection, Executor, PgConnection, PgPool, Row};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A JWKS server for any number of wallets (`/{name}/jwks.json`), counting fetches per wallet.
#[derive(Clone, Default)]
struct KeyServer {
    keys: Arc<Mutex<HashMap<String, Vec<Jwk>>>>,
    fetches: Arc<Mutex<HashMap<String, usize>>>,
}

impl KeyServer {
    fn fetches(&self, name: &str) -> usize {
        self.fetches
            .lock()
            .expect("lock")
            .get(name)
            .copied()
            .unwrap_or(0)
    }
}

async fn jwks(State(server): State<KeyServer>, Path(name): Path<String>) -> Json<JwkSet> {
    *server
        .fetches
        .lock()
        .expect("lock")
        .entry(name.clone())
        .or_default() += 1;
    let keys = server
        .keys
        .lock()
        .expect("lock")
        .get(&name)
        .cloned()
        .unwrap_or_default();
    Json(JwkSet { keys })
}

/// One wallet address on a fresh key server: (wallet URL, key server).
struct Wallets {
    base: String,
    server: KeyServer,
}

impl Wallets {
    async fn start() -> Wallets {
        let server = KeyServer::default();
        let router = Router::new()
            .route("/{name}/jwks.json", get(jwks))
            .with_state(server.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, router).await });
        Wallets {
            base: format!("http://{addr}"),
            server,
        }
    }

    /// Publishes a fresh key `k1` for `name`; returns the client as the resolver sees it.
    fn add(&self, name: &str) -> ClientKeySource {
        let key = generate_signing_key();
        self.server.keys.lock().expect("lock").insert(
            name.to_string(),
            vec![Jwk::from_verifying_key("k1", &key.verifying_key())],
        );
        ClientKeySource::WalletAddress(self.url(name))
    }

    fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }
}

/// Short heartbeats and backoffs, so a lost channel is noticed and restored quickly.
fn fast() -> FeedSettings {
    FeedSettings {
        heartbeat: Duration::from_millis(300),
        heartbeat_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(1000),
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        ..FeedSettings::default()
    }
}

async fn listening_feed(db: &PgTestDb) -> Arc<InvalidationFeed> {
    let feed = InvalidationFeed::start(&db.url, fast()).expect("feed");
    assert!(
        feed.wait_listening(Duration::from_secs(10)).await,
        "the feed never listened: {:?}",
        feed.health()
    );
    Arc::new(feed)
}

fn resolver(feed: &Arc<InvalidationFeed>) -> ClientKeyResolver {
    ClientKeyResolver::with_feed(
        KeyResolverConfig {
            allow_private: true,
            // Long enough that only the feed can make a cached set untrusted during a test.
            ttl: Duration::from_secs(600),
            ..KeyResolverConfig::default()
        },
        feed.clone(),
    )
    .expect("resolver")
}

/// Waits (up to `limit`) until the feed's health satisfies `wanted`.
async fn wait_health(
    feed: &InvalidationFeed,
    limit: Duration,
    what: &str,
    wanted: impl Fn(ChannelHealth) -> bool,
) {
    let mut health = feed.watch_health();
    let reached = tokio::time::timeout(limit, health.wait_for(|h| wanted(*h))).await;
    assert!(
        matches!(reached, Ok(Ok(_))),
        "the feed did not become {what} within {limit:?}: {:?}",
        feed.health()
    );
}

/// Waits (up to `limit`) until `condition` holds, polling.
async fn eventually(limit: Duration, what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Kills this database's listener connection the way an operator (or a failover) would.
/// Returns how many backends were terminated.
async fn kill_listener(db: &PgTestDb) -> i64 {
    let mut admin = PgConnection::connect(&admin_url()).await.expect("admin");
    let row = sqlx::query(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) AS killed FROM pg_stat_activity \
         WHERE application_name = 'latchkey-listener' AND datname = $1",
    )
    .bind(&db.name)
    .fetch_one(&mut admin)
    .await
    .expect("terminate the listener");
    let _ = admin.close().await;
    row.get::<i64, _>("killed")
}

/// Lets (or stops letting) anyone connect to the test database; existing sessions are kept.
async fn allow_connections(db: &PgTestDb, allow: bool) {
    let mut admin = PgConnection::connect(&admin_url()).await.expect("admin");
    admin
        .execute(format!("ALTER DATABASE {} ALLOW_CONNECTIONS {allow}", db.name).as_str())
        .await
        .expect("alter database");
    let _ = admin.close().await;
}

fn epoch_of(feed: &InvalidationFeed) -> u64 {
    feed.trusted_epoch().expect("the feed is listening")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_a_live_feed_repeated_lookups_hit_the_cache() {
    let db = PgTestDb::create().await;
    let feed = listening_feed(&db).await;
    let wallets = Wallets::start().await;
    let alice = wallets.add("alice");
    let keys = resolver(&feed);

    for _ in 0..50 {
        keys.key_for(&alice, "k1").await.expect("alice's key");
    }
    assert_eq!(
        wallets.server.fetches("alice"),
        1,
        "one fetch, then the cache"
    );
    assert!(matches!(feed.health(), ChannelHealth::Listening { .. }));
    drop(keys);
    feed_shutdown(feed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_listener_makes_the_cache_untrusted_until_the_feed_listens_again() {
    let db = PgTestDb::create().await;
    let feed = listening_feed(&db).await;
    let wallets = Wallets::start().await;
    let alice = wallets.add("alice");
    let keys = resolver(&feed);

    keys.key_for(&alice, "k1").await.expect("first lookup");
    keys.key_for(&alice, "k1").await.expect("cached");
    assert_eq!(wallets.server.fetches("alice"), 1);

    // 1. The listener is killed and the feed reconnects by itself. Notifications sent in between
    //    may be lost, so the set cached in the old epoch is not trusted: the next lookup refetches.
    let before = epoch_of(&feed);
    assert_eq!(
        kill_listener(&db).await,
        1,
        "exactly one listener on this database"
    );
    wait_health(
        &feed,
        Duration::from_secs(10),
        "listening in a new epoch",
        |h| matches!(h, ChannelHealth::Listening { epoch } if epoch > before),
    )
    .await;
    keys.key_for(&alice, "k1")
        .await
        .expect("after the reconnect");
    assert_eq!(
        wallets.server.fetches("alice"),
        2,
        "a set cached before the channel was lost must be refetched"
    );
    for _ in 0..10 {
        keys.key_for(&alice, "k1").await.expect("cached again");
    }
    assert_eq!(
        wallets.server.fetches("alice"),
        2,
        "cached again in the new epoch"
    );

    // 2. The listener is killed and cannot come back (the database refuses new connections):
    //    while the channel is down, nothing is served from the cache and nothing fetched is
    //    kept; every lookup goes to the wallet (fail closed).
    allow_connections(&db, false).await;
    assert_eq!(kill_listener(&db).await, 1);
    wait_health(&feed, Duration::from_secs(10), "down", |h| {
        h == ChannelHealth::Down
    })
    .await;
    for round in 1..=5 {
        assert_eq!(feed.trusted_epoch(), None, "still down");
        keys.key_for(&alice, "k1").await.expect("lookup while down");
        assert_eq!(
            wallets.server.fetches("alice"),
            2 + round,
            "lookup {round} while the channel is down must refetch"
        );
    }
    let down_fetches = wallets.server.fetches("alice");

    // The database accepts connections again; the feed listens in a new epoch and the
    // resolver caches again.
    let before = before + 1;
    allow_connections(&db, true).await;
    wait_health(
        &feed,
        Duration::from_secs(10),
        "listening again",
        |h| matches!(h, ChannelHealth::Listening { epoch } if epoch > before),
    )
    .await;
    keys.key_for(&alice, "k1").await.expect("after recovery");
    assert_eq!(
        wallets.server.fetches("alice"),
        down_fetches + 1,
        "sets fetched while down are not trusted after recovery"
    );
    for _ in 0..10 {
        keys.key_for(&alice, "k1").await.expect("cached again");
    }
    assert_eq!(
        wallets.server.fetches("alice"),
        down_fetches + 1,
        "cached again once the feed listens"
    );
    drop(keys);
    feed_shutdown(feed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_keys_notification_from_another_connection_evicts_that_wallet_only() {
    let db = PgTestDb::create().await;
    let feed = listening_feed(&db).await;
    let wallets = Wallets::start().await;
    let alice = wallets.add("alice");
    let bob = wallets.add("bob");
    let keys = resolver(&feed);
    // Another node: its own connection to the same database.
    let other_node = PgPool::connect(&db.url).await.expect("other node's pool");

    keys.key_for(&alice, "k1").await.expect("alice");
    keys.key_for(&bob, "k1").await.expect("bob");
    assert_eq!(keys.cached_wallets(), 2);
    let epoch = epoch_of(&feed);

    // `keys:<wallet address>` evicts alice's set, and only hers.
    publish(&other_node, &Invalidation::ClientKeys(wallets.url("alice")))
        .await
        .expect("publish");
    eventually(Duration::from_secs(5), "alice's set is evicted", || {
        keys.cached_wallets() == 1
    })
    .await;
    assert_eq!(feed.trusted_epoch(), Some(epoch), "no reconnect meanwhile");
    keys.key_for(&alice, "k1").await.expect("alice again");
    keys.key_for(&bob, "k1").await.expect("bob again");
    assert_eq!(wallets.server.fetches("alice"), 2, "alice's keys refetched");
    assert_eq!(wallets.server.fetches("bob"), 1, "bob's keys still cached");
    keys.key_for(&alice, "k1")
        .await
        .expect("alice cached again");
    assert_eq!(wallets.server.fetches("alice"), 2, "and cached again");

    // The key-set URL form (`<wallet>/jwks.json`) names the same wallet.
    publish(
        &other_node,
        &Invalidation::ClientKeys(format!("{}/jwks.json", wallets.url("alice"))),
    )
    .await
    .expect("publish");
    eventually(
        Duration::from_secs(5),
        "alice's set is evicted by its jwks.json URL",
        || keys.cached_wallets() == 1,
    )
    .await;
    keys.key_for(&alice, "k1")
        .await
        .expect("alice a third time");
    assert_eq!(wallets.server.fetches("alice"), 3);
    assert_eq!(wallets.server.fetches("bob"), 1);
    assert_eq!(feed.trusted_epoch(), Some(epoch), "no reconnect meanwhile");

    other_node.close().await;
    drop(keys);
    feed_shutdown(feed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_sees_a_key_set_change_tells_the_other_nodes() {
    let db = PgTestDb::create().await;
    let feed_a = listening_feed(&db).await;
    let feed_b = listening_feed(&db).await;
    let wallets = Wallets::start().await;
    let alice = wallets.add("alice");
    let config = KeyResolverConfig {
        allow_private: true,
        ttl: Duration::from_secs(600),
        min_refresh_interval: Duration::from_millis(100),
        ..KeyResolverConfig::default()
    };
    let publisher = PgPool::connect(&db.url).await.expect("publisher pool");
    let node_a =
        ClientKeyResolver::with_feed_and_publisher(config.clone(), feed_a.clone(), Some(publisher))
            .expect("node a");
    let node_b = ClientKeyResolver::with_feed(config, feed_b.clone()).expect("node b");
    node_a.key_for(&alice, "k1").await.expect("a caches k1");
    node_b.key_for(&alice, "k1").await.expect("b caches k1");
    assert_eq!(wallets.server.fetches("alice"), 2);

    // The wallet replaces k1 by k2 (say k1 leaked). Node A meets k2, refetches, sees the change.
    let fresh = generate_signing_key();
    wallets.server.keys.lock().expect("lock").insert(
        "alice".to_string(),
        vec![Jwk::from_verifying_key("k2", &fresh.verifying_key())],
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    node_a.key_for(&alice, "k2").await.expect("a learns k2");
    // Node B drops its copy without waiting for its TTL, so the leaked k1 stops working there.
    eventually(Duration::from_secs(5), "node b evicts alice's set", || {
        node_b.cached_wallets() == 0
    })
    .await;
    assert!(
        node_b.key_for(&alice, "k1").await.is_err(),
        "k1 is no longer accepted by node b"
    );
    drop((node_a, node_b));
    feed_shutdown(feed_a).await;
    feed_shutdown(feed_b).await;
}

async fn feed_shutdown(feed: Arc<InvalidationFeed>) {
    // Once the resolver is dropped the Arc is ours alone (its eviction task holds a weak
    // reference); if not, dropping the database ends the listener anyway.
    if let Ok(feed) = Arc::try_unwrap(feed) {
        feed.shutdown().await;
    }
}
