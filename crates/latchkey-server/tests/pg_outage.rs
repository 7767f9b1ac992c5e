//! Database outage: the PostgreSQL store is reached through a TCP proxy that the test cuts.
//! While it is cut, store calls fail with `StoreError::Unavailable` and HTTP requests get a
//! protocol-shaped 503; once it is restored, the node recovers by itself, and nothing that was
//! acknowledged before the cut is lost.

mod pg_support;
mod store_fixtures;
mod support;

use latchkey_server::config::ConfigLayer;
use latchkey_server::domain::clock::now_ms;
use latchkey_server::store::postgres::{PgSettings, PostgresStore};
use latchkey_server::store::{Store, StoreError};
use pg_support::{PgTestDb, TcpProxy};
use serde_json::json;
use std::time::{Duration, Instant};
use store_fixtures::grant_and_token;
use support::{assert_gnap_error, incoming, TestServer};

/// Retries `probe` until it succeeds, for at most `limit`; returns how long recovery took.
async fn recovers<F, Fut, T>(limit: Duration, mut probe: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let started = Instant::now();
    loop {
        match probe().await {
            Ok(_) => return started.elapsed(),
            Err(e) => {
                assert!(
                    started.elapsed() < limit,
                    "no recovery within {limit:?}: last error {e}"
                );
                assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_calls_fail_unavailable_during_an_outage_and_recover_after() {
    let db = PgTestDb::create().await;
    let proxy = TcpProxy::start(vec![PgTestDb::server_addr()]).await;
    let settings = PgSettings {
        acquire_timeout: Duration::from_secs(2),
        ..PgSettings::default()
    };
    let (store, _) = PostgresStore::open_with(&db.url_through(proxy.addr), &settings)
        .await
        .expect("open through the proxy");

    let (grant, token) = grant_and_token();
    store
        .create_grant(&grant, Some(&token))
        .await
        .expect("create");
    let (other_grant, revoked) = grant_and_token();
    store
        .create_grant(&other_grant, Some(&revoked))
        .await
        .expect("create");
    let revoked_at = now_ms();
    store
        .revoke_token(&revoked.manage_id, revoked_at)
        .await
        .expect("revoke acknowledged before the outage");

    proxy.cut();
    for _ in 0..3 {
        let started = Instant::now();
        let err = store
            .token_by_hash(&token.hash)
            .await
            .expect_err("no database");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "fails within the acquire timeout, took {:?}",
            started.elapsed()
        );
    }
    let err = store
        .revoke_token(&token.manage_id, now_ms())
        .await
        .expect_err("no database");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let err = store.ping().await.expect_err("no database");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");

    proxy.restore();
    let took = recovers(Duration::from_secs(10), || store.ping()).await;
    eprintln!("store recovered {took:?} after the database came back");

    // Acknowledged before the outage: still there. Refused during it: not applied.
    let (t, _) = store
        .token_by_hash(&revoked.hash)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(t.revoked_at, Some(revoked_at));
    let (t, _) = store
        .token_by_hash(&token.hash)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(t.revoked_at, None);
    // And writes work again.
    store
        .revoke_token(&token.manage_id, now_ms())
        .await
        .expect("revoke after recovery");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_requests_get_a_protocol_shaped_503_and_the_node_recovers() {
    let db = PgTestDb::create().await;
    let proxy = TcpProxy::start(vec![PgTestDb::server_addr()]).await;
    let url = db.url_through(proxy.addr);
    let server = TestServer::start_with(|layer| ConfigLayer {
        database: Some(url),
        ..layer
    })
    .await;
    let alice = server.wallet_client("alice");

    let grant = alice.grant(&server, incoming(&alice.wallet_address)).await;
    assert_eq!(grant.status, 200, "{}", grant.text);
    let value = grant.body["access_token"]["value"]
        .as_str()
        .expect("value")
        .to_string();
    let manage = grant.body["access_token"]["manage"]
        .as_str()
        .expect("manage")
        .to_string();
    assert_eq!(server.introspect(&value).await["active"], true);

    proxy.cut();
    // Introspection (private listener) and rotation (public, signed) both answer 503 with a
    // GNAP error body, not a bare 500 and not a hang.
    let started = Instant::now();
    let introspection = server
        .http
        .post(format!("{}/", server.server.private_url))
        .json(&json!({ "access_token": value }))
        .send()
        .await
        .expect("introspect");
    assert_eq!(introspection.status(), 503);
    let body: serde_json::Value = introspection.json().await.expect("json");
    assert_eq!(body["error"]["code"], "service_unavailable", "{body}");
    assert!(started.elapsed() < Duration::from_secs(10));

    let rotation = alice.send("POST", &manage, Some(&value), None).await;
    assert_gnap_error(&rotation, 503, "service_unavailable");

    let health = server
        .http
        .get(format!("{}/healthz", server.server.private_url))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 503);

    proxy.restore();
    let started = Instant::now();
    loop {
        let health = server
            .http
            .get(format!("{}/healthz", server.server.private_url))
            .send()
            .await
            .expect("healthz");
        if health.status() == 200 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "no recovery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The refused rotation changed nothing: the token is still live and rotates now.
    assert_eq!(server.introspect(&value).await["active"], true);
    let rotation = alice.send("POST", &manage, Some(&value), None).await;
    assert_eq!(rotation.status, 200, "{}", rotation.text);
    let new_value = rotation.body["access_token"]["value"]
        .as_str()
        .expect("value")
        .to_string();
    assert_eq!(server.introspect(&value).await["active"], false);
    assert_eq!(server.introspect(&new_value).await["active"], true);
    server.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_network_failure_times_out_as_unavailable_and_recovers() {
    let db = PgTestDb::create().await;
    let proxy = TcpProxy::start(vec![PgTestDb::server_addr()]).await;
    let settings = PgSettings {
        acquire_timeout: Duration::from_secs(1),
        operation_timeout: Duration::from_secs(2),
        ..PgSettings::default()
    };
    let (store, _) = PostgresStore::open_with(&db.url_through(proxy.addr), &settings)
        .await
        .expect("open through the proxy");
    let (grant, token) = grant_and_token();
    store
        .create_grant(&grant, Some(&token))
        .await
        .expect("create");

    // Packets vanish; no connection is closed. The server's statement_timeout cannot help; the
    // store's own deadlines must.
    proxy.freeze();
    let started = Instant::now();
    let err = store
        .rotate_token(&token.manage_id, &grant_and_token().1, now_ms())
        .await
        .expect_err("no answer");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "bounded by the operation timeout, took {:?}",
        started.elapsed()
    );

    proxy.restore();
    let took = recovers(Duration::from_secs(15), || store.token_by_hash(&token.hash)).await;
    eprintln!("store recovered {took:?} after the network came back");
    let (t, _) = store
        .token_by_hash(&token.hash)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(t.revoked_at, None, "the unanswered rotation did not happen");
    store.close().await;
    proxy.cut();
}
