//! Store conformance suite: one set of checks, run against every store implementation.
//!
//! Each check is an `async fn` over a [`SharedStore`] (or, for the multi-node races, several
//! stores opened independently on one database, as separate nodes would be; or, for durability
//! and schema checks, the test database itself). The `conformance!` macro instantiates every
//! check for SQLite (a file in a temporary folder) and for PostgreSQL (a fresh database per
//! test, `latchkey_test_<random>`, created through the `postgres` maintenance database and
//! dropped at the end, so tests run in parallel).
//!
//! PostgreSQL is reached at `LATCHKEY_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); it must be running: there is no mock and no
//! skip. Race checks repeat `LATCHKEY_RACE_ITERATIONS` times (default 200).

use latchkey_proto::gnap::{AccessItem, Action, IncomingPaymentAccess, QuoteAccess};
use latchkey_proto::keys::Jwk;
use latchkey_server::domain::clock::{now_ms, Millis};
use latchkey_server::domain::grant::{ClientKeySource, Finalization, Grant, GrantState};
use latchkey_server::domain::interaction::Interaction;
use latchkey_server::domain::token::AccessTokenRecord;
use latchkey_server::oauth::client::OAuthClient;
use latchkey_server::oauth::token::OAuthTokenRecord;
use latchkey_server::store::{self, RotateOutcome, SharedOAuthStore, SharedStore, StoreError};
use latchkey_server::token_format::{new_id, TokenHash, TokenValue};
use sqlx::{Connection, Executor};
use std::sync::Arc;
use tempfile::TempDir;
use tokio::sync::Barrier;

// ---------------------------------------------------------------------------------------------
// Test databases
// ---------------------------------------------------------------------------------------------

fn admin_url() -> String {
    std::env::var("LATCHKEY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

fn race_iterations() -> usize {
    std::env::var("LATCHKEY_RACE_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// Points a PostgreSQL URL at another database of the same server.
fn with_database(url: &str, database: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("admin URL parses");
    parsed.set_path(&format!("/{database}"));
    parsed.to_string()
}

/// A database that exists for one test.
enum TestDb {
    Sqlite { url: String, _dir: TempDir },
    Postgres { url: String, name: String },
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("latchkey.db").display());
        TestDb::Sqlite { url, _dir: dir }
    }

    async fn postgres() -> TestDb {
        let name = format!("latchkey_test_{}", hex::encode(rand::random::<[u8; 8]>()));
        let mut admin = sqlx::PgConnection::connect(&admin_url())
            .await
            .expect("PostgreSQL must run at LATCHKEY_TEST_POSTGRES_URL (default 127.0.0.1:5432)");
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create test database");
        let _ = admin.close().await;
        TestDb::Postgres {
            url: with_database(&admin_url(), &name),
            name,
        }
    }

    fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. } | TestDb::Postgres { url, .. } => url,
        }
    }

    /// Opens a store, as a node would at start.
    async fn open(&self) -> SharedStore {
        store::open(self.url()).await.expect("store opens")
    }

    /// Opens `n` independent stores on the database: `n` nodes.
    async fn nodes(&self, n: usize) -> Vec<SharedStore> {
        let mut nodes = Vec::with_capacity(n);
        for _ in 0..n {
            nodes.push(self.open().await);
        }
        nodes
    }

    /// Opens `n` independent OAuth stores (as the server opens them) on the database.
    async fn oauth_nodes(&self, n: usize) -> Vec<SharedOAuthStore> {
        let mut nodes = Vec::with_capacity(n);
        for _ in 0..n {
            nodes.push(
                store::open_stores(self.url())
                    .await
                    .expect("stores open")
                    .oauth,
            );
        }
        nodes
    }

    /// Records a migration this binary does not know, as a newer Latchkey would have.
    async fn inject_future_migration(&self) {
        let sql = "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
                   execution_time) VALUES (99990101000000, 'from a newer release', TRUE, $1, 0)";
        match self {
            TestDb::Sqlite { url, .. } => {
                let mut conn = sqlx::SqliteConnection::connect(url).await.expect("connect");
                sqlx::query(sql)
                    .bind(vec![0u8; 48])
                    .execute(&mut conn)
                    .await
                    .expect("inject");
                let _ = conn.close().await;
            }
            TestDb::Postgres { url, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
                sqlx::query(sql)
                    .bind(vec![0u8; 48])
                    .execute(&mut conn)
                    .await
                    .expect("inject");
                let _ = conn.close().await;
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let TestDb::Postgres { name, .. } = self else {
            return;
        };
        // Drop runs outside async code (and after a panic too): use a thread with its own
        // runtime. `WITH (FORCE)` ends connections a failed test may have left open.
        let name = name.clone();
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url()).await {
                    let _ = admin
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                    let _ = admin.close().await;
                }
            });
        });
        let _ = dropper.join();
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const MINUTE: Millis = 60_000;

fn wallet() -> ClientKeySource {
    ClientKeySource::WalletAddress("https://wallet.example/alice".to_string())
}

fn access() -> Vec<AccessItem> {
    vec![
        AccessItem::IncomingPayment(IncomingPaymentAccess {
            actions: vec![Action::Create, Action::Read, Action::ListAll],
            identifier: Some("https://wallet.example/alice".to_string()),
        }),
        AccessItem::Quote(QuoteAccess {
            actions: vec![Action::Create, Action::Read],
            identifier: None,
        }),
    ]
}

/// An Ed25519 public key as a grant request would give it inline.
fn ed25519_jwk(kid: &str, use_: Option<&str>) -> Jwk {
    Jwk {
        kid: kid.to_string(),
        kty: "OKP".to_string(),
        crv: "Ed25519".to_string(),
        x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".to_string(),
        alg: Some("EdDSA".to_string()),
        use_: use_.map(str::to_string),
    }
}

fn grant_with(client: ClientKeySource, state: GrantState, now: Millis) -> Grant {
    Grant {
        id: new_id(),
        continue_id: new_id(),
        continue_token_hash: TokenValue::generate().hash(),
        client,
        access: access(),
        state,
        wait_secs: 5,
        created_at: now,
        last_continued_at: None,
    }
}

fn issued_grant(now: Millis) -> Grant {
    grant_with(wallet(), GrantState::Finalized(Finalization::Issued), now)
}

fn token_for(grant: &Grant, now: Millis) -> AccessTokenRecord {
    AccessTokenRecord::issue(&grant.id, now, 10 * MINUTE).0
}

/// A grant issued at once with its first token, stored.
async fn issued(store: &SharedStore) -> (Grant, AccessTokenRecord) {
    let now = now_ms();
    let grant = issued_grant(now);
    let token = token_for(&grant, now);
    store
        .create_grant(&grant, Some(&token))
        .await
        .expect("create grant");
    (grant, token)
}

async fn lookup(store: &SharedStore, manage_id: &str) -> Option<(AccessTokenRecord, Grant)> {
    store
        .token_by_manage_id(manage_id)
        .await
        .expect("token lookup")
}

/// The token row as stored; panics if missing.
async fn stored(store: &SharedStore, manage_id: &str) -> AccessTokenRecord {
    lookup(store, manage_id).await.expect("token exists").0
}

// ---------------------------------------------------------------------------------------------
// Checks over one store
// ---------------------------------------------------------------------------------------------

async fn grant_and_token_round_trip(store: SharedStore) {
    let (grant, token) = issued(&store).await;

    let (t, g) = store
        .token_by_manage_id(&token.manage_id)
        .await
        .expect("lookup")
        .expect("found by manage id");
    assert_eq!(t, token);
    assert_eq!(g, grant);

    let (t, g) = store
        .token_by_hash(&token.hash)
        .await
        .expect("lookup")
        .expect("found by hash");
    assert_eq!(t, token);
    assert_eq!(g, grant);

    let g = store
        .grant_by_continue_id(&grant.continue_id)
        .await
        .expect("lookup")
        .expect("found by continue id");
    assert_eq!(g, grant);

    assert!(store
        .token_by_manage_id(&new_id())
        .await
        .expect("lookup")
        .is_none());
    assert!(store
        .token_by_hash(&TokenHash::of("never issued"))
        .await
        .expect("lookup")
        .is_none());
    assert!(store
        .grant_by_continue_id(&new_id())
        .await
        .expect("lookup")
        .is_none());
    // Lookups are by exact key: the grant id is not a continue id, a manage id is not a hash.
    assert!(store
        .grant_by_continue_id(&grant.id)
        .await
        .expect("lookup")
        .is_none());
    assert!(store
        .token_by_hash(&TokenHash::of(&token.manage_id))
        .await
        .expect("lookup")
        .is_none());
}

async fn jwk_client_and_tokenless_grant_round_trip(store: SharedStore) {
    let now = now_ms();
    let mut grant = grant_with(
        ClientKeySource::Jwk(ed25519_jwk("key-1", Some("sig"))),
        GrantState::Pending,
        now,
    );
    grant.last_continued_at = Some(now - 1);
    grant.wait_secs = 30;
    store.create_grant(&grant, None).await.expect("create");
    let g = store
        .grant_by_continue_id(&grant.continue_id)
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(g, grant);
}

/// Introspection's read: the token, its grant's id, state and client, and the access list as
/// the very JSON text the grant was stored with (which it serves without re-serializing).
async fn introspection_reads_token_and_grant_as_stored(store: SharedStore) {
    let (grant, token) = issued(&store).await;
    let record = store
        .introspection_by_hash(&token.hash)
        .await
        .expect("lookup")
        .expect("found by hash");
    assert_eq!(record.token, token);
    assert_eq!(record.grant_id, grant.id);
    assert_eq!(record.grant_state, grant.state);
    assert_eq!(record.client, grant.client);
    assert_eq!(
        record.access_json.get(),
        serde_json::to_string(&grant.access).expect("serialize"),
        "the access list is served as the grant's serialization"
    );
    assert_eq!(record.parsed_access().expect("parses"), grant.access);

    assert!(store
        .introspection_by_hash(&TokenHash::of("never issued"))
        .await
        .expect("lookup")
        .is_none());
    assert!(store
        .introspection_by_hash(&TokenHash::of(&token.manage_id))
        .await
        .expect("lookup")
        .is_none());

    // A JWK-held grant's client comes back whole.
    let now = now_ms();
    let jwk_grant = grant_with(
        ClientKeySource::Jwk(ed25519_jwk("key-2", None)),
        GrantState::Finalized(Finalization::Issued),
        now,
    );
    let jwk_token = token_for(&jwk_grant, now);
    store
        .create_grant(&jwk_grant, Some(&jwk_token))
        .await
        .expect("create");
    let record = store
        .introspection_by_hash(&jwk_token.hash)
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(record.client, jwk_grant.client);

    // A revoked token reads as revoked; a cancelled grant's state reads as revoked.
    let t1 = now_ms();
    store
        .revoke_token(&token.manage_id, t1)
        .await
        .expect("revoke");
    let record = store
        .introspection_by_hash(&token.hash)
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(record.token.revoked_at, Some(t1));
    assert!(!record.grant_state.is_revoked());
    store.cancel_grant(&jwk_grant.id, t1).await.expect("cancel");
    let record = store
        .introspection_by_hash(&jwk_token.hash)
        .await
        .expect("lookup")
        .expect("found");
    assert!(record.grant_state.is_revoked(), "{:?}", record.grant_state);
    assert_eq!(record.token.revoked_at, Some(t1));
}

