//! The SQLite store copies its WAL back into the database file in the background, so the
//! writer's commits do not have to (issue 7). Observable from outside: after some writes and no
//! further activity, the database file has grown by the pages the WAL held, although the
//! writer's own automatic checkpoint (4,000 pages) was never reached.

mod store_fixtures;

use std::time::{Duration, Instant};
use store_fixtures::grant_and_token;

use latchkey_server::store::sqlite::SqliteStore;
use latchkey_server::store::Store;

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
