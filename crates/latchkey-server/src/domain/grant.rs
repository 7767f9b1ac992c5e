//! The grant aggregate.
//!
//! States as Open Payments defines them: `pending` (waiting for interaction), `approved`
//! (interaction accepted, token not yet issued), `finalized` with a reason: `issued` (the token
//! was issued), `revoked` (the client cancelled the grant), `rejected` (the resource owner denied
//! it). RFC 9635 §6: after cancel "the grant is finalized and nothing more may change it".

use latchkey_proto::gnap::{AccessItem, IntrospectClient};
use latchkey_proto::keys::Jwk;
use serde::{Deserialize, Serialize};

use super::clock::Millis;
use crate::token_format::{new_id, TokenHash, TokenValue};

/// Where the grant's client keys come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKeySource {
    /// Keys at `{wallet address}/jwks.json`.
    WalletAddress(String),
    /// A key given inline in the grant request (directed identity).
    Jwk(Jwk),
}

impl ClientKeySource {
    /// The client as introspection reports it.
    pub fn into_introspect_client(self) -> IntrospectClient {
        match self {
            ClientKeySource::WalletAddress(wallet_address) => {
                IntrospectClient::WalletAddress { wallet_address }
            }
            ClientKeySource::Jwk(jwk) => IntrospectClient::Jwk { jwk },
        }
    }
}

/// Grant state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantState {
    /// Waiting for the resource owner.
    Pending,
    /// The resource owner accepted; the client may continue to get its token.
    Approved,
    /// No further change is possible, except cancel turning `issued` into `revoked`.
    Finalized(Finalization),
}

/// Why a grant was finalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finalization {
    /// The access token was issued.
    Issued,
    /// The client cancelled the grant.
    Revoked,
    /// The resource owner denied it.
    Rejected,
}

impl GrantState {
    /// Storage name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantState::Pending => "pending",
            GrantState::Approved => "approved",
            GrantState::Finalized(Finalization::Issued) => "issued",
            GrantState::Finalized(Finalization::Revoked) => "revoked",
            GrantState::Finalized(Finalization::Rejected) => "rejected",
        }
    }

    /// Parses a storage name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => GrantState::Pending,
            "approved" => GrantState::Approved,
            "issued" => GrantState::Finalized(Finalization::Issued),
            "revoked" => GrantState::Finalized(Finalization::Revoked),
            "rejected" => GrantState::Finalized(Finalization::Rejected),
            _ => return None,
        })
    }

    /// True once the client cancelled the grant: its tokens are dead for good.
    pub fn is_revoked(self) -> bool {
        self == GrantState::Finalized(Finalization::Revoked)
    }
}

/// A grant as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// Internal id, also reported by introspection as `grant`.
    pub id: String,
    /// Public id in the continue URI.
    pub continue_id: String,
    /// Hash of the continuation access token.
    pub continue_token_hash: TokenHash,
    /// Where the client's keys come from.
    pub client: ClientKeySource,
    /// The access the grant gives.
    pub access: Vec<AccessItem>,
    /// Current state.
    pub state: GrantState,
    /// Seconds a polling client must wait between continuation calls.
    pub wait_secs: u64,
    /// Creation time.
    pub created_at: Millis,
    /// Last continuation call, for `too_fast`.
    pub last_continued_at: Option<Millis>,
}

/// What a cancel request may do to a grant in a given state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelDecision {
    /// Finalize as revoked and kill every token.
    Revoke,
    /// Already revoked: answer 204 and change nothing (RFC 9635 §6 idempotence).
    AlreadyRevoked,
}

impl Grant {
    /// A new grant, issued (callers that wait for consent set [`GrantState::Pending`]), with
    /// fresh ids: the grant and the value of its continuation token, to hand to the client once.
    pub fn issue(
        client: ClientKeySource,
        access: Vec<AccessItem>,
        wait_secs: u64,
        now: Millis,
    ) -> (Self, TokenValue) {
        let continue_token = TokenValue::generate();
        let grant = Grant {
            id: new_id(),
            continue_id: new_id(),
            continue_token_hash: continue_token.hash(),
            client,
            access,
            state: GrantState::Finalized(Finalization::Issued),
            wait_secs,
            created_at: now,
            last_continued_at: None,
        };
        (grant, continue_token)
    }

    /// Cancel is allowed in every state.
    pub fn decide_cancel(&self) -> CancelDecision {
        if self.state.is_revoked() {
            CancelDecision::AlreadyRevoked
        } else {
            CancelDecision::Revoke
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_storage_names() {
        for state in [
            GrantState::Pending,
            GrantState::Approved,
            GrantState::Finalized(Finalization::Issued),
            GrantState::Finalized(Finalization::Revoked),
            GrantState::Finalized(Finalization::Rejected),
        ] {
            assert_eq!(GrantState::parse(state.as_str()), Some(state));
        }
        assert_eq!(GrantState::parse("bogus"), None);
        assert!(GrantState::Finalized(Finalization::Revoked).is_revoked());
        assert!(!GrantState::Finalized(Finalization::Issued).is_revoked());
    }
}