async fn duplicate_keys_conflict_and_change_nothing(store: SharedStore) {
    let (grant, token) = issued(&store).await;
    let now = now_ms();

    // Same continue id: refused.
    let mut twin = issued_grant(now);
    twin.continue_id = grant.continue_id.clone();
    let err = store.create_grant(&twin, None).await.expect_err("conflict");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

    // A new grant whose token reuses a hash: the whole transaction is refused, grant included.
    let fresh = issued_grant(now);
    let mut clash = token_for(&fresh, now);
    clash.hash = token.hash;
    let err = store
        .create_grant(&fresh, Some(&clash))
        .await
        .expect_err("conflict");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(store
        .grant_by_continue_id(&fresh.continue_id)
        .await
        .expect("lookup")
        .is_none());
    // The original is untouched.
    assert_eq!(stored(&store, &token.manage_id).await, token);
}

async fn revoke_is_idempotent(store: SharedStore) {
    let (grant, token) = issued(&store).await;
    let (_, other) = issued(&store).await;
    let t1 = now_ms();
    store
        .revoke_token(&token.manage_id, t1)
        .await
        .expect("revoke");
    let revoked = stored(&store, &token.manage_id).await;
    assert_eq!(revoked.revoked_at, Some(t1));

    // Again, later: still fine, and the first revocation time stands.
    store
        .revoke_token(&token.manage_id, t1 + 5_000)
        .await
        .expect("revoke again");
    assert_eq!(stored(&store, &token.manage_id).await.revoked_at, Some(t1));

    // Unknown token: nothing to do, no error.
    store
        .revoke_token(&new_id(), t1)
        .await
        .expect("revoke unknown");

    // Only that token: its grant and other grants' tokens are untouched.
    let (t, g) = lookup(&store, &token.manage_id).await.expect("found");
    assert_eq!(g, grant);
    assert_eq!(t.revoked_at, Some(t1));
    assert_eq!(stored(&store, &other.manage_id).await.revoked_at, None);

    // Revoking an expired token is fine too.
    let now = now_ms();
    let expired_grant = issued_grant(now);
    let mut expired = token_for(&expired_grant, now - 20 * MINUTE);
    expired.expires_at = now - 10 * MINUTE;
    store
        .create_grant(&expired_grant, Some(&expired))
        .await
        .expect("create");
    store
        .revoke_token(&expired.manage_id, now)
        .await
        .expect("revoke expired");
    assert_eq!(
        stored(&store, &expired.manage_id).await.revoked_at,
        Some(now)
    );
}

async fn rotate_kills_old_and_issues_successor(store: SharedStore) {
    let (grant, old) = issued(&store).await;
    let now = now_ms();
    let successor = token_for(&grant, now);
    let outcome = store
        .rotate_token(&old.manage_id, &successor, now)
        .await
        .expect("rotate");
    assert_eq!(outcome, RotateOutcome::Rotated);

    let dead = stored(&store, &old.manage_id).await;
    assert_eq!(dead.revoked_at, Some(now));
    let (live, g) = store
        .token_by_hash(&successor.hash)
        .await
        .expect("lookup")
        .expect("successor stored");
    assert_eq!(live, successor);
    assert_eq!(g.id, grant.id);
    assert_eq!(g, grant);
    // The old value now maps to a dead token.
    let (by_old_hash, _) = store
        .token_by_hash(&old.hash)
        .await
        .expect("lookup")
        .expect("old still known");
    assert!(by_old_hash.revoked_at.is_some());

    // The chain goes on from the successor; the dead token cannot rotate again.
    let again = token_for(&grant, now + 1);
    assert_eq!(
        store
            .rotate_token(&old.manage_id, &again, now + 1)
            .await
            .expect("rotate dead"),
        RotateOutcome::NotLive
    );
    assert!(lookup(&store, &again.manage_id).await.is_none());
    let next = token_for(&grant, now + 2);
    assert_eq!(
        store
            .rotate_token(&successor.manage_id, &next, now + 2)
            .await
            .expect("rotate successor"),
        RotateOutcome::Rotated
    );
    assert!(stored(&store, &successor.manage_id)
        .await
        .revoked_at
        .is_some());
    assert_eq!(stored(&store, &next.manage_id).await.revoked_at, None);
}

async fn rotate_expired_unrevoked_token(store: SharedStore) {
    // DESIGN.md: "An expired but unrevoked token may be rotated."
    let now = now_ms();
    let grant = issued_grant(now - 20 * MINUTE);
    let mut old = token_for(&grant, now - 20 * MINUTE);
    old.expires_at = now - 10 * MINUTE;
    store
        .create_grant(&grant, Some(&old))
        .await
        .expect("create");
    let successor = token_for(&grant, now);
    assert_eq!(
        store
            .rotate_token(&old.manage_id, &successor, now)
            .await
            .expect("rotate"),
        RotateOutcome::Rotated
    );
    assert_eq!(
        stored(&store, &successor.manage_id).await.expires_at,
        now + 10 * MINUTE
    );
}

async fn rotate_revoked_or_unknown_is_not_live(store: SharedStore) {
    let (grant, old) = issued(&store).await;
    let now = now_ms();
    store
        .revoke_token(&old.manage_id, now)
        .await
        .expect("revoke");
    let successor = token_for(&grant, now);
    assert_eq!(
        store
            .rotate_token(&old.manage_id, &successor, now)
            .await
            .expect("rotate"),
        RotateOutcome::NotLive
    );
    assert!(lookup(&store, &successor.manage_id).await.is_none());
    assert_eq!(stored(&store, &old.manage_id).await.revoked_at, Some(now));

    let stray = token_for(&grant, now);
    assert_eq!(
        store
            .rotate_token(&new_id(), &stray, now)
            .await
            .expect("rotate unknown"),
        RotateOutcome::NotLive
    );
    assert!(lookup(&store, &stray.manage_id).await.is_none());
}

async fn cancel_kills_every_token_and_is_idempotent(store: SharedStore) {
    let (grant, first) = issued(&store).await;
    let (_, bystander) = issued(&store).await;
    let t0 = now_ms();
    // A chain of three tokens: two rotated away (revoked at t0, t0+1), one live.
    let second = token_for(&grant, t0);
    let third = token_for(&grant, t0 + 1);
    assert_eq!(
        store
            .rotate_token(&first.manage_id, &second, t0)
            .await
            .expect("rotate"),
        RotateOutcome::Rotated
    );
    assert_eq!(
        store
            .rotate_token(&second.manage_id, &third, t0 + 1)
            .await
            .expect("rotate"),
        RotateOutcome::Rotated
    );

    let t1 = t0 + 10;
    store.cancel_grant(&grant.id, t1).await.expect("cancel");
    let (t, g) = lookup(&store, &third.manage_id).await.expect("found");
    assert!(
        g.state.is_revoked(),
        "grant finalized as revoked: {:?}",
        g.state
    );
    assert_eq!(t.revoked_at, Some(t1), "the live token dies with the grant");
    // Tokens that were already dead keep their own revocation time.
    assert_eq!(stored(&store, &first.manage_id).await.revoked_at, Some(t0));
    assert_eq!(
        stored(&store, &second.manage_id).await.revoked_at,
        Some(t0 + 1)
    );
    // Other grants are untouched.
    let (b, bg) = lookup(&store, &bystander.manage_id).await.expect("found");
    assert_eq!(b.revoked_at, None);
    assert!(!bg.state.is_revoked());

    // Again: fine, nothing changes.
    store
        .cancel_grant(&grant.id, t1 + 99)
        .await
        .expect("cancel again");
    assert_eq!(stored(&store, &third.manage_id).await.revoked_at, Some(t1));
    let g = store
        .grant_by_continue_id(&grant.continue_id)
        .await
        .expect("lookup")
        .expect("found");
    assert!(g.state.is_revoked());

    // Unknown grant: nothing to do, no error.
    store
        .cancel_grant(&new_id(), t1)
        .await
        .expect("cancel unknown");
}

async fn rotate_after_cancel_is_not_live(store: SharedStore) {
    let (grant, old) = issued(&store).await;
    let now = now_ms();
    store.cancel_grant(&grant.id, now).await.expect("cancel");
    let successor = token_for(&grant, now + 1);
    assert_eq!(
        store
            .rotate_token(&old.manage_id, &successor, now + 1)
            .await
            .expect("rotate"),
        RotateOutcome::NotLive
    );
    assert!(lookup(&store, &successor.manage_id).await.is_none());
}

async fn cancel_pending_grant(store: SharedStore) {
    let now = now_ms();
    let grant = grant_with(wallet(), GrantState::Pending, now);
    store.create_grant(&grant, None).await.expect("create");
    store.cancel_grant(&grant.id, now).await.expect("cancel");
    let g = store
        .grant_by_continue_id(&grant.continue_id)
        .await
        .expect("lookup")
        .expect("found");
    assert!(g.state.is_revoked());
}

fn interaction_for(grant: &Grant, now: Millis) -> Interaction {
    Interaction {
        id: new_id(),
        nonce: new_id(),
        grant_id: grant.id.clone(),
        finish_uri: Some("https://client.example/finish".to_string()),
        client_nonce: Some("client-nonce".to_string()),
        interact_ref: None,
        session_hash: None,
        created_at: now,
        expires_at: now + 10 * MINUTE,
    }
}

