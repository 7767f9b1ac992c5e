//! Conformance of [`OAuthStore`] implementations: the plain SQLite one, and the group-commit
//! one the server uses; the group-commit outcomes also on PostgreSQL.

mod pg_support;

use latchkey_server::oauth::{OAuthClient, OAuthTokenRecord};
use latchkey_server::store::postgres::PostgresStore;
use latchkey_server::store::sqlite::SqliteStore;
use latchkey_server::store::{OAuthStore, Store};
use latchkey_server::token_format::{TokenHash, TokenValue};
use std::sync::Arc;

fn token(client: &OAuthClient, created_at: i64, expires_at: i64) -> OAuthTokenRecord {
    OAuthTokenRecord {
        hash: TokenValue::generate().hash(),
        client_id: client.id.clone(),
        scopes: vec!["read".into()],
        created_at,
        expires_at,
        revoked_at: None,
    }
}

async fn conformance(store: Arc<dyn OAuthStore>) {
    // Clients: insert, read back, list.
    let (a, _) = OAuthClient::generate("a".into(), vec!["read".into(), "write".into()], 1_000);
    let (b, _) = OAuthClient::generate("b".into(), vec![], 2_000);
    store.insert_client(&a).await.expect("insert a");
    store.insert_client(&b).await.expect("insert b");
    assert_eq!(
        store.client_by_id(&a.id).await.expect("get"),
        Some(a.clone())
    );
    assert_eq!(store.client_by_id("nope").await.expect("get"), None);
    let ids: Vec<String> = store
        .list_clients()
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, [a.id.clone(), b.id.clone()]);
    assert!(store.insert_client(&a).await.is_err(), "ids are unique");

    // Tokens: insert, read back with the client, revoke only by the owner, idempotently.
    let t1 = token(&a, 10, 1_000_000);
    assert!(store
        .insert_token(&t1, &a.secret_hash)
        .await
        .expect("insert"));
    let (got, owner) = store
        .token_by_hash(&t1.hash)
        .await
        .expect("get")
        .expect("found");
    assert_eq!((got, owner.id.as_str()), (t1.clone(), a.id.as_str()));
    assert_eq!(
        store.token_by_hash(&TokenHash::of("x")).await.expect("get"),
        None
    );
    assert!(!store
        .revoke_token(&t1.hash, &b.id, 20)
        .await
        .expect("other"));
    assert!(store
        .token_by_hash(&t1.hash)
        .await
        .expect("get")
        .expect("t")
        .0
        .revoked_at
        .is_none());
    assert!(store
        .revoke_token(&t1.hash, &a.id, 20)
        .await
        .expect("owner"));
    assert!(!store
        .revoke_token(&t1.hash, &a.id, 30)
        .await
        .expect("again"));
    let revoked = store
        .token_by_hash(&t1.hash)
        .await
        .expect("get")
        .expect("t")
        .0;
    assert_eq!(
        revoked.revoked_at,
        Some(20),
        "the first revocation time stays"
    );

    // Concurrent inserts all land (group commit).
    let many: Vec<OAuthTokenRecord> = (0..100).map(|i| token(&a, i, 1_000_000)).collect();
    let joins: Vec<_> = many
        .iter()
        .cloned()
        .map(|t| {
            let store = store.clone();
            let secret = a.secret_hash;
            tokio::spawn(async move { store.insert_token(&t, &secret).await })
        })
        .collect();
    for j in joins {
        assert!(j.await.expect("join").expect("insert"));
    }

    // Disable: revokes every live token in one go, refuses new ones, is idempotent.
    assert_eq!(
        store.disable_client(&a.id, 50).await.expect("disable"),
        Some(100)
    );
    assert_eq!(
        store.disable_client(&a.id, 60).await.expect("again"),
        Some(0)
    );
    assert_eq!(
        store.disable_client("nope", 60).await.expect("unknown"),
        None
    );
    let disabled = store.client_by_id(&a.id).await.expect("get").expect("a");
    assert_eq!(disabled.disabled_at, Some(50));
    for t in &many {
        let (t, _) = store.token_by_hash(&t.hash).await.expect("get").expect("t");
        assert_eq!(t.revoked_at, Some(50));
    }
    assert!(!store
        .insert_token(&token(&a, 70, 1_000_000), &a.secret_hash)
        .await
        .expect("disabled"));
    assert!(store.enable_client(&a.id).await.expect("enable"));
    assert!(!store.enable_client("nope").await.expect("unknown"));
    assert!(store
        .insert_token(&token(&a, 70, 1_000_000), &a.secret_hash)
        .await
        .expect("enabled"));

    // Secret rotation, with and without revoking tokens.
    let live = token(&b, 80, 1_000_000);
    assert!(store
        .insert_token(&live, &b.secret_hash)
        .await
        .expect("insert"));
    let new_hash = TokenHash::of("new secret");
    assert_eq!(
        store
            .set_client_secret(&b.id, &new_hash, 90, false)
            .await
            .expect("rotate"),
        Some(0)
    );
    let rotated = store.client_by_id(&b.id).await.expect("get").expect("b");
    assert_eq!(
        (rotated.secret_hash, rotated.secret_rotated_at),
        (new_hash, Some(90))
    );
    // A request authenticated with the old secret just before the rotation gets no token
    // after it (the old secret "stops working at once").
    assert!(!store
        .insert_token(&token(&b, 91, 1_000_000), &b.secret_hash)
        .await
        .expect("old secret"));
    let under_new = token(&b, 92, 1_000_000);
    assert!(store
        .insert_token(&under_new, &new_hash)
        .await
        .expect("new secret"));
    assert_eq!(
        store
            .set_client_secret(&b.id, &new_hash, 95, true)
            .await
            .expect("rotate"),
        Some(2)
    );
    assert_eq!(
        store
            .set_client_secret("nope", &new_hash, 95, true)
            .await
            .expect("unknown"),
        None
    );

    // Expired tokens are purged; live ones stay.
    let old = token(&b, 0, 100);
    store.enable_client(&b.id).await.expect("enable");
    assert!(store.insert_token(&old, &new_hash).await.expect("insert"));
    assert!(store.delete_expired_tokens(101).await.expect("purge") >= 1);
    assert_eq!(store.token_by_hash(&old.hash).await.expect("get"), None);
    assert!(store
        .token_by_hash(&live.hash)
        .await
        .expect("get")
        .is_some());

    // Delete: the client and its tokens go.
    assert!(store.delete_client(&b.id).await.expect("delete"));
    assert!(!store.delete_client(&b.id).await.expect("again"));
    assert_eq!(store.token_by_hash(&live.hash).await.expect("get"), None);
    assert!(!store
        .insert_token(&token(&b, 1, 2), &new_hash)
        .await
        .expect("deleted client"));
}

