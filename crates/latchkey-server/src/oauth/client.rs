//! The OAuth client aggregate: a registered application with a server-generated secret.
//!
//! Ids and secrets are drawn only from URL-unreserved characters (`A-Z a-z 0-9 - _`), so
//! the raw and the form-urlencoded forms are identical: RFC 6749 §2.3.1 asks clients to
//! url-encode HTTP Basic credentials, and some (Authlib) do not; either way works. Neither
//! contains `:`, which separates them in HTTP Basic.

use latchkey_proto::oauth::ClientInfo;

use crate::domain::clock::Millis;
use crate::token_format::{new_random_id, TokenHash, TokenValue};

/// Longest accepted client name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// An OAuth client as stored (never its secret, only the secret's SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// Public identifier (`client_id`).
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// SHA-256 of the secret.
    pub secret_hash: TokenHash,
    /// Scopes the client may request.
    pub scopes: Vec<String>,
    /// Creation time.
    pub created_at: Millis,
    /// Last secret rotation.
    pub secret_rotated_at: Option<Millis>,
    /// When the client was disabled; a disabled client cannot authenticate.
    pub disabled_at: Option<Millis>,
}

impl OAuthClient {
    /// A new client with a fresh id and secret. The secret is returned to be shown once.
    pub fn generate(name: String, scopes: Vec<String>, now: Millis) -> (OAuthClient, TokenValue) {
        let secret = TokenValue::generate();
        let client = OAuthClient {
            id: new_random_id(),
            name,
            secret_hash: secret.secret_hash(),
            scopes,
            created_at: now,
            secret_rotated_at: None,
            disabled_at: None,
        };
        (client, secret)
    }

    /// True when `presented` is this client's secret (SHA-256, compared in constant time).
    ///
    /// A fast hash suffices: the secret carries 256 bits from the OS CSPRNG (DESIGN.md).
    pub fn secret_matches(&self, presented: &str) -> bool {
        self.secret_hash.matches_secret(presented)
    }

    /// Whether the client may authenticate.
    pub fn is_enabled(&self) -> bool {
        self.disabled_at.is_none()
    }

    /// The listing shape (no secret).
    pub fn info(&self) -> ClientInfo {
        ClientInfo {
            client_id: self.id.clone(),
            name: self.name.clone(),
            scopes: self.scopes.clone(),
            created_at: self.created_at / 1000,
            secret_rotated_at: self.secret_rotated_at.map(|t| t / 1000),
            disabled_at: self.disabled_at.map(|t| t / 1000),
        }
    }
}

/// Checks a client name: non-empty after trimming, at most [`MAX_NAME_CHARS`], no control
/// characters. Returns the trimmed name.
pub fn validate_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("the client name is empty".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "the client name is longer than {MAX_NAME_CHARS} characters"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("the client name contains control characters".into());
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_credentials_are_unreserved_and_verifiable() {
        let (client, secret) = OAuthClient::generate("app".into(), vec![], 1_000);
        let unreserved = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        assert!(unreserved(&client.id));
        assert!(unreserved(secret.expose()));
        assert!(secret.expose().len() >= 43, "256 bits in base64url");
        assert!(client.secret_matches(secret.expose()));
        assert!(!client.secret_matches("nope"));
        assert!(client.is_enabled());
        assert_eq!(client.info().created_at, 1);
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(validate_name("  Shop  ").expect("ok"), "Shop");
        assert!(validate_name("  ").is_err());
        assert!(validate_name("a\nb").is_err());
        assert!(validate_name(&"x".repeat(201)).is_err());
    }
}
