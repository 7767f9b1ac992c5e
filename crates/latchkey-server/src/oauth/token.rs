//! OAuth access tokens (`client_credentials`, RFC 6749 §4.4): records and liveness.

use crate::domain::clock::Millis;
use crate::token_format::TokenHash;

use super::client::OAuthClient;

/// An OAuth access token as stored (never its value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthTokenRecord {
    /// The value's lookup key ([`TokenHash::of`]: its time prefix, then its SHA-256).
    pub hash: TokenHash,
    /// The client the token was issued to.
    pub client_id: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Issue time.
    pub created_at: Millis,
    /// Expiry time.
    pub expires_at: Millis,
    /// Revocation time.
    pub revoked_at: Option<Millis>,
}

impl OAuthTokenRecord {
    /// Active: not revoked, not expired, and its client is enabled (disabling a client revokes
    /// its tokens in the same transaction; the client check is a second line of defence).
    pub fn is_active(&self, client: &OAuthClient, now: Millis) -> bool {
        self.revoked_at.is_none()
            && client.is_enabled()
            && client.id == self.client_id
            && now < self.expires_at
    }

    /// Issue time in whole seconds since the Unix epoch.
    pub fn created_at_secs(&self) -> i64 {
        self.created_at.div_euclid(1000)
    }

    /// Expiry in whole seconds since the Unix epoch.
    pub fn expires_at_secs(&self) -> i64 {
        self.expires_at.div_euclid(1000)
    }

    /// Whole seconds left, never negative.
    pub fn expires_in_secs(&self, now: Millis) -> i64 {
        (self.expires_at - now).max(0) / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_follows_revocation_expiry_and_client_state() {
        let (mut client, _) = OAuthClient::generate("a".into(), vec![], 0);
        let mut token = OAuthTokenRecord {
            hash: TokenHash::of("t"),
            client_id: client.id.clone(),
            scopes: vec![],
            created_at: 1_000,
            expires_at: 3_601_000,
            revoked_at: None,
        };
        assert!(token.is_active(&client, 2_000));
        assert!(!token.is_active(&client, 3_601_000));
        assert_eq!(token.expires_in_secs(1_500), 3599);
        assert_eq!(token.expires_in_secs(9_999_999), 0);
        assert_eq!(token.expires_at_secs() - token.created_at_secs(), 3600);
        client.disabled_at = Some(5);
        assert!(!token.is_active(&client, 2_000));
        client.disabled_at = None;
        token.revoked_at = Some(1_500);
        assert!(!token.is_active(&client, 2_000));
    }
}
