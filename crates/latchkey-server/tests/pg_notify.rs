//! Cross-node invalidation over LISTEN/NOTIFY: every change a node commits reaches the other
//! nodes' feeds; a feed whose connection is cut or silently frozen reports it (fail closed) and
//! comes back by itself with a new epoch. Also measures how long a revocation takes to reach
//! another node (printed; run with `--no-capture` to see it).

mod pg_support;
mod store_fixtures;

use latchkey_server::domain::clock::now_ms;
use latchkey_server::store::postgres::PostgresStore;
use latchkey_server::store::postgres_notify::{
    publish, ChannelHealth, FeedSettings, Invalidation, InvalidationFeed,
};
use latchkey_server::store::{RotateOutcome, Store};
use pg_support::{PgTestDb, TcpProxy};
use std::time::{Duration, Instant};
use store_fixtures::grant_and_token;
use tokio::sync::broadcast;

fn fast() -> FeedSettings {
    FeedSettings {
        heartbeat: Duration::from_millis(300),
        heartbeat_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(500),
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        ..FeedSettings::default()
    }
}

/// Waits for `wanted` on `events`, skipping others; panics after `limit`.
async fn expect_event(
    events: &mut broadcast::Receiver<Invalidation>,
    wanted: &Invalidation,
    limit: Duration,
) -> Instant {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(event)) if &event == wanted => return Instant::now(),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("feed closed or lagged: {e}"),
            Err(_) => panic!("no {wanted:?} within {limit:?}"),
        }
    }
}

