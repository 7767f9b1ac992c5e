//! The SQLite store copies its WAL back into the database file in the background, so the
//! writer's commits do not have to (issue 7). Observable from outside: after some writes and no
//! further activity, the database file has grown by the pages the WAL held, although the
//! writer's own automatic checkpoint (4,000 pages) was never reached.

use std::time::{Duration, Instant};

use latchkey_proto::gnap::{AccessItem, Action, QuoteAccess};
use latchkey_server::domain::clock::now_ms;
use latchkey_server::domain::grant::{ClientKeySource, Finalization, Grant, GrantState};
use latchkey_server::domain::token::AccessTokenRecord;
use latchkey_server::store::sqlite::SqliteStore;
use latchkey_server::store::Store;
use latchkey_server::token_format::{new_id, TokenValue};

fn grant_and_token() -> (Grant, AccessTokenRecord) {
    let now = now_ms();
    let grant = Grant {
        id: new_id(),
        continue_id: new_id(),
        continue_token_hash: TokenValue::generate().hash(),
        client: ClientKeySource::WalletAddress("https://wallet.example/alice".into()),
        access: vec![AccessItem::Quote(QuoteAccess {
            actions: vec![Action::Create, Action::Read],
            identifier: None,
        })],
        state: GrantState::Finalized(Finalization::Issued),
        wait_secs: 5,
        created_at: now,
        last_continued_at: None,
    };
    let token = AccessTokenRecord {
        manage_id: new_id(),
        grant_id: grant.id.clone(),
        hash: TokenValue::generate().hash(),
        created_at: now,
        expires_at: now + 600_000,
        revoked_at: None,
    };
    (grant, token)
}

#[tokio::test]
async fn committed_pages_reach_the_database_file_without_a_writer_checkpoint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("latchkey.db");
    let store = SqliteStore::open(&format!("sqlite://{}", path.display()))
        .await
        .expect("open");
    // Let the checkpoint of the migrations' own pages finish first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = std::fs::metadata(&path).expect("db file").len();
    // About 300 grants: a few hundred WAL pages, far below the writer's 4,000-page backstop.
    for _ in 0..300 {
        let (grant, token) = grant_and_token();
        store
            .create_grant(&grant, Some(&token))
            .await
            .expect("create");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = std::fs::metadata(&path).expect("db file").len();
        if now > before + 8 * 4096 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the database file did not grow ({before} -> {now} bytes): nothing was checkpointed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.close().await;
}
