//! Criterion benchmarks of the server's hot path below HTTP: token generation and hashing (the
//! token format), and the SQLite store operations each request makes (create a grant with its
//! token, rotate a token, find a token by hash for introspection, revoke), on a real database
//! file with the server's settings (WAL, `synchronous=FULL`: each commit waits for an fsync).
//!
//! The `x16 concurrent` variants issue 16 writes at once and report the time per write: they
//! show what the store's group commit buys when requests arrive together.
//!
//! `cargo bench -p latchkey-server --bench hot_path`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use latchkey_proto::gnap::AccessItem;
use latchkey_server::domain::clock::now_ms;
use latchkey_server::domain::grant::{ClientKeySource, Grant};
use latchkey_server::domain::token::AccessTokenRecord;
use latchkey_server::store::sqlite::SqliteStore;
use latchkey_server::store::SharedStore;
use latchkey_server::token_format::{new_id, TokenHash, TokenValue};
use std::sync::Arc;
use std::time::Instant;

fn token_format(c: &mut Criterion) {
    c.bench_function("token/generate (32 bytes OsRng + base64url)", |b| {
        b.iter(TokenValue::generate)
    });
    c.bench_function(
        "token/generate access token (6 time + 32 OsRng bytes, base64url)",
        |b| b.iter(TokenValue::generate_access_token),
    );
    let value = TokenValue::generate_access_token();
    c.bench_function("token/hash (lookup key: time prefix + SHA-256)", |b| {
        b.iter(|| TokenHash::of(black_box(value.expose())))
    });
    c.bench_function("token/generate access token + hash", |b| {
        b.iter(|| TokenValue::generate_access_token().hash())
    });
    c.bench_function("token/new_id (16 bytes OsRng + base64url)", |b| {
        b.iter(new_id)
    });
}

fn access() -> Vec<AccessItem> {
    serde_json::from_value(serde_json::json!([{
        "type": "incoming-payment",
        "actions": ["create", "read", "list"],
        "identifier": "https://wallet.example/alice"
    }]))
    .expect("access item")
}

/// A grant issued at once with its first token, as `Lifecycle::request_grant` makes it.
fn new_grant() -> (Grant, AccessTokenRecord, TokenValue) {
    let now = now_ms();
    let (grant, _) = Grant::issue(
        ClientKeySource::WalletAddress("https://wallet.example/alice".into()),
        access(),
        5,
        now,
    );
    let (token, value) = AccessTokenRecord::issue(&grant.id, now, 600_000);
    (grant, token, value)
}

fn successor_of(token: &AccessTokenRecord) -> AccessTokenRecord {
    AccessTokenRecord::issue(&token.grant_id, now_ms(), 600_000).0
}

fn store_ops(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store: SharedStore = Arc::new(
        runtime
            .block_on(SqliteStore::open(&url))
            .expect("store opens"),
    );
    // Some rows first, so that lookups walk real indexes.
    let mut live = Vec::new();
    runtime.block_on(async {
        for _ in 0..2_000 {
            let (grant, token, value) = new_grant();
            store
                .create_grant(&grant, Some(&token))
                .await
                .expect("create");
            live.push((token, value));
        }
    });

    let mut group = c.benchmark_group("sqlite");
    group.sample_size(20);
    // Each measurement makes its rows untimed, then times only the store calls.
    let created = |n: u64| -> Vec<AccessTokenRecord> {
        runtime.block_on(async {
            let mut tokens = Vec::new();
            for _ in 0..n {
                let (grant, token, _) = new_grant();
                store
                    .create_grant(&grant, Some(&token))
                    .await
                    .expect("create");
                tokens.push(token);
            }
            tokens
        })
    };
    group.bench_function("create_grant (durable commit)", |b| {
        b.iter_custom(|iters| {
            let grants: Vec<_> = (0..iters).map(|_| new_grant()).collect();
            runtime.block_on(async {
                let started = Instant::now();
                for (grant, token, _) in &grants {
                    store
                        .create_grant(grant, Some(token))
                        .await
                        .expect("create");
                }
                started.elapsed()
            })
        })
    });
    group.throughput(Throughput::Elements(16));
    group.bench_function("create_grant x16 concurrent (group commit)", |b| {
        b.iter_custom(|iters| {
            let rounds: Vec<Vec<_>> = (0..iters)
                .map(|_| (0..16).map(|_| new_grant()).collect())
                .collect();
            runtime.block_on(async {
                let started = Instant::now();
                for round in rounds {
                    let mut tasks = Vec::new();
                    for (grant, token, _) in round {
                        let store = store.clone();
                        tasks.push(tokio::spawn(async move {
                            store.create_grant(&grant, Some(&token)).await
                        }));
                    }
                    for task in tasks {
                        task.await.expect("join").expect("create");
                    }
                }
                started.elapsed()
            })
        })
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("token_by_hash (introspection lookup)", |b| {
        let mut next = 0usize;
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    next = (next + 1) % live.len();
                    black_box(
                        store
                            .token_by_hash(&live[next].0.hash)
                            .await
                            .expect("lookup"),
                    );
                }
                started.elapsed()
            })
        })
    });
    group.bench_function("token_by_hash miss", |b| {
        let hash = TokenValue::generate().hash();
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    black_box(store.token_by_hash(&hash).await.expect("lookup"));
                }
                started.elapsed()
            })
        })
    });
    group.bench_function("rotate_token (durable commit)", |b| {
        b.iter_custom(|iters| {
            let tokens = created(iters);
            runtime.block_on(async {
                let started = Instant::now();
                for token in &tokens {
                    let successor = successor_of(token);
                    store
                        .rotate_token(&token.manage_id, &successor, now_ms())
                        .await
                        .expect("rotate");
                }
                started.elapsed()
            })
        })
    });
    group.bench_function("revoke_token (durable commit)", |b| {
        b.iter_custom(|iters| {
            let tokens = created(iters);
            runtime.block_on(async {
                let started = Instant::now();
                for token in &tokens {
                    store
                        .revoke_token(&token.manage_id, now_ms())
                        .await
                        .expect("revoke");
                }
                started.elapsed()
            })
        })
    });
    group.finish();
    runtime.block_on(store.close());
}

criterion_group!(benches, token_format, store_ops);
criterion_main!(benches);