async fn wait_health(feed: &InvalidationFeed, wanted: fn(ChannelHealth) -> bool, limit: Duration) {
    let mut health = feed.watch_health();
    let reached = tokio::time::timeout(limit, health.wait_for(|h| wanted(*h))).await;
    assert!(
        matches!(reached, Ok(Ok(_))),
        "health did not change within {limit:?}: {:?}",
        feed.health()
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_on_one_node_reach_the_others_and_latency_is_measured() {
    let db = PgTestDb::create().await;
    let node_a = PostgresStore::open(&db.url).await.expect("node a");
    let feed_b = InvalidationFeed::start(&db.url, FeedSettings::default()).expect("feed");
    assert!(feed_b.wait_listening(Duration::from_secs(10)).await);
    let mut events = feed_b.subscribe();

    // Revoke, rotate and cancel each announce what they changed.
    let (grant, token) = grant_and_token();
    node_a
        .create_grant(&grant, Some(&token))
        .await
        .expect("create");
    let mut successor = grant_and_token().1;
    successor.grant_id = grant.id.clone();
    assert_eq!(
        node_a
            .rotate_token(&token.manage_id, &successor, now_ms())
            .await
            .expect("rotate"),
        RotateOutcome::Rotated
    );
    expect_event(
        &mut events,
        &Invalidation::Token(token.hash),
        Duration::from_secs(5),
    )
    .await;
    node_a
        .cancel_grant(&grant.id, now_ms())
        .await
        .expect("cancel");
    expect_event(
        &mut events,
        &Invalidation::Grant(grant.id.clone()),
        Duration::from_secs(5),
    )
    .await;
    expect_event(
        &mut events,
        &Invalidation::Token(successor.hash),
        Duration::from_secs(5),
    )
    .await;
    publish(
        node_a.pool(),
        &Invalidation::ClientKeys("https://w.example/a".into()),
    )
    .await
    .expect("publish");
    expect_event(
        &mut events,
        &Invalidation::ClientKeys("https://w.example/a".into()),
        Duration::from_secs(5),
    )
    .await;

    // Latency: from the revoke call to the event on the other node, and from its
    // acknowledgement (the commit returned) to the event.
    const SAMPLES: usize = 300;
    let mut from_call = Vec::with_capacity(SAMPLES);
    let mut from_ack = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let (grant, token) = grant_and_token();
        node_a
            .create_grant(&grant, Some(&token))
            .await
            .expect("create");
        let called = Instant::now();
        node_a
            .revoke_token(&token.manage_id, now_ms())
            .await
            .expect("revoke");
        let acknowledged = Instant::now();
        let seen = expect_event(
            &mut events,
            &Invalidation::Token(token.hash),
            Duration::from_secs(5),
        )
        .await;
        from_call.push(seen - called);
        from_ack.push(seen.saturating_duration_since(acknowledged));
    }
    from_call.sort();
    from_ack.sort();
    eprintln!(
        "revocation -> other node's feed over {SAMPLES} revokes: from call p50 {:?} p99 {:?} \
         max {:?}; from acknowledgement p50 {:?} p99 {:?} max {:?}",
        percentile(&from_call, 0.5),
        percentile(&from_call, 0.99),
        from_call[SAMPLES - 1],
        percentile(&from_ack, 0.5),
        percentile(&from_ack, 0.99),
        from_ack[SAMPLES - 1],
    );
    assert!(percentile(&from_ack, 0.99) < Duration::from_secs(1));
    feed_b.shutdown().await;
    node_a.pool().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_channel_is_distrusted_until_it_is_back() {
    let db = PgTestDb::create().await;
    let node_a = PostgresStore::open(&db.url).await.expect("node a");
    let proxy = TcpProxy::start(vec![PgTestDb::server_addr()]).await;
    let feed = InvalidationFeed::start(&db.url_through(proxy.addr), fast()).expect("feed");
    assert!(feed.wait_listening(Duration::from_secs(10)).await);
    assert_eq!(feed.health(), ChannelHealth::Listening { epoch: 1 });
    let mut events = feed.subscribe();
    let before = feed.ticket().expect("listening: a ticket");
    assert!(feed.is_current(&before));

    proxy.cut();
    wait_health(&feed, |h| h == ChannelHealth::Down, Duration::from_secs(5)).await;
    assert_eq!(feed.trusted_epoch(), None, "fail closed");
    assert_eq!(feed.ticket(), None, "no caching while down");
    assert!(!feed.is_current(&before));
    expect_event(&mut events, &Invalidation::All, Duration::from_secs(1)).await;

    // A revoke while the channel is down is missed by the feed, which is why caches distrust
    // everything from the old epoch.
    let (grant, token) = grant_and_token();
    node_a
        .create_grant(&grant, Some(&token))
        .await
        .expect("create");
    node_a
        .revoke_token(&token.manage_id, now_ms())
        .await
        .expect("revoke");

    proxy.restore();
    wait_health(
        &feed,
        |h| h == ChannelHealth::Listening { epoch: 2 },
        Duration::from_secs(10),
    )
    .await;
    assert!(!feed.is_current(&before), "the old epoch stays untrusted");
    let after = feed.ticket().expect("listening again");
    assert_eq!(after.epoch, 2);

    let (grant, token) = grant_and_token();
    node_a
        .create_grant(&grant, Some(&token))
        .await
        .expect("create");
    node_a
        .revoke_token(&token.manage_id, now_ms())
        .await
        .expect("revoke");
    expect_event(
        &mut events,
        &Invalidation::Token(token.hash),
        Duration::from_secs(5),
    )
    .await;
    assert!(
        !feed.is_current(&after),
        "an event makes earlier tickets stale"
    );
    feed.shutdown().await;
    node_a.pool().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silently_dead_channel_is_noticed_by_the_heartbeat() {
    let db = PgTestDb::create().await;
    let proxy = TcpProxy::start(vec![PgTestDb::server_addr()]).await;
    let settings = fast();
    let feed =
        InvalidationFeed::start(&db.url_through(proxy.addr), settings.clone()).expect("feed");
    assert!(feed.wait_listening(Duration::from_secs(10)).await);

    let frozen_at = Instant::now();
    proxy.freeze();
    wait_health(&feed, |h| h == ChannelHealth::Down, Duration::from_secs(5)).await;
    let noticed = frozen_at.elapsed();
    eprintln!("frozen channel noticed after {noticed:?}");
    assert!(noticed <= settings.heartbeat + settings.heartbeat_timeout + Duration::from_secs(1));

    proxy.restore();
    wait_health(
        &feed,
        |h| matches!(h, ChannelHealth::Listening { epoch } if epoch >= 2),
        Duration::from_secs(10),
    )
    .await;
    feed.shutdown().await;
    proxy.cut();
}