async fn interactive_grant_lifecycle(store: SharedStore) {
    let now = now_ms();
    let grant = grant_with(wallet(), GrantState::Pending, now);
    let interaction = interaction_for(&grant, now);
    store
        .create_interactive_grant(&grant, &interaction)
        .await
        .expect("create interactive");
    let (i, g) = store
        .interaction_by_id(&interaction.id)
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(i, interaction);
    assert_eq!(g, grant);
    assert_eq!(
        store
            .interaction_by_grant(&grant.id)
            .await
            .expect("lookup")
            .as_ref(),
        Some(&interaction)
    );
    assert!(store
        .interaction_by_id(&new_id())
        .await
        .expect("lookup")
        .is_none());

    let session = TokenValue::generate().hash();
    store
        .bind_interaction_session(&interaction.id, &session)
        .await
        .expect("bind");
    let (i, _) = store
        .interaction_by_id(&interaction.id)
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(i.session_hash, Some(session));

    // Not approved yet: nothing to issue.
    let first = token_for(&grant, now);
    assert!(!store
        .issue_approved_grant(&grant.id, &first, now)
        .await
        .expect("issue"));
    assert!(store
        .decide_grant(&grant.id, true, now)
        .await
        .expect("decide"));
    assert!(!store
        .decide_grant(&grant.id, false, now)
        .await
        .expect("decided once"));

    // The first interaction reference wins.
    let r1 = store
        .set_interact_ref(&interaction.id, "ref-1")
        .await
        .expect("set");
    let r2 = store
        .set_interact_ref(&interaction.id, "ref-2")
        .await
        .expect("set");
    assert_eq!(r1, "ref-1");
    assert_eq!(r2, "ref-1");

    // Polling: the first touch passes, a second within `wait` is too fast.
    assert!(store
        .touch_continuation(&grant.id, now, 5_000)
        .await
        .expect("touch"));
    assert!(!store
        .touch_continuation(&grant.id, now + 1_000, 5_000)
        .await
        .expect("touch"));
    assert!(store
        .touch_continuation(&grant.id, now + 5_000, 5_000)
        .await
        .expect("touch"));

    assert!(store
        .issue_approved_grant(&grant.id, &first, now)
        .await
        .expect("issue"));
    let (t, g) = lookup(&store, &first.manage_id)
        .await
        .expect("issued token");
    assert_eq!(t, first);
    assert_eq!(g.state, GrantState::Finalized(Finalization::Issued));
    let second = token_for(&grant, now);
    assert!(!store
        .issue_approved_grant(&grant.id, &second, now)
        .await
        .expect("issue once"));
    assert!(lookup(&store, &second.manage_id).await.is_none());
}

async fn rejected_grant_issues_nothing(store: SharedStore) {
    let now = now_ms();
    let grant = grant_with(wallet(), GrantState::Pending, now);
    store
        .create_interactive_grant(&grant, &interaction_for(&grant, now))
        .await
        .expect("create");
    assert!(store
        .decide_grant(&grant.id, false, now)
        .await
        .expect("reject"));
    assert!(!store
        .decide_grant(&grant.id, true, now)
        .await
        .expect("decided"));
    let token = token_for(&grant, now);
    assert!(!store
        .issue_approved_grant(&grant.id, &token, now)
        .await
        .expect("issue"));
    let g = store
        .grant_by_continue_id(&grant.continue_id)
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(g.state, GrantState::Finalized(Finalization::Rejected));
}

const DAY: Millis = 24 * 60 * MINUTE;

/// Stores a grant with its first token, both created at `at`, the token expiring at `expires`.
async fn issued_at(store: &SharedStore, at: Millis, expires: Millis) -> (Grant, AccessTokenRecord) {
    let grant = issued_grant(at);
    let mut token = token_for(&grant, at);
    token.expires_at = expires;
    store
        .create_grant(&grant, Some(&token))
        .await
        .expect("create");
    (grant, token)
}

async fn purge_removes_only_dead_state_past_the_cutoff(store: SharedStore) {
    let now = now_ms();
    let long_ago = now - 10 * DAY;
    let cutoff = now - 7 * DAY;
    let recently = now - DAY;

    // Kept: a live token on an old grant; a token revoked recently; a token revoked long ago
    // that has not expired yet (it waits for its expiry); a grant cancelled recently; a recent
    // pending grant; an old pending grant whose interaction is still open.
    let (_, live) = issued_at(&store, long_ago, now + 10 * MINUTE).await;
    let (_, revoked_recently) = issued_at(&store, long_ago, now + 10 * MINUTE).await;
    store
        .revoke_token(&revoked_recently.manage_id, recently)
        .await
        .expect("revoke");
    let (_, revoked_unexpired) = issued_at(&store, long_ago, now + 10 * MINUTE).await;
    store
        .revoke_token(&revoked_unexpired.manage_id, long_ago)
        .await
        .expect("revoke");
    let (cancelled_recently, _) = issued_at(&store, long_ago, now + 10 * MINUTE).await;
    store
        .cancel_grant(&cancelled_recently.id, recently)
        .await
        .expect("cancel");
    let pending_recent = grant_with(wallet(), GrantState::Pending, recently);
    store
        .create_grant(&pending_recent, None)
        .await
        .expect("create");
    let pending_open = grant_with(wallet(), GrantState::Pending, long_ago);
    let mut open_interaction = interaction_for(&pending_open, long_ago);
    open_interaction.expires_at = now + MINUTE;
    store
        .create_interactive_grant(&pending_open, &open_interaction)
        .await
        .expect("create");

    // Removed: a token rotated away long ago, expired since (its grant keeps a live successor);
    // a token expired long ago (then its grant, issued and empty); a grant cancelled long ago,
    // with its token (not expired yet: it goes with its grant); an abandoned pending grant with
    // its expired interaction.
    let (rotated_grant, rotated_away) = issued_at(&store, long_ago, long_ago + 10 * MINUTE).await;
    let successor = token_for(&rotated_grant, long_ago);
    let mut successor = successor;
    successor.expires_at = now + 10 * MINUTE;
    assert_eq!(
        store
            .rotate_token(&rotated_away.manage_id, &successor, long_ago)
            .await
            .expect("rotate"),
        RotateOutcome::Rotated
    );
    let (expired_grant, expired) = issued_at(&store, long_ago, long_ago + 10 * MINUTE).await;
    let (cancelled_long_ago, cancelled_token) =
        issued_at(&store, long_ago, now + 10 * MINUTE).await;
    store
        .cancel_grant(&cancelled_long_ago.id, long_ago)
        .await
        .expect("cancel");
    let abandoned = grant_with(wallet(), GrantState::Pending, long_ago);
    let abandoned_interaction = interaction_for(&abandoned, long_ago);
    store
        .create_interactive_grant(&abandoned, &abandoned_interaction)
        .await
        .expect("create");

    let outcome = store.purge_expired(cutoff, 1000).await.expect("purge");
    assert!(!outcome.skipped);
    assert_eq!(
        outcome.tokens, 2,
        "rotated away and expired (the cancelled grant's token goes with its grant): {outcome:?}"
    );
    assert_eq!(
        outcome.grants, 3,
        "expired-empty, cancelled, abandoned: {outcome:?}"
    );

    for kept in [&live, &revoked_recently, &revoked_unexpired, &successor] {
        assert!(
            lookup(&store, &kept.manage_id).await.is_some(),
            "kept {kept:?}"
        );
    }
    for gone in [&rotated_away, &expired, &cancelled_token] {
        assert!(
            lookup(&store, &gone.manage_id).await.is_none(),
            "deleted {gone:?}"
        );
        assert!(store
            .token_by_hash(&gone.hash)
            .await
            .expect("lookup")
            .is_none());
    }
    for kept in [
        &cancelled_recently,
        &pending_recent,
        &pending_open,
        &rotated_grant,
    ] {
        assert!(
            store
                .grant_by_continue_id(&kept.continue_id)
                .await
                .expect("lookup")
                .is_some(),
            "kept grant {}",
            kept.id
        );
    }
    for gone in [&expired_grant, &cancelled_long_ago, &abandoned] {
        assert!(store
            .grant_by_continue_id(&gone.continue_id)
            .await
            .expect("lookup")
            .is_none());
    }
    assert!(store
        .interaction_by_id(&abandoned_interaction.id)
        .await
        .expect("lookup")
        .is_none());
    assert!(store
        .interaction_by_id(&open_interaction.id)
        .await
        .expect("lookup")
        .is_some());

    // Nothing left to do.
    let again = store.purge_expired(cutoff, 1000).await.expect("purge");
    assert_eq!((again.tokens, again.grants), (0, 0));
}

async fn purge_works_in_batches(store: SharedStore) {
    let now = now_ms();
    let long_ago = now - 10 * DAY;
    for _ in 0..25 {
        issued_at(&store, long_ago, long_ago + MINUTE).await;
    }
    let mut tokens = Vec::new();
    let mut grants = 0;
    loop {
        let batch = store.purge_expired(now - DAY, 10).await.expect("purge");
        assert!(batch.tokens <= 10 && batch.grants <= 10, "{batch:?}");
        tokens.push(batch.tokens);
        grants += batch.grants;
        if batch.tokens == 0 && batch.grants == 0 {
            break;
        }
    }
    assert_eq!(tokens, vec![10, 10, 5, 0]);
    assert_eq!(grants, 25);
}

async fn ping_answers(store: SharedStore) {
    store.ping().await.expect("ping");
}

