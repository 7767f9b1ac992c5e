//! Rows for tests that drive a store directly (no HTTP): an issued grant and its first token.

use latchkey_server::domain::clock::now_ms;
use latchkey_server::domain::grant::{ClientKeySource, Finalization, Grant, GrantState};
use latchkey_server::domain::token::AccessTokenRecord;
use latchkey_server::token_format::{new_id, TokenValue};

/// An issued grant (empty access list) and its first token, live for ten minutes.
pub fn grant_and_token() -> (Grant, AccessTokenRecord) {
    let now = now_ms();
    let grant = Grant {
        id: new_id(),
        continue_id: new_id(),
        continue_token_hash: TokenValue::generate().hash(),
        client: ClientKeySource::WalletAddress("https://wallet.example/alice".into()),
        access: vec![],
        state: GrantState::Finalized(Finalization::Issued),
        wait_secs: 5,
        created_at: now,
        last_continued_at: None,
    };
    let (token, _) = AccessTokenRecord::issue(&grant.id, now, 600_000);
    (grant, token)
}
