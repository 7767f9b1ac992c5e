//! Cross-node invalidation over LISTEN/NOTIFY: every event a node publishes reaches the other
//! nodes' feeds, and row writes publish nothing (migration 0004); a feed whose connection is cut
//! or silently frozen reports it (fail closed) and comes back by itself with a new epoch. Also
//! measures how long an event takes to reach another node (printed; run with `--no-capture`).

mod pg_support;
mod store_fixtures;

use latchkey_server::domain::clock::now_ms;
use latchkey_server::store::postgres::{PostgresStore, INVALIDATION_CHANNEL};
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
async fn published_events_reach_the_other_nodes_and_row_writes_send_none() {
    let db = PgTestDb::create().await;
    let node_a = PostgresStore::open(&db.url).await.expect("node a");
    let feed_b = InvalidationFeed::start(&db.url, FeedSettings::default()).expect("feed");
    assert!(feed_b.wait_listening(Duration::from_secs(10)).await);
    let mut events = feed_b.subscribe();
    // A raw listener too: the feed drops payloads it does not know, this one sees everything.
    let mut raw = sqlx::postgres::PgListener::connect(&db.url)
        .await
        .expect("raw listener");
    raw.listen(INVALIDATION_CHANNEL).await.expect("listen");

    // Create, rotate, revoke and cancel notify nothing (migration 0004): notifications arrive
    // in commit order, so the first event after them must be the marker published last.
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
    node_a
        .revoke_token(&successor.manage_id, now_ms())
        .await
        .expect("revoke");
    node_a
        .cancel_grant(&grant.id, now_ms())
        .await
        .expect("cancel");
    let marker = Invalidation::ClientKeys("https://w.example/marker".into());
    publish(node_a.pool(), &marker).await.expect("publish");
    let first = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event within 5 s")
        .expect("the feed is open");
    assert_eq!(first, marker, "row writes sent an event before the marker");
    let first_raw = tokio::time::timeout(Duration::from_secs(5), raw.recv())
        .await
        .expect("a notification within 5 s")
        .expect("the raw listener is open");
    assert_eq!(
        first_raw.payload(),
        marker.to_payload(),
        "row writes notified the channel before the marker"
    );

    // Latency: from the publish call on one node to the event on the other, and from its
    // acknowledgement to the event.
    const SAMPLES: usize = 300;
    let mut from_call = Vec::with_capacity(SAMPLES);
    let mut from_ack = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let event = Invalidation::ClientKeys(format!("https://w.example/{i}"));
        let called = Instant::now();
        publish(node_a.pool(), &event).await.expect("publish");
        let acknowledged = Instant::now();
        let seen = expect_event(&mut events, &event, Duration::from_secs(5)).await;
        from_call.push(seen - called);
        from_ack.push(seen.saturating_duration_since(acknowledged));
    }
    from_call.sort();
    from_ack.sort();
    eprintln!(
        "published event -> other node's feed over {SAMPLES} events: from call p50 {:?} p99 \
         {:?} max {:?}; from acknowledgement p50 {:?} p99 {:?} max {:?}",
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

    // An event published while the channel is down is missed by the feed, which is why caches
    // distrust everything from the old epoch.
    let missed = Invalidation::ClientKeys("https://w.example/missed".into());
    publish(node_a.pool(), &missed).await.expect("publish");

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

    let heard = Invalidation::ClientKeys("https://w.example/heard".into());
    publish(node_a.pool(), &heard).await.expect("publish");
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("the event published after the restore arrives")
            .expect("the feed is open");
        assert_ne!(event, missed, "an event sent while down cannot arrive");
        if event == heard {
            break;
        }
    }
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