/// Many introspection lookups at once (SQLite answers them from one read): each gets its own
/// token, twice-asked hashes both get it, unknown hashes get nothing, and a revocation
/// acknowledged before a lookup is seen by it.
async fn concurrent_lookups_each_get_their_own_answer(store: SharedStore) {
    let mut issued_tokens = Vec::new();
    for _ in 0..6 {
        issued_tokens.push(issued(&store).await);
    }
    store
        .revoke_token(&issued_tokens[0].1.manage_id, now_ms())
        .await
        .expect("revoke");
    for _ in 0..3 {
        let mut asks = Vec::new();
        for (i, (grant, token)) in issued_tokens.iter().chain(issued_tokens.iter()).enumerate() {
            let node = store.clone();
            let (grant, token) = (grant.clone(), token.clone());
            asks.push(tokio::spawn(async move {
                let (t, g) = node
                    .token_by_hash(&token.hash)
                    .await
                    .expect("lookup")
                    .expect("found");
                assert_eq!(t.manage_id, token.manage_id);
                assert_eq!(g, grant);
                assert_eq!(t.revoked_at.is_some(), i % 6 == 0, "ask {i}");
            }));
            let node = store.clone();
            asks.push(tokio::spawn(async move {
                let unknown = TokenHash::of(&format!("never issued {i}"));
                assert!(node
                    .token_by_hash(&unknown)
                    .await
                    .expect("lookup")
                    .is_none());
            }));
            // The same tokens by manage id, mixed into the same batches as the hash lookups.
            let node = store.clone();
            let (grant, token) = issued_tokens[i % 6].clone();
            asks.push(tokio::spawn(async move {
                let (t, g) = node
                    .token_by_manage_id(&token.manage_id)
                    .await
                    .expect("lookup")
                    .expect("found");
                assert_eq!(t.hash, token.hash);
                assert_eq!(g, grant);
                assert_eq!(t.revoked_at.is_some(), i % 6 == 0, "ask by manage id {i}");
                assert!(node
                    .token_by_manage_id(&format!("{}x", &token.manage_id[1..]))
                    .await
                    .expect("lookup")
                    .is_none());
            }));
        }
        for ask in asks {
            ask.await.expect("ask");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Races between nodes (independent stores on one database)
// ---------------------------------------------------------------------------------------------

/// N callers on three nodes rotate one token at the same instant: exactly one wins, and exactly
/// one token of the chain is live afterwards (invariant 3).
async fn concurrent_rotations_have_one_winner(nodes: Vec<SharedStore>) {
    const CALLERS: usize = 8;
    for iteration in 0..race_iterations() {
        let (grant, old) = issued(&nodes[0]).await;
        let barrier = Arc::new(Barrier::new(CALLERS));
        let mut tasks = Vec::new();
        for i in 0..CALLERS {
            let node = nodes[i % nodes.len()].clone();
            let barrier = barrier.clone();
            let old_id = old.manage_id.clone();
            let successor = token_for(&grant, now_ms());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let outcome = node
                    .rotate_token(&old_id, &successor, now_ms())
                    .await
                    .expect("rotate");
                (outcome, successor)
            }));
        }
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for task in tasks {
            let (outcome, successor) = task.await.expect("task");
            match outcome {
                RotateOutcome::Rotated => winners.push(successor),
                RotateOutcome::NotLive => losers.push(successor),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "iteration {iteration}: exactly one rotation wins"
        );
        let observer = &nodes[iteration % nodes.len()];
        assert!(stored(observer, &old.manage_id).await.revoked_at.is_some());
        assert_eq!(
            stored(observer, &winners[0].manage_id).await.revoked_at,
            None
        );
        for loser in &losers {
            assert!(
                lookup(observer, &loser.manage_id).await.is_none(),
                "iteration {iteration}: a losing successor was stored"
            );
        }
    }
}

/// Cancel on one node races a rotation on another: once both answered, no token of the grant
/// is live (invariant 4), whichever came first.
async fn cancel_racing_rotate_leaves_no_live_token(nodes: Vec<SharedStore>) {
    let mut rotated_first = 0;
    for iteration in 0..race_iterations() {
        let (grant, old) = issued(&nodes[0]).await;
        let barrier = Arc::new(Barrier::new(2));
        let canceller = {
            let node = nodes[iteration % nodes.len()].clone();
            let barrier = barrier.clone();
            let grant_id = grant.id.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                node.cancel_grant(&grant_id, now_ms())
                    .await
                    .expect("cancel");
            })
        };
        let successor = token_for(&grant, now_ms());
        let rotator = {
            let node = nodes[(iteration + 1) % nodes.len()].clone();
            let barrier = barrier.clone();
            let old_id = old.manage_id.clone();
            let successor = successor.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                node.rotate_token(&old_id, &successor, now_ms())
                    .await
                    .expect("rotate")
            })
        };
        canceller.await.expect("cancel task");
        let outcome = rotator.await.expect("rotate task");
        let observer = &nodes[(iteration + 2) % nodes.len()];
        let (old_now, g) = lookup(observer, &old.manage_id).await.expect("old exists");
        assert!(
            g.state.is_revoked(),
            "iteration {iteration}: grant cancelled"
        );
        assert!(
            old_now.revoked_at.is_some(),
            "iteration {iteration}: old token dead"
        );
        match outcome {
            RotateOutcome::Rotated => {
                rotated_first += 1;
                let s = stored(observer, &successor.manage_id).await;
                assert!(
                    s.revoked_at.is_some(),
                    "iteration {iteration}: the successor of a rotation that beat the cancel \
                     must be revoked by the cancel"
                );
            }
            RotateOutcome::NotLive => {
                assert!(
                    lookup(observer, &successor.manage_id).await.is_none(),
                    "iteration {iteration}: a refused rotation stored its successor"
                );
            }
        }
    }
    eprintln!(
        "cancel vs rotate: rotation won {rotated_first} of {} races",
        race_iterations()
    );
}

/// Revoke on one node races a rotation on another: the old token is dead afterwards, and at
/// most one token (the successor, if the rotation won) is live.
async fn revoke_racing_rotate_leaves_at_most_the_successor(nodes: Vec<SharedStore>) {
    for iteration in 0..race_iterations() {
        let (grant, old) = issued(&nodes[0]).await;
        let barrier = Arc::new(Barrier::new(2));
        let revoker = {
            let node = nodes[iteration % nodes.len()].clone();
            let barrier = barrier.clone();
            let old_id = old.manage_id.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                node.revoke_token(&old_id, now_ms()).await.expect("revoke");
            })
        };
        let successor = token_for(&grant, now_ms());
        let rotator = {
            let node = nodes[(iteration + 1) % nodes.len()].clone();
            let barrier = barrier.clone();
            let old_id = old.manage_id.clone();
            let successor = successor.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                node.rotate_token(&old_id, &successor, now_ms())
                    .await
                    .expect("rotate")
            })
        };
        revoker.await.expect("revoke task");
        let outcome = rotator.await.expect("rotate task");
        let observer = &nodes[(iteration + 2) % nodes.len()];
        assert!(stored(observer, &old.manage_id).await.revoked_at.is_some());
        match outcome {
            RotateOutcome::Rotated => {
                assert_eq!(
                    stored(observer, &successor.manage_id).await.revoked_at,
                    None
                );
            }
            RotateOutcome::NotLive => {
                assert!(lookup(observer, &successor.manage_id).await.is_none());
            }
        }
    }
}

/// A revoke acknowledged by one node is seen by every other node's very next read, while other
/// readers hammer the token (invariant 1, across nodes).
async fn revoke_is_visible_on_every_node_once_acknowledged(nodes: Vec<SharedStore>) {
    for iteration in 0..race_iterations() {
        let (_, tok) = issued(&nodes[0]).await;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Background readers on the other nodes, so the revoke races live reads.
        let mut readers = Vec::new();
        for node in nodes.iter().skip(1) {
            let node = node.clone();
            let stop = stop.clone();
            let hash = tok.hash;
            readers.push(tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    node.token_by_hash(&hash).await.expect("read");
                    tokio::task::yield_now().await;
                }
            }));
        }
        let revoker = &nodes[iteration % nodes.len()];
        revoker
            .revoke_token(&tok.manage_id, now_ms())
            .await
            .expect("revoke");
        // Acknowledged: from now on, every node must see it.
        for (n, node) in nodes.iter().enumerate() {
            let (t, _) = node
                .token_by_hash(&tok.hash)
                .await
                .expect("read")
                .expect("found");
            assert!(
                t.revoked_at.is_some(),
                "iteration {iteration}: node {n} saw an acknowledged revoke as live"
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for reader in readers {
            reader.await.expect("reader");
        }
    }
}

/// An approved grant being issued while it is cancelled: no live token afterwards.
async fn cancel_racing_issue_leaves_no_live_token(nodes: Vec<SharedStore>) {
    for iteration in 0..race_iterations() {
        let now = now_ms();
        let grant = grant_with(wallet(), GrantState::Pending, now);
        nodes[0]
            .create_interactive_grant(&grant, &interaction_for(&grant, now))
            .await
            .expect("create");
        assert!(nodes[0]
            .decide_grant(&grant.id, true, now)
            .await
            .expect("approve"));
        let barrier = Arc::new(Barrier::new(2));
        let canceller = {
            let node = nodes[iteration % nodes.len()].clone();
            let barrier = barrier.clone();
            let grant_id = grant.id.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                node.cancel_grant(&grant_id, now_ms())
                    .await
                    .expect("cancel");
            })
        };
        let first = token_for(&grant, now);
        let issuer = {
            let node = nodes[(iteration + 1) % nodes.len()].clone();
            let barrier = barrier.clone();
            let grant_id = grant.id.clone();
            let first = first.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                node.issue_approved_grant(&grant_id, &first, now_ms())
                    .await
                    .expect("issue")
            })
        };
        canceller.await.expect("cancel task");
        let issued = issuer.await.expect("issue task");
        let observer = &nodes[(iteration + 2) % nodes.len()];
        if issued {
            assert!(
                stored(observer, &first.manage_id)
                    .await
                    .revoked_at
                    .is_some(),
                "iteration {iteration}: a token issued before the cancel survived it"
            );
        } else {
            assert!(lookup(observer, &first.manage_id).await.is_none());
        }
    }
}

