//! The client key resolver against a real HTTP key server: cache, single flight, refresh on an
//! unknown `kid`, size and address limits.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use latchkey_proto::keys::{generate_signing_key, Jwk, JwkSet};
use latchkey_server::client_keys::{ClientKeyResolver, KeyResolveError, KeyResolverConfig};
use latchkey_server::domain::grant::ClientKeySource;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
struct KeyServer {
    fetches: Arc<AtomicUsize>,
    keys: Arc<Mutex<Vec<Jwk>>>,
}

async fn jwks(State(server): State<KeyServer>) -> Json<JwkSet> {
    server.fetches.fetch_add(1, Ordering::SeqCst);
    // Slow enough that concurrent callers overlap.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let keys = server.keys.lock().expect("lock").clone();
    Json(JwkSet { keys })
}

async fn slow() -> String {
    tokio::time::sleep(Duration::from_secs(5)).await;
    "{\"keys\":[]}".to_string()
}

async fn huge() -> String {
    format!("{{\"keys\":[],\"pad\":\"{}\"}}", "x".repeat(200_000))
}

async fn start_key_server() -> (String, KeyServer) {
    let state = KeyServer::default();
    let router = Router::new()
        .route("/alice/jwks.json", get(jwks))
        .route("/huge/jwks.json", get(huge))
        .route("/slow/jwks.json", get(slow))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}"), state)
}

fn resolver(allow_private: bool) -> ClientKeyResolver {
    ClientKeyResolver::new(KeyResolverConfig {
        allow_private,
        min_refresh_interval: Duration::from_millis(200),
        ..KeyResolverConfig::default()
    })
    .expect("resolver")
}

#[tokio::test]
async fn concurrent_lookups_fetch_once_and_then_hit_the_cache() {
    let (base, server) = start_key_server().await;
    let key = generate_signing_key();
    server
        .keys
        .lock()
        .expect("lock")
        .push(Jwk::from_verifying_key("k1", &key.verifying_key()));
    let resolver = resolver(true);
    let client = ClientKeySource::WalletAddress(format!("{base}/alice"));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (resolver, client) = (resolver.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            resolver.key_for(&client, "k1").await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("join").expect("key"), key.verifying_key());
    }
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1, "single flight");
    resolver.key_for(&client, "k1").await.expect("cached");
    assert_eq!(
        server.fetches.load(Ordering::SeqCst),
        1,
        "served from cache"
    );
}

#[tokio::test]
async fn an_unknown_kid_refreshes_the_key_set_at_a_bounded_rate() {
    let (base, server) = start_key_server().await;
    let first = generate_signing_key();
    server
        .keys
        .lock()
        .expect("lock")
        .push(Jwk::from_verifying_key("k1", &first.verifying_key()));
    let resolver = resolver(true);
    let client = ClientKeySource::WalletAddress(format!("{base}/alice"));
    resolver.key_for(&client, "k1").await.expect("k1");

    // Unknown right after a fetch: refused without hammering the wallet.
    let err = resolver.key_for(&client, "k2").await.expect_err("unknown");
    assert!(matches!(err, KeyResolveError::UnknownKeyId(_)));
    assert_eq!(server.fetches.load(Ordering::SeqCst), 1);

    // The client publishes a new key; after the minimum interval the resolver refetches.
    let second = generate_signing_key();
    server
        .keys
        .lock()
        .expect("lock")
        .push(Jwk::from_verifying_key("k2", &second.verifying_key()));
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        resolver.key_for(&client, "k2").await.expect("k2"),
        second.verifying_key()
    );
    assert_eq!(server.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn oversized_and_unreachable_key_sets_are_refused() {
    let (base, _server) = start_key_server().await;
    let resolver = resolver(true);
    let huge = ClientKeySource::WalletAddress(format!("{base}/huge"));
    let err = resolver.key_for(&huge, "k").await.expect_err("too big");
    assert!(err.to_string().contains("larger than"), "{err}");
    let nowhere = ClientKeySource::WalletAddress("http://127.0.0.1:9/nobody".into());
    assert!(matches!(
        resolver.key_for(&nowhere, "k").await,
        Err(KeyResolveError::Unreachable(..))
    ));
}

#[tokio::test]
async fn a_wallet_that_does_not_answer_times_out() {
    let (base, _server) = start_key_server().await;
    let resolver = ClientKeyResolver::new(KeyResolverConfig {
        allow_private: true,
        fetch_timeout: Duration::from_millis(300),
        ..KeyResolverConfig::default()
    })
    .expect("resolver");
    let slow = ClientKeySource::WalletAddress(format!("{base}/slow"));
    let err = resolver.key_for(&slow, "k").await.expect_err("times out");
    assert!(matches!(err, KeyResolveError::Unreachable(..)), "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn outside_dev_mode_loopback_and_http_wallets_are_refused() {
    let (base, server) = start_key_server().await;
    let resolver = resolver(false);
    let loopback = ClientKeySource::WalletAddress(format!("{base}/alice"));
    assert!(matches!(
        resolver.key_for(&loopback, "k").await,
        Err(KeyResolveError::BadUrl(..))
    ));
    // A name that resolves to loopback is refused by the resolver too.
    let named = ClientKeySource::WalletAddress(format!(
        "https://localhost:{}/alice",
        base.rsplit(':').next().expect("port")
    ));
    let err = resolver.key_for(&named, "k").await.expect_err("refused");
    assert!(matches!(err, KeyResolveError::Unreachable(..)), "{err}");
    assert!(err.to_string().contains("no public address"), "{err}");
    assert_eq!(
        server.fetches.load(Ordering::SeqCst),
        0,
        "nothing reached the server"
    );
}
