//! Rows for tests that drive a store directly (no HTTP): an issued grant and its first token.

use latchkey_server::domain::clock::now_ms;
use latchkey_server::domain::grant::{ClientKeySource, Grant};
use latchkey_server::domain::token::AccessTokenRecord;

/// An issued grant (empty access list) and its first token, live for ten minutes.
pub fn grant_and_token() -> (Grant, AccessTokenRecord) {
    let now = now_ms();
    let (grant, _) = Grant::issue(
        ClientKeySource::WalletAddress("https://wallet.example/alice".into()),
        vec![],
        5,
        now,
    );
    let (token, _) = AccessTokenRecord::issue(&grant.id, now, 600_000);
    (grant, token)
}