async fn sqlite(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    conformance(Arc::new(sqlite(&dir).await)).await;
}

/// Writes and lookups arriving together (the server's store commits them as a group): each
/// gets the outcome it would have had alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_group_commit_keeps_each_outcome() {
    let dir = tempfile::tempdir().expect("tempdir");
    group_commit_keeps_each_outcome(sqlite(&dir).await).await;
}

/// The same on PostgreSQL, where a group mixing inserts and revocations applies its inserts
/// first whatever their arrival order: each write still gets the outcome it would have had
/// alone (the order itself is not observable here, since no write of the group touches a
/// token another one inserts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_group_commit_keeps_each_outcome() {
    let db = pg_support::PgTestDb::create().await;
    let store = PostgresStore::open(&db.url).await.expect("open");
    group_commit_keeps_each_outcome(store.clone()).await;
    store.close().await;
}

async fn group_commit_keeps_each_outcome(store: impl OAuthStore) {
    let (a, _) = OAuthClient::generate("a".into(), vec!["read".into()], 1_000);
    let (b, _) = OAuthClient::generate("b".into(), vec![], 1_000);
    let (off, _) = OAuthClient::generate("off".into(), vec![], 1_000);
    for c in [&a, &b, &off] {
        store.insert_client(c).await.expect("insert client");
    }
    store.disable_client(&off.id, 5).await.expect("disable");
    let (t1, t2, t3) = (
        token(&a, 10, i64::MAX),
        token(&a, 10, i64::MAX),
        token(&a, 10, i64::MAX),
    );
    for t in [&t1, &t2, &t3] {
        assert!(store.insert_token(t, &a.secret_hash).await.expect("insert"));
    }
    let (t4, t5, t6) = (
        token(&a, 20, i64::MAX),
        token(&off, 20, i64::MAX),
        token(&a, 20, i64::MAX),
    );
    let stale_secret = TokenHash::of("a secret a replaced");
    let (by_b, by_a, by_a_again, t2_by_a, t4_in, t5_in, t6_in, t1_by_b_again, found, missing) = tokio::join!(
        store.revoke_token(&t1.hash, &b.id, 30),
        store.revoke_token(&t1.hash, &a.id, 30),
        store.revoke_token(&t1.hash, &a.id, 31),
        store.revoke_token(&t2.hash, &a.id, 30),
        store.insert_token(&t4, &a.secret_hash),
        store.insert_token(&t5, &off.secret_hash),
        store.insert_token(&t6, &stale_secret),
        store.revoke_token(&t1.hash, &b.id, 32),
        store.client_by_id(&a.id),
        store.client_by_id("nope"),
    );
    assert!(!by_b.expect("b"), "another client's token is left alone");
    assert!(!t1_by_b_again.expect("b again"));
    assert_eq!(
        [by_a.expect("a"), by_a_again.expect("a again")]
            .iter()
            .filter(|r| **r)
            .count(),
        1,
        "exactly one revocation of t1 revoked it"
    );
    assert!(t2_by_a.expect("t2"));
    assert!(t4_in.expect("t4"));
    assert!(!t5_in.expect("t5"), "no token for a disabled client");
    assert!(
        !t6_in.expect("t6"),
        "no token under a secret the client no longer has"
    );
    assert_eq!(found.expect("found"), Some(a.clone()));
    assert_eq!(missing.expect("missing"), None);
    let revoked = |h| {
        let store = &store;
        async move {
            store
                .token_by_hash(h)
                .await
                .expect("get")
                .map(|(t, _)| t.revoked_at)
        }
    };
    assert_eq!(revoked(&t1.hash).await, Some(Some(30)));
    assert_eq!(revoked(&t2.hash).await, Some(Some(30)));
    assert_eq!(revoked(&t3.hash).await, Some(None));
    assert_eq!(revoked(&t4.hash).await, Some(None));
    assert_eq!(revoked(&t5.hash).await, None);
    assert_eq!(revoked(&t6.hash).await, None);
}
