//! The interaction aggregate: a resource owner's consent to a pending grant.
//!
//! The client sends the user to `{public}/interact/{id}/{nonce}`; the consent page (built in, or
//! an identity provider) records a decision; `/interact/{id}/{nonce}/finish` sends the browser to
//! the client's finish URI with `hash` and `interact_ref` (or `result=grant_rejected`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::clock::Millis;
use super::grant::{Finalization, GrantState};
use crate::token_format::TokenHash;

/// An interaction as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interaction {
    /// Public id, in the interaction URLs.
    pub id: String,
    /// Server nonce: in the URLs, returned as `interact.finish`, an input of the hash.
    pub nonce: String,
    /// The pending grant.
    pub grant_id: String,
    /// Where to send the browser at the end (`interact.finish.uri`), if the client gave one.
    pub finish_uri: Option<String>,
    /// The client's nonce (`interact.finish.nonce`).
    pub client_nonce: Option<String>,
    /// The reference handed to the client at finish, to be presented on continuation.
    pub interact_ref: Option<String>,
    /// Hash of the browser session cookie bound at interaction start.
    pub session_hash: Option<TokenHash>,
    /// Creation time.
    pub created_at: Millis,
    /// After this, the interaction can no longer be started or decided.
    pub expires_at: Millis,
}

/// The interaction state the identity-provider API reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InteractionState {
    /// Awaiting the resource owner.
    Pending,
    /// The resource owner approved.
    Approved,
    /// The resource owner denied (or the grant was cancelled).
    Denied,
}

impl InteractionState {
    /// From the grant's state.
    pub fn of(grant: GrantState) -> Self {
        match grant {
            GrantState::Pending => InteractionState::Pending,
            GrantState::Approved | GrantState::Finalized(Finalization::Issued) => {
                InteractionState::Approved
            }
            GrantState::Finalized(Finalization::Rejected | Finalization::Revoked) => {
                InteractionState::Denied
            }
        }
    }

    /// `PENDING`, `APPROVED`, `DENIED`.
    pub fn as_str(self) -> &'static str {
        match self {
            InteractionState::Pending => "PENDING",
            InteractionState::Approved => "APPROVED",
            InteractionState::Denied => "DENIED",
        }
    }
}

impl Interaction {
    /// True once the interaction's lifetime is over.
    pub fn is_expired(&self, now: Millis) -> bool {
        now >= self.expires_at
    }
}

/// RFC 9635 §4.2.3 interaction hash: "the SHA-256 hash of the client nonce, the server nonce, the
/// interaction reference, and the grant endpoint URL, separated by a single newline character",
/// encoded (as the official clients check it) in standard base64 with padding.
pub fn interaction_hash(
    client_nonce: &str,
    server_nonce: &str,
    interact_ref: &str,
    grant_endpoint_url: &str,
) -> String {
    let input = format!("{client_nonce}\n{server_nonce}\n{interact_ref}\n{grant_endpoint_url}");
    STANDARD.encode(Sha256::digest(input.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_sha256_of_the_newline_joined_inputs_in_padded_base64() {
        let hash = interaction_hash("cn", "sn", "ref", "https://as.example/");
        let expected = STANDARD.encode(Sha256::digest(b"cn\nsn\nref\nhttps://as.example/"));
        assert_eq!(hash, expected);
        assert_eq!(hash.len(), 44);
        assert!(hash.ends_with('='));
        assert_ne!(
            hash,
            interaction_hash("cn", "sn", "ref", "https://as.example")
        );
    }

    #[test]
    fn interaction_state_follows_the_grant() {
        assert_eq!(
            InteractionState::of(GrantState::Pending),
            InteractionState::Pending
        );
        assert_eq!(
            InteractionState::of(GrantState::Approved),
            InteractionState::Approved
        );
        assert_eq!(
            InteractionState::of(GrantState::Finalized(Finalization::Rejected)),
            InteractionState::Denied
        );
    }
}