/// The janitor on one node, with the most aggressive cutoff (now), while other nodes rotate and
/// cancel: no call fails (no deadlock), and live tokens survive every batch.
async fn purge_racing_the_lifecycle_keeps_live_state(nodes: Vec<SharedStore>) {
    let rounds = (race_iterations() / 4).max(1);
    for iteration in 0..rounds {
        let (grant, first) = issued(&nodes[0]).await;
        let (doomed, doomed_token) = issued(&nodes[0]).await;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let purger = {
            let node = nodes[2].clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut batches = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || batches == 0 {
                    let batch = node.purge_expired(now_ms(), 50).await.expect("purge");
                    assert!(!batch.skipped, "only one janitor here");
                    batches += 1;
                }
                batches
            })
        };
        let canceller = {
            let node = nodes[(iteration + 1) % 2].clone();
            let id = doomed.id.clone();
            tokio::spawn(async move { node.cancel_grant(&id, now_ms()).await.expect("cancel") })
        };
        let mut current = first;
        for _ in 0..5 {
            let successor = token_for(&grant, now_ms());
            let node = &nodes[iteration % 2];
            let outcome = node
                .rotate_token(&current.manage_id, &successor, now_ms())
                .await
                .expect("rotate while the janitor runs");
            assert_eq!(outcome, RotateOutcome::Rotated, "iteration {iteration}");
            current = successor;
        }
        canceller.await.expect("cancel task");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        purger.await.expect("purger");
        let (live, g) = lookup(&nodes[2], &current.manage_id)
            .await
            .expect("the live token survives the janitor");
        assert_eq!(live.revoked_at, None);
        assert!(!g.state.is_revoked());
        // The cancelled grant's token is dead, or gone: never live.
        if let Some((t, _)) = lookup(&nodes[2], &doomed_token.manage_id).await {
            assert!(t.revoked_at.is_some());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// OAuth clients and tokens (the store the server uses, from `store::open_stores`)
// ---------------------------------------------------------------------------------------------

fn oauth_client(now: Millis) -> OAuthClient {
    OAuthClient::generate(
        "Partner app".to_string(),
        vec!["payments:read".to_string(), "payments:write".to_string()],
        now,
    )
    .0
}

fn oauth_token(client: &OAuthClient, now: Millis) -> OAuthTokenRecord {
    OAuthTokenRecord {
        hash: TokenValue::generate().hash(),
        client_id: client.id.clone(),
        scopes: vec!["payments:read".to_string()],
        created_at: now,
        expires_at: now + 60 * MINUTE,
        revoked_at: None,
    }
}

async fn oauth_token_state(
    nodes: &[SharedOAuthStore],
    hash: &TokenHash,
) -> Option<(OAuthTokenRecord, OAuthClient)> {
    nodes[0].token_by_hash(hash).await.expect("lookup")
}

/// Concurrent client lookups, one of them for an id the database may refuse (a NUL byte:
/// PostgreSQL has no NUL in text): coalesced into one read or not, every other lookup still
/// gets its own client, and the odd one gets no client or an error of its own.
async fn oauth_one_bad_lookup_fails_alone(nodes: Vec<SharedOAuthStore>) {
    let store = &nodes[0];
    let client = oauth_client(now_ms());
    store.insert_client(&client).await.expect("insert");
    for _ in 0..5 {
        let mut asks = Vec::new();
        for i in 0..24 {
            let node = store.clone();
            let client = client.clone();
            asks.push(tokio::spawn(async move {
                if i % 8 == 3 {
                    let odd = node.client_by_id("no\0body").await;
                    assert!(!matches!(odd, Ok(Some(_))), "{odd:?}");
                } else {
                    let found = node.client_by_id(&client.id).await.expect("lookup");
                    assert_eq!(found, Some(client));
                }
            }));
        }
        for ask in asks {
            ask.await.expect("ask");
        }
    }
}

/// Many OAuth token lookups at once (PostgreSQL coalesces them into batch reads): each gets
/// its own token with its own client, a hash asked twice gets it both times, unknown hashes get
/// nothing, and a revocation acknowledged before the lookups is seen by them.
async fn oauth_concurrent_token_lookups_each_get_their_own_answer(nodes: Vec<SharedOAuthStore>) {
    let store = &nodes[0];
    let now = now_ms();
    let clients = [oauth_client(now), oauth_client(now + 1)];
    for client in &clients {
        store.insert_client(client).await.expect("insert client");
    }
    let tokens: Vec<OAuthTokenRecord> = (0..6).map(|i| oauth_token(&clients[i % 2], now)).collect();
    for (i, token) in tokens.iter().enumerate() {
        assert!(store
            .insert_token(token, &clients[i % 2].secret_hash)
            .await
            .expect("insert token"));
    }
    assert!(store
        .revoke_token(&tokens[0].hash, &clients[0].id, now)
        .await
        .expect("revoke"));
    for _ in 0..3 {
        let mut asks = Vec::new();
        for (i, token) in tokens.iter().chain(tokens.iter()).enumerate() {
            let node = store.clone();
            let (token, owner) = (token.clone(), clients[i % 2].clone());
            asks.push(tokio::spawn(async move {
                let (t, c) = node
                    .token_by_hash(&token.hash)
                    .await
                    .expect("lookup")
                    .expect("found");
                assert_eq!(t.hash, token.hash, "ask {i}");
                assert_eq!(c, owner, "ask {i}");
                assert_eq!(t.revoked_at.is_some(), i % 6 == 0, "ask {i}");
            }));
            let node = store.clone();
            asks.push(tokio::spawn(async move {
                let unknown = TokenHash::of(&format!("never issued {i}"));
                assert!(node
                    .token_by_hash(&unknown)
                    .await
                    .expect("lookup")
                    .is_none());
            }));
        }
        for ask in asks {
            ask.await.expect("ask");
        }
    }
}

async fn oauth_clients_and_tokens_round_trip(nodes: Vec<SharedOAuthStore>) {
    let store = &nodes[0];
    let now = now_ms();
    let first = oauth_client(now);
    let mut second = oauth_client(now + 1);
    second.name = "Other app".to_string();
    store.insert_client(&first).await.expect("insert");
    store.insert_client(&second).await.expect("insert");
    assert_eq!(
        store.client_by_id(&first.id).await.expect("lookup"),
        Some(first.clone())
    );
    assert!(store
        .client_by_id(&new_id())
        .await
        .expect("lookup")
        .is_none());
    assert_eq!(
        store.list_clients().await.expect("list"),
        vec![first.clone(), second.clone()],
        "oldest first"
    );
    let err = store.insert_client(&first).await.expect_err("duplicate id");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");

    let token = oauth_token(&first, now);
    assert!(store
        .insert_token(&token, &first.secret_hash)
        .await
        .expect("insert token"));
    let (t, c) = store
        .token_by_hash(&token.hash)
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(t, token);
    assert_eq!(c, first);
    assert!(token.is_active(&c, now));

    // A token of another client is not revoked (RFC 7009 §2.1); its own client revokes it,
    // once.
    assert!(!store
        .revoke_token(&token.hash, &second.id, now)
        .await
        .expect("revoke"));
    assert_eq!(
        oauth_token_state(&nodes, &token.hash)
            .await
            .expect("found")
            .0
            .revoked_at,
        None
    );
    assert!(store
        .revoke_token(&token.hash, &first.id, now)
        .await
        .expect("revoke"));
    assert!(!store
        .revoke_token(&token.hash, &first.id, now + 1)
        .await
        .expect("again"));
    assert_eq!(
        oauth_token_state(&nodes, &token.hash)
            .await
            .expect("found")
            .0
            .revoked_at,
        Some(now)
    );
    // Unknown client: no token.
    let mut stray = oauth_token(&first, now);
    stray.client_id = new_id();
    assert!(!store
        .insert_token(&stray, &first.secret_hash)
        .await
        .expect("insert"));
}

async fn oauth_disable_enable_secret_and_delete(nodes: Vec<SharedOAuthStore>) {
    let store = &nodes[0];
    let now = now_ms();
    let client = oauth_client(now);
    store.insert_client(&client).await.expect("insert");
    let tokens: Vec<OAuthTokenRecord> = (0..3).map(|_| oauth_token(&client, now)).collect();
    for t in &tokens {
        assert!(store
            .insert_token(t, &client.secret_hash)
            .await
            .expect("insert"));
    }

    // Disabling revokes every token and stops new ones; enabling does not revive them.
    assert_eq!(
        store
            .disable_client(&client.id, now)
            .await
            .expect("disable"),
        Some(3)
    );
    assert_eq!(
        store
            .disable_client(&client.id, now + 5)
            .await
            .expect("again"),
        Some(0)
    );
    let c = store
        .client_by_id(&client.id)
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(c.disabled_at, Some(now), "first disable time stands");
    assert!(!store
        .insert_token(&oauth_token(&client, now), &client.secret_hash)
        .await
        .expect("insert"));
    assert!(store.enable_client(&client.id).await.expect("enable"));
    for t in &tokens {
        let (t, c) = oauth_token_state(&nodes, &t.hash).await.expect("found");
        assert_eq!(t.revoked_at, Some(now));
        assert!(!t.is_active(&c, now));
    }
    let fresh = oauth_token(&client, now);
    assert!(store
        .insert_token(&fresh, &client.secret_hash)
        .await
        .expect("insert after enable"));

    // A new secret, keeping tokens, then revoking them.
    let new_secret = TokenValue::generate().hash();
    assert_eq!(
        store
            .set_client_secret(&client.id, &new_secret, now + 10, false)
            .await
            .expect("rotate secret"),
        Some(0)
    );
    let c = store
        .client_by_id(&client.id)
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(c.secret_hash, new_secret);
    assert_eq!(c.secret_rotated_at, Some(now + 10));
    // The old secret stops working at once, also for a request authenticated with it just
    // before: its token is refused, on any node.
    for node in &nodes {
        assert!(!node
            .insert_token(&oauth_token(&client, now), &client.secret_hash)
            .await
            .expect("insert under the old secret"));
    }
    let under_new = oauth_token(&client, now);
    assert!(nodes[1]
        .insert_token(&under_new, &new_secret)
        .await
        .expect("insert under the new secret"));
    assert_eq!(
        oauth_token_state(&nodes, &fresh.hash)
            .await
            .expect("found")
            .0
            .revoked_at,
        None
    );
    assert_eq!(
        store
            .set_client_secret(&client.id, &new_secret, now + 20, true)
            .await
            .expect("rotate secret"),
        Some(2)
    );
    assert!(oauth_token_state(&nodes, &fresh.hash)
        .await
        .expect("found")
        .0
        .revoked_at
        .is_some());

    // Unknown clients.
    assert_eq!(
        store.disable_client(&new_id(), now).await.expect("disable"),
        None
    );
    assert!(!store.enable_client(&new_id()).await.expect("enable"));
    assert_eq!(
        store
            .set_client_secret(&new_id(), &new_secret, now, true)
            .await
            .expect("secret"),
        None
    );

    // Deleting takes the tokens along.
    assert!(store.delete_client(&client.id).await.expect("delete"));
    assert!(!store.delete_client(&client.id).await.expect("delete again"));
    assert!(store
        .client_by_id(&client.id)
        .await
        .expect("lookup")
        .is_none());
    for t in &tokens {
        assert!(oauth_token_state(&nodes, &t.hash).await.is_none());
    }
}

async fn oauth_expired_tokens_are_deleted(nodes: Vec<SharedOAuthStore>) {
    let store = &nodes[0];
    let now = now_ms();
    let client = oauth_client(now);
    store.insert_client(&client).await.expect("insert");
    let mut expired = oauth_token(&client, now - 2 * DAY);
    expired.expires_at = now - DAY;
    let live = oauth_token(&client, now);
    for t in [&expired, &live] {
        assert!(store
            .insert_token(t, &client.secret_hash)
            .await
            .expect("insert"));
    }
    assert_eq!(store.delete_expired_tokens(now).await.expect("delete"), 1);
    assert!(oauth_token_state(&nodes, &expired.hash).await.is_none());
    assert!(oauth_token_state(&nodes, &live.hash).await.is_some());
}

/// `count` tasks that each, once `barrier` lets them go, insert a new token of `client` under
/// `secret` on the first or second node in turn; each answers whether it was issued, and the
/// token.
fn spawn_issuers(
    nodes: &[SharedOAuthStore],
    client: &OAuthClient,
    secret: TokenHash,
    barrier: &Arc<Barrier>,
    count: usize,
) -> Vec<tokio::task::JoinHandle<(bool, OAuthTokenRecord)>> {
    (0..count)
        .map(|i| {
            let (node, barrier) = (nodes[i % 2].clone(), barrier.clone());
            let token = oauth_token(client, now_ms());
            tokio::spawn(async move {
                barrier.wait().await;
                let issued = node.insert_token(&token, &secret).await.expect("insert");
                (issued, token)
            })
        })
        .collect()
}

/// Tokens issued on two nodes while a third disables the client: once all have answered, no
/// issued token is unrevoked, and enabling the client again revives none of them.
async fn oauth_disable_racing_issue_leaves_no_live_token(nodes: Vec<SharedOAuthStore>) {
    const ISSUERS: usize = 4;
    for iteration in 0..race_iterations() {
        let now = now_ms();
        let client = oauth_client(now);
        nodes[0].insert_client(&client).await.expect("insert");
        let barrier = Arc::new(Barrier::new(ISSUERS + 1));
        let issuers = spawn_issuers(&nodes, &client, client.secret_hash, &barrier, ISSUERS);
        let disabler = {
            let node = nodes[2].clone();
            let barrier = barrier.clone();
            let id = client.id.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                node.disable_client(&id, now_ms()).await.expect("disable")
            })
        };
        disabler.await.expect("disable task");
        let mut issued = Vec::new();
        for issuer in issuers {
            let (ok, token) = issuer.await.expect("issue task");
            if ok {
                issued.push(token);
            }
        }
        assert!(nodes[1].enable_client(&client.id).await.expect("enable"));
        for token in &issued {
            let (t, c) = nodes[(iteration + 1) % nodes.len()]
                .token_by_hash(&token.hash)
                .await
                .expect("lookup")
                .expect("issued tokens are stored");
            assert!(
                t.revoked_at.is_some() && !t.is_active(&c, now_ms()),
                "iteration {iteration}: a token issued around the disable survived it"
            );
        }
    }
}

/// Tokens issued under the old secret on two nodes while a third replaces the secret and
/// revokes the client's tokens: once all have answered, none of those tokens is live. A token
/// inserted before the rotation is revoked by it; one that arrives after it is refused, though
/// its request was authenticated (with the old secret) before the rotation.
async fn oauth_secret_rotation_racing_issue_leaves_no_live_token(nodes: Vec<SharedOAuthStore>) {
    const RACERS: usize = 4;
    for iteration in 0..race_iterations() {
        let now = now_ms();
        let client = oauth_client(now);
        let old_secret = client.secret_hash;
        nodes[0].insert_client(&client).await.expect("insert");
        let barrier = Arc::new(Barrier::new(RACERS + 1));
        let racers = spawn_issuers(&nodes, &client, old_secret, &barrier, RACERS);
        let rotator = {
            let node = nodes[2].clone();
            let barrier = barrier.clone();
            let id = client.id.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                node.set_client_secret(&id, &TokenValue::generate().hash(), now_ms(), true)
                    .await
                    .expect("rotate secret")
            })
        };
        assert!(rotator.await.expect("rotate task").is_some());
        for racer in racers {
            let (issued, token) = racer.await.expect("issue task");
            let state = nodes[(iteration + 1) % nodes.len()]
                .token_by_hash(&token.hash)
                .await
                .expect("lookup");
            match state {
                Some((t, c)) => {
                    assert!(issued, "iteration {iteration}: a refused token was stored");
                    assert!(
                        t.revoked_at.is_some() && !t.is_active(&c, now_ms()),
                        "iteration {iteration}: a token issued under the replaced secret is live"
                    );
                }
                None => assert!(!issued, "iteration {iteration}: an issued token is missing"),
            }
        }
        // Requests authenticated before the rotation whose tokens come after it: refused.
        for node in &nodes[..2] {
            assert!(
                !node
                    .insert_token(&oauth_token(&client, now), &old_secret)
                    .await
                    .expect("late insert"),
                "iteration {iteration}: a token issued after the rotation under the old secret"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checks over the database itself
// ---------------------------------------------------------------------------------------------

/// Invariant 2 (as far as a closed store shows it): acknowledged writes are there after the
/// store is closed and opened again.
async fn acknowledged_changes_survive_reopen(db: &TestDb) {
    let store = db.open().await;
    let (grant, old) = issued(&store).await;
    let (cancelled, doomed) = issued(&store).await;
    let (_, revoked) = issued(&store).await;
    let now = now_ms();
    let successor = token_for(&grant, now);
    assert_eq!(
        store
            .rotate_token(&old.manage_id, &successor, now)
            .await
            .expect("rotate"),
        RotateOutcome::Rotated
    );
    store
        .cancel_grant(&cancelled.id, now)
        .await
        .expect("cancel");
    store
        .revoke_token(&revoked.manage_id, now)
        .await
        .expect("revoke");
    store.close().await;
    drop(store);

    let store = db.open().await;
    assert_eq!(stored(&store, &old.manage_id).await.revoked_at, Some(now));
    assert_eq!(stored(&store, &successor.manage_id).await, successor);
    let (t, g) = lookup(&store, &doomed.manage_id).await.expect("found");
    assert_eq!(t.revoked_at, Some(now));
    assert!(g.state.is_revoked());
    assert_eq!(
        stored(&store, &revoked.manage_id).await.revoked_at,
        Some(now)
    );
    store.close().await;
}

/// `migrate` applies everything once, then nothing; opening a migrated database changes nothing.
async fn migrate_reports_what_it_did(db: &TestDb) {
    let first = store::migrate(db.url()).await.expect("migrate");
    assert!(
        !first.applied.is_empty(),
        "a fresh database gets every migration"
    );
    assert_eq!(first.already_applied, 0);
    assert!(first.to_string().contains("applied"), "{first}");
    let latest = first.latest.expect("a version");
    assert_eq!(first.applied.last().map(|m| m.version), Some(latest));

    let second = store::migrate(db.url()).await.expect("migrate again");
    assert!(second.applied.is_empty());
    assert_eq!(second.already_applied, first.applied.len());
    assert_eq!(second.latest, Some(latest));
    assert!(second.to_string().contains("up to date"), "{second}");

    let store = db.open().await;
    store.ping().await.expect("usable");
    store.close().await;
}

/// A database migrated by a newer Latchkey is refused, by `open` and by `migrate`, clearly.
async fn newer_schema_is_refused(db: &TestDb) {
    let store = db.open().await;
    let (_, tok) = issued(&store).await;
    store.close().await;
    drop(store);
    db.inject_future_migration().await;

    for result in [
        store::open(db.url()).await.map(|_| ()),
        store::migrate(db.url()).await.map(|_| ()),
    ] {
        let err = result.expect_err("a newer schema must be refused");
        let text = err.to_string();
        assert!(matches!(err, StoreError::Open(_)), "{err:?}");
        assert!(text.contains("newer"), "message says why: {text}");
        assert!(
            text.contains("99990101000000"),
            "message names the migration: {text}"
        );
    }

    // Refusing changed nothing: with the unknown row gone, the data is all there.
    match db {
        TestDb::Sqlite { url, .. } => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.expect("connect");
            conn.execute("DELETE FROM _sqlx_migrations WHERE version = 99990101000000")
                .await
                .expect("delete");
            let _ = conn.close().await;
        }
        TestDb::Postgres { url, .. } => {
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
            conn.execute("DELETE FROM _sqlx_migrations WHERE version = 99990101000000")
                .await
                .expect("delete");
            let _ = conn.close().await;
        }
    }
    let store = db.open().await;
    assert_eq!(stored(&store, &tok.manage_id).await, tok);
    store.close().await;
}

/// Several nodes starting at once on a fresh database: one migrates, all open. (PostgreSQL
/// only: an SQLite file belongs to one node, and sqlx's SQLite migrator takes no lock.)
async fn concurrent_opens_migrate_once(db: &TestDb) {
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = db.url().to_string();
        tasks.push(tokio::spawn(async move { store::open(&url).await }));
    }
    for task in tasks {
        let store = task.await.expect("task").expect("every node opens");
        store.ping().await.expect("ping");
        store.close().await;
    }
    let report = store::migrate(db.url()).await.expect("migrate");
    assert!(report.applied.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Instantiation for every store
// ---------------------------------------------------------------------------------------------

/// Instantiates each check for SQLite and PostgreSQL. `store:` checks get one store, `nodes:`
/// checks three independent stores on one database, `oauth:` checks three independent OAuth
/// stores (as the server opens them), `db:` checks the test database.
macro_rules! conformance {
    (
        store: [$($store_check:ident),* $(,)?],
        nodes: [$($nodes_check:ident),* $(,)?],
        oauth: [$($oauth_check:ident),* $(,)?],
        db: [$($db_check:ident),* $(,)?] $(,)?
    ) => {
        conformance!(@backend sqlite, TestDb::sqlite,
            store: [$($store_check),*], nodes: [$($nodes_check),*],
            oauth: [$($oauth_check),*], db: [$($db_check),*]);
        conformance!(@backend postgres, TestDb::postgres,
            store: [$($store_check),*], nodes: [$($nodes_check),*],
            oauth: [$($oauth_check),*], db: [$($db_check),*]);
    };
    (@backend $backend:ident, $make:path,
        store: [$($store_check:ident),*], nodes: [$($nodes_check:ident),*],
        oauth: [$($oauth_check:ident),*], db: [$($db_check:ident),*]) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $store_check() {
                    let db = $make().await;
                    let store = db.open().await;
                    super::$store_check(store.clone()).await;
                    store.close().await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $nodes_check() {
                    let db = $make().await;
                    let nodes = db.nodes(3).await;
                    super::$nodes_check(nodes.clone()).await;
                    for node in nodes {
                        node.close().await;
                    }
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $oauth_check() {
                    let db = $make().await;
                    super::$oauth_check(db.oauth_nodes(3).await).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $db_check() {
                    let db = $make().await;
                    super::$db_check(&db).await;
                }
            )*
        }
    };
}

conformance! {
    store: [
        grant_and_token_round_trip,
        jwk_client_and_tokenless_grant_round_trip,
        introspection_reads_token_and_grant_as_stored,
        duplicate_keys_conflict_and_change_nothing,
        revoke_is_idempotent,
        rotate_kills_old_and_issues_successor,
        rotate_expired_unrevoked_token,
        rotate_revoked_or_unknown_is_not_live,
        cancel_kills_every_token_and_is_idempotent,
        rotate_after_cancel_is_not_live,
        cancel_pending_grant,
        interactive_grant_lifecycle,
        rejected_grant_issues_nothing,
        purge_removes_only_dead_state_past_the_cutoff,
        purge_works_in_batches,
        ping_answers,
        concurrent_lookups_each_get_their_own_answer,
    ],
    nodes: [
        concurrent_rotations_have_one_winner,
        cancel_racing_rotate_leaves_no_live_token,
        revoke_racing_rotate_leaves_at_most_the_successor,
        revoke_is_visible_on_every_node_once_acknowledged,
        cancel_racing_issue_leaves_no_live_token,
        purge_racing_the_lifecycle_keeps_live_state,
    ],
    oauth: [
        oauth_clients_and_tokens_round_trip,
        oauth_disable_enable_secret_and_delete,
        oauth_expired_tokens_are_deleted,
        oauth_disable_racing_issue_leaves_no_live_token,
        oauth_secret_rotation_racing_issue_leaves_no_live_token,
        oauth_one_bad_lookup_fails_alone,
        oauth_concurrent_token_lookups_each_get_their_own_answer,
    ],
    db: [
        acknowledged_changes_survive_reopen,
        migrate_reports_what_it_did,
        newer_schema_is_refused,
    ],
}

/// Writes that arrive together share one group and runs of same-kind writes share a
/// statement; each write must still get the outcome it would have had alone, in arrival
/// order: one successor per old token, a rotation queued behind its grant's cancel finds
/// the grant cancelled, a rotation of a successor made earlier in the group finds it.
/// `gate` is polled (and so queued) first: a write that keeps the writer busy, so that the
/// others gather behind it into one group.
async fn one_group_keeps_each_outcome_in_order(
    store: SharedStore,
    gate: impl std::future::Future<Output = ()>,
) {
    let (g1, a) = issued(&store).await;
    let (g2, c) = issued(&store).await;
    let (g3, e) = issued(&store).await;
    let (g4, f) = issued(&store).await;
    let now = now_ms();
    let (b1, b2, d, e2) = (
        token_for(&g1, now),
        token_for(&g1, now),
        token_for(&g2, now),
        token_for(&g3, now),
    );
    let b1_next = token_for(&g1, now);
    let f2 = token_for(&g4, now);
    let g5 = issued_grant(now);
    let g5_token = token_for(&g5, now);
    let (_, r1, r2, r3, _, r4, r5, _, _, _, _, r6) = tokio::join!(
        gate,
        store.rotate_token(&a.manage_id, &b1, now),
        store.rotate_token(&a.manage_id, &b2, now),
        store.rotate_token(&b1.manage_id, &b1_next, now),
        store.cancel_grant(&g2.id, now),
        store.rotate_token(&c.manage_id, &d, now),
        store.rotate_token(&e.manage_id, &e2, now),
        store.revoke_token(&f.manage_id, now),
        store.revoke_token(&f.manage_id, now + 5),
        store.cancel_grant(&g4.id, now + 7),
        store.create_grant(&g5, Some(&g5_token)),
        store.rotate_token(&f.manage_id, &f2, now),
    );
    assert_eq!(r1.expect("r1"), RotateOutcome::Rotated);
    assert_eq!(
        r2.expect("r2"),
        RotateOutcome::NotLive,
        "one successor per token"
    );
    assert_eq!(
        r3.expect("r3"),
        RotateOutcome::Rotated,
        "a fresh successor rotates"
    );
    assert_eq!(
        r4.expect("r4"),
        RotateOutcome::NotLive,
        "grant cancelled first"
    );
    assert_eq!(r5.expect("r5"), RotateOutcome::Rotated);
    assert_eq!(r6.expect("r6"), RotateOutcome::NotLive);
    assert!(lookup(&store, &b2.manage_id).await.is_none());
    assert!(lookup(&store, &d.manage_id).await.is_none());
    assert_eq!(stored(&store, &b1.manage_id).await.revoked_at, Some(now));
    assert_eq!(stored(&store, &b1_next.manage_id).await.revoked_at, None);
    assert_eq!(stored(&store, &f.manage_id).await.revoked_at, Some(now));
    assert_eq!(stored(&store, &c.manage_id).await.revoked_at, Some(now));
    assert_eq!(stored(&store, &g5_token.manage_id).await.revoked_at, None);
    assert_eq!(stored(&store, &e2.manage_id).await.revoked_at, None);
}

/// A group with a write that fails (a grant whose id is taken, a successor of another grant)
/// is replayed write by write: the bad writes get their errors, every other write its own
/// outcome, as if each had been alone. Twice: a mixed group (one transaction) and a group of
/// grant creations only (one statement). Only PostgreSQL refuses a successor of another grant
/// (`cross_grant_refused`); SQLite takes the successor's grant as given.
async fn one_failed_write_fails_alone(
    store: SharedStore,
    gate: impl std::future::Future<Output = ()>,
    cross_grant_refused: bool,
) {
    let (g1, a) = issued(&store).await;
    let (g2, c) = issued(&store).await;
    let now = now_ms();
    let b = token_for(&g1, now);
    let wrong_grant = token_for(&g1, now);
    let fresh = issued_grant(now);
    let fresh_token = token_for(&fresh, now);
    let (_, rotated, taken, cross, revoked, created) = tokio::join!(
        gate,
        store.rotate_token(&a.manage_id, &b, now),
        store.create_grant(&g1, None),
        store.rotate_token(&c.manage_id, &wrong_grant, now),
        store.revoke_token(&b.manage_id, now + 1),
        store.create_grant(&fresh, Some(&fresh_token)),
    );
    assert_eq!(rotated.expect("rotate"), RotateOutcome::Rotated);
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    if cross_grant_refused {
        assert!(matches!(cross, Err(StoreError::Conflict(_))), "{cross:?}");
        assert_eq!(stored(&store, &c.manage_id).await.revoked_at, None);
        assert!(lookup(&store, &wrong_grant.manage_id).await.is_none());
    } else {
        cross.expect("cross-grant rotation");
    }
    revoked.expect("revoke");
    created.expect("create");
    assert_eq!(stored(&store, &b.manage_id).await.revoked_at, Some(now + 1));
    assert_eq!(
        stored(&store, &fresh_token.manage_id).await.revoked_at,
        None
    );
    assert_eq!(lookup(&store, &a.manage_id).await.expect("a").1.id, g1.id);
    assert_eq!(lookup(&store, &c.manage_id).await.expect("c").1.id, g2.id);

    let (first, second) = (issued_grant(now), issued_grant(now));
    let (ok1, dup, ok2) = tokio::join!(
        store.create_grant(&first, None),
        store.create_grant(&first, None),
        store.create_grant(&second, None),
    );
    ok1.expect("first");
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    ok2.expect("second");
}

mod sqlite_only {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_failed_write_fails_alone() {
        let db = TestDb::sqlite().await;
        let store = db.open().await;
        super::one_failed_write_fails_alone(store, async {}, false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_group_keeps_each_outcome_in_order() {
        let db = TestDb::sqlite().await;
        let store = db.open().await;
        super::one_group_keeps_each_outcome_in_order(store, async {}).await;
    }

    /// An in-memory database is refused with a reason, not opened as several empty databases.
    #[tokio::test]
    async fn in_memory_database_is_refused() {
        for url in ["sqlite::memory:", "sqlite://file:x?mode=memory"] {
            match store::open(url).await {
                Err(StoreError::Open(message)) => {
                    assert!(message.contains("in-memory"), "{url}: {message}")
                }
                Err(other) => panic!("{url}: {other}"),
                Ok(_) => panic!("{url} opened"),
            }
        }
    }

    /// The writer thread waits for a write lock another connection holds (here another
    /// process's, as the `oauth-client` command beside a running server would hold it), instead
    /// of failing with "database is locked".
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn hot_writes_wait_for_another_connections_lock() {
        let db = TestDb::sqlite().await;
        let store = db.open().await;
        let mut other = sqlx::SqliteConnection::connect(db.url())
            .await
            .expect("connect");
        other
            .execute("BEGIN IMMEDIATE")
            .await
            .expect("take the lock");
        // `issued` fails the test if the write fails instead of waiting for the lock.
        let ((_, token), ()) = tokio::join!(issued(&store), async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            other.execute("COMMIT").await.expect("release the lock");
        });
        assert_eq!(stored(&store, &token.manage_id).await, token);
    }

    /// Hot-path writes (on the writer thread) and the other writes (on the sqlx writer
    /// connection) run on two connections to one database at once: every one of them succeeds,
    /// each waiting for the other's write lock when it finds it taken.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn hot_and_other_writes_interleave() {
        let db = TestDb::sqlite().await;
        let store::Stores { gnap: store, oauth } =
            store::open_stores(db.url()).await.expect("open");
        let client = oauth_client(now_ms());
        oauth.insert_client(&client).await.expect("client");
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..40 {
            let (store, oauth, client) = (store.clone(), oauth.clone(), client.clone());
            tasks.spawn(async move {
                let now = now_ms();
                // Hot path: issue, rotate, an OAuth token.
                let (grant, token) = issued(&store).await;
                let successor = token_for(&grant, now);
                let rotated = store
                    .rotate_token(&token.manage_id, &successor, now)
                    .await
                    .expect("rotate");
                assert_eq!(rotated, RotateOutcome::Rotated);
                let inserted = oauth
                    .insert_token(&oauth_token(&client, now), &client.secret_hash)
                    .await
                    .expect("oauth token");
                assert!(inserted);
                // The others: an interactive grant approved, a purge, a client re-enabled.
                let pending = grant_with(wallet(), GrantState::Pending, now);
                store
                    .create_interactive_grant(&pending, &interaction_for(&pending, now))
                    .await
                    .expect("interactive grant");
                assert!(store
                    .decide_grant(&pending.id, i % 2 == 0, now)
                    .await
                    .expect("decide"));
                store.purge_expired(now - 1_000, 100).await.expect("purge");
                assert!(oauth.enable_client(&client.id).await.expect("enable"));
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("every write succeeded");
        }
    }
}

mod postgres_only {
    use super::*;

    /// Keeps `store`'s writer busy until about 700 ms from now, so that writes queued meanwhile
    /// gather into one group: another session holds a grant row, and the returned future (to
    /// be polled before the writes) rotates a token of that grant, which waits for the row.
    /// The returned handle finishes once the row is released.
    async fn hold_the_writer(
        db: &TestDb,
        store: &SharedStore,
    ) -> (
        impl std::future::Future<Output = ()>,
        tokio::task::JoinHandle<()>,
    ) {
        let (held, token) = issued(store).await;
        let (locked, is_locked) = tokio::sync::oneshot::channel();
        let (url, held_id) = (db.url().to_string(), held.id.clone());
        let release = tokio::spawn(async move {
            let mut other = sqlx::PgConnection::connect(&url).await.expect("connect");
            let mut tx = other.begin().await.expect("begin");
            sqlx::query("SELECT 1 FROM grants WHERE id = $1 FOR UPDATE")
                .bind(&held_id)
                .execute(&mut *tx)
                .await
                .expect("lock");
            let _ = locked.send(());
            tokio::time::sleep(std::time::Duration::from_millis(700)).await;
            tx.commit().await.expect("release");
            let _ = other.close().await;
        });
        is_locked.await.expect("locked");
        let successor = token_for(&held, now_ms());
        let store = store.clone();
        let gate = async move {
            let rotated = store
                .rotate_token(&token.manage_id, &successor, now_ms())
                .await
                .expect("gate");
            assert_eq!(rotated, RotateOutcome::Rotated);
        };
        (gate, release)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_group_keeps_each_outcome_in_order() {
        let db = TestDb::postgres().await;
        let store = db.open().await;
        let (gate, release) = hold_the_writer(&db, &store).await;
        super::one_group_keeps_each_outcome_in_order(store.clone(), gate).await;
        release.await.expect("released");
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_failed_write_fails_alone() {
        let db = TestDb::postgres().await;
        let store = db.open().await;
        let (gate, release) = hold_the_writer(&db, &store).await;
        super::one_failed_write_fails_alone(store.clone(), gate, true).await;
        release.await.expect("released");
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_opens_migrate_once() {
        let db = TestDb::postgres().await;
        super::concurrent_opens_migrate_once(&db).await;
    }

    /// A group that is one run of rotations, one of them with a successor of another grant
    /// (sent alone, outside a transaction block): that one fails, and the others keep the
    /// outcome they would have had alone. The run's function must change nothing when it
    /// reports the stray successor, or the replays would find their tokens already rotated.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_run_of_rotations_with_a_stray_successor_keeps_the_other_outcomes() {
        let db = TestDb::postgres().await;
        let store = db.open().await;
        let (g1, a) = issued(&store).await;
        let (_, c) = issued(&store).await;
        let (g3, d) = issued(&store).await;
        let now = now_ms();
        let (b, stray, e) = (
            token_for(&g1, now),
            token_for(&g1, now),
            token_for(&g3, now),
        );
        let (gate, release) = hold_the_writer(&db, &store).await;
        let (_, first, cross, last) = tokio::join!(
            gate,
            store.rotate_token(&a.manage_id, &b, now),
            store.rotate_token(&c.manage_id, &stray, now),
            store.rotate_token(&d.manage_id, &e, now),
        );
        release.await.expect("released");
        assert_eq!(first.expect("first rotation"), RotateOutcome::Rotated);
        assert!(matches!(cross, Err(StoreError::Conflict(_))), "{cross:?}");
        assert_eq!(last.expect("last rotation"), RotateOutcome::Rotated);
        assert_eq!(stored(&store, &b.manage_id).await.revoked_at, None);
        assert_eq!(stored(&store, &e.manage_id).await.revoked_at, None);
        assert_eq!(stored(&store, &c.manage_id).await.revoked_at, None);
        assert!(lookup(&store, &stray.manage_id).await.is_none());
        store.close().await;
    }

    /// A session of its own on `db`, and its backend's process id.
    async fn session(db: &TestDb) -> (sqlx::PgConnection, i32) {
        let mut conn = sqlx::PgConnection::connect(db.url())
            .await
            .expect("connect");
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .expect("pid");
        (conn, pid)
    }

    /// Returns once some session of `db` waits for a lock that the session `holder` holds;
    /// panics after ten seconds.
    async fn waits_for(db: &TestDb, holder: i32) {
        sessions_wait_for(db, holder, 1).await;
    }

    /// Returns once `sessions` sessions of `db` wait for locks that the session `holder`
    /// holds; panics after ten seconds.
    async fn sessions_wait_for(db: &TestDb, holder: i32, sessions: i64) {
        let (mut observer, _) = session(db).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
            )
            .bind(holder)
            .fetch_one(&mut observer)
            .await
            .expect("pg_stat_activity");
            if waiting >= sessions {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no session waited for the holder's lock within ten seconds"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Commits the `holder` session's transaction `tx` once a session of `db` waits for its
    /// lock, checking first that `waiter` (the write that should wait) has not finished.
    async fn commit_once_waited_on<T>(
        db: &TestDb,
        holder: i32,
        tx: sqlx::Transaction<'_, sqlx::Postgres>,
        waiter: &tokio::task::JoinHandle<T>,
        what: &str,
    ) {
        waits_for(db, holder).await;
        assert!(!waiter.is_finished(), "{what} must wait for the grant row");
        tx.commit().await.expect("commit");
    }

    /// Another session (a secret rotation on another node, played by hand) has replaced a
    /// client's secret and not committed yet. An OAuth token insert under the old secret,
    /// sent meanwhile on its own (a write alone), waits for the client's row and, once the
    /// rotation commits, inserts nothing: its locking read sees the row's newest version. Then
    /// the same check in a group's statement: with both OAuth write lanes held up (their
    /// inserts wait for another client's row), a stale-secret insert and a good one queue and
    /// make one group, in which the stale one is refused and the good one inserted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn an_oauth_insert_waiting_for_a_secret_rotation_sees_the_new_secret() {
        let db = TestDb::postgres().await;
        let oauth = db.oauth_nodes(1).await.remove(0);
        let now = now_ms();
        let (client, blocker) = (oauth_client(now), oauth_client(now));
        for c in [&client, &blocker] {
            oauth.insert_client(c).await.expect("client");
        }
        let old_secret = client.secret_hash;
        let insert = |client: &OAuthClient, secret: TokenHash| {
            let (oauth, token) = (oauth.clone(), oauth_token(client, now));
            tokio::spawn(async move { oauth.insert_token(&token, &secret).await })
        };

        let (mut other, holder) = session(&db).await;
        let mut tx = other.begin().await.expect("begin");
        sqlx::query("UPDATE oauth_clients SET secret_hash = $2 WHERE id = $1")
            .bind(&client.id)
            .bind(TokenValue::generate().hash().as_bytes().to_vec())
            .execute(&mut *tx)
            .await
            .expect("replace the secret");
        let waiting = insert(&client, old_secret);
        commit_once_waited_on(&db, holder, tx, &waiting, "the insert").await;
        assert!(
            !waiting.await.expect("insert task").expect("insert"),
            "a token was issued under a secret replaced while the insert waited"
        );

        let mut tx = other.begin().await.expect("begin");
        sqlx::query("SELECT 1 FROM oauth_clients WHERE id = $1 FOR UPDATE")
            .bind(&blocker.id)
            .execute(&mut *tx)
            .await
            .expect("hold the other client's row");
        // One at a time, so that each is a group of its own and holds a lane.
        let first_held = insert(&blocker, blocker.secret_hash);
        waits_for(&db, holder).await;
        let held = [first_held, insert(&blocker, blocker.secret_hash)];
        sessions_wait_for(&db, holder, 2).await;
        let (stale, good) = (
            insert(&client, old_secret),
            insert(&blocker, blocker.secret_hash),
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(
            !stale.is_finished() && !good.is_finished(),
            "with both lanes held, the two writes wait in the queue"
        );
        tx.commit().await.expect("release the other client");
        let _ = other.close().await;
        for h in held {
            assert!(h.await.expect("held task").expect("held insert"));
        }
        assert!(good.await.expect("good task").expect("good insert"));
        assert!(
            !stale.await.expect("stale task").expect("stale insert"),
            "a group issued a token under a replaced secret"
        );
    }

    /// Another session (a rotation on another node, played by hand) holds a grant's row and
    /// inserts a live token of that grant. A cancel of the grant sent meanwhile waits for the
    /// row, and once the other session commits it must revoke that token too: its token sweep
    /// runs with a snapshot taken after it got the lock (the snapshot rule of
    /// `store/postgres_group.rs`, here in the function of migration 0006 that a cancel alone
    /// calls). Deterministic, unlike the race of `cancel_racing_rotate_leaves_no_live_token`,
    /// whose window is a fraction of a millisecond: the other session commits only once the
    /// cancel is seen waiting for its lock.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_cancel_waiting_for_its_grant_revokes_what_the_holder_committed() {
        let db = TestDb::postgres().await;
        let store = db.open().await;
        let (grant, first) = issued(&store).await;
        let late = token_for(&grant, now_ms());
        let (mut other, holder) = session(&db).await;
        let mut tx = other.begin().await.expect("begin");
        sqlx::query("SELECT 1 FROM grants WHERE id = $1 FOR NO KEY UPDATE")
            .bind(&grant.id)
            .execute(&mut *tx)
            .await
            .expect("lock the grant");
        sqlx::query(
            "INSERT INTO access_tokens (manage_id, grant_id, hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&late.manage_id)
        .bind(&grant.id)
        .bind(late.hash.as_bytes().to_vec())
        .bind(late.created_at)
        .bind(late.expires_at)
        .execute(&mut *tx)
        .await
        .expect("insert a token while holding the grant");
        let cancel = {
            let (store, grant_id) = (store.clone(), grant.id.clone());
            tokio::spawn(async move { store.cancel_grant(&grant_id, now_ms()).await })
        };
        commit_once_waited_on(&db, holder, tx, &cancel, "the cancel").await;
        let _ = other.close().await;
        cancel.await.expect("cancel task").expect("cancel");
        for token in [&first, &late] {
            let (now, g) = lookup(&store, &token.manage_id).await.expect("token kept");
            assert!(g.state.is_revoked(), "the grant is cancelled");
            assert!(
                now.revoked_at.is_some(),
                "a token committed while the cancel waited is still live"
            );
        }
        store.close().await;
    }

    /// Another session cancels a grant by hand and holds its row uncommitted. A rotation of a
    /// token of that grant sent meanwhile waits, then must answer `NotLive` and store nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_rotation_waiting_for_its_grant_sees_the_cancel_it_waited_for() {
        let db = TestDb::postgres().await;
        let store = db.open().await;
        let (grant, token) = issued(&store).await;
        let (mut other, holder) = session(&db).await;
        let mut tx = other.begin().await.expect("begin");
        sqlx::query("UPDATE grants SET state = 'revoked', finalized_at = $2 WHERE id = $1")
            .bind(&grant.id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .expect("cancel by hand");
        let successor = token_for(&grant, now_ms());
        let rotation = {
            let (store, old, successor) =
                (store.clone(), token.manage_id.clone(), successor.clone());
            tokio::spawn(async move { store.rotate_token(&old, &successor, now_ms()).await })
        };
        commit_once_waited_on(&db, holder, tx, &rotation, "the rotation").await;
        let _ = other.close().await;
        let outcome = rotation.await.expect("rotation task").expect("rotate");
        assert_eq!(outcome, RotateOutcome::NotLive);
        assert!(
            lookup(&store, &successor.manage_id).await.is_none(),
            "a rotation of a cancelled grant stored its successor"
        );
        store.close().await;
    }

    /// One node at a time: while another session holds the janitor's advisory lock, a batch
    /// does nothing and says so.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn purge_skips_while_another_node_holds_the_lock() {
        let db = TestDb::postgres().await;
        let store = db.open().await;
        let long_ago = now_ms() - 10 * DAY;
        issued_at(&store, long_ago, long_ago + MINUTE).await;

        let mut other = sqlx::PgConnection::connect(db.url())
            .await
            .expect("connect");
        let mut tx = other.begin().await.expect("begin");
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(store::purge::LOCK_KEY)
            .execute(&mut *tx)
            .await
            .expect("lock");
        let batch = store.purge_expired(now_ms(), 100).await.expect("purge");
        assert!(batch.skipped);
        assert_eq!((batch.tokens, batch.grants), (0, 0));
        tx.commit().await.expect("release");
        let batch = store.purge_expired(now_ms(), 100).await.expect("purge");
        assert!(!batch.skipped);
        assert_eq!((batch.tokens, batch.grants), (1, 1));
        let _ = other.close().await;
        store.close().await;
    }
}
