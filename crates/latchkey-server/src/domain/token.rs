//! The access token aggregate: liveness and the rules of rotation and revocation.

use super::clock::Millis;
use super::grant::{Grant, GrantState};
use crate::token_format::{new_id, TokenHash, TokenValue};

/// An access token as stored (never its value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenRecord {
    /// Public id in the manage URL.
    pub manage_id: String,
    /// The grant the token belongs to.
    pub grant_id: String,
    /// Lookup key of the value.
    pub hash: TokenHash,
    /// Issue time.
    pub created_at: Millis,
    /// Expiry time.
    pub expires_at: Millis,
    /// Revocation (or rotation-away) time.
    pub revoked_at: Option<Millis>,
}

/// The liveness of a token at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStatus {
    /// Usable.
    Active,
    /// Past its expiry but not revoked: may still be rotated.
    Expired,
    /// Revoked, rotated away, or its grant was cancelled: dead for good.
    Revoked,
}

impl AccessTokenRecord {
    /// A new live token of `grant_id`, issued at `now` for `lifetime` milliseconds: its record
    /// (a fresh manage id, the value's hash) and the value, to hand to the client once.
    pub fn issue(grant_id: &str, now: Millis, lifetime: Millis) -> (Self, TokenValue) {
        let value = TokenValue::generate_access_token();
        let record = AccessTokenRecord {
            manage_id: new_id(),
            grant_id: grant_id.to_string(),
            hash: value.hash(),
            created_at: now,
            expires_at: now.saturating_add(lifetime),
            revoked_at: None,
        };
        (record, value)
    }

    /// Liveness of the token, taking its grant into account (invariant 4: a cancelled grant
    /// kills every token, even if a token row were somehow missed).
    pub fn status(&self, grant: &Grant, now: Millis) -> TokenStatus {
        self.status_under(grant.state, now)
    }

    /// Liveness of the token under a grant in `grant_state` (see [`Self::status`]).
    pub fn status_under(&self, grant_state: GrantState, now: Millis) -> TokenStatus {
        if self.revoked_at.is_some() || grant_state.is_revoked() {
            TokenStatus::Revoked
        } else if now >= self.expires_at {
            TokenStatus::Expired
        } else {
            TokenStatus::Active
        }
    }

    /// Whole seconds until expiry, rounded up (a token issued for 600 s says 600), never negative.
    pub fn expires_in_secs(&self, now: Millis) -> u64 {
        u64::try_from(((self.expires_at - now).max(0) + 999) / 1000).unwrap_or(0)
    }
}

/// What a rotation request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateDecision {
    /// Issue a successor and kill this token, atomically.
    Rotate,
    /// The token is dead (revoked, rotated away, grant cancelled).
    Refuse,
}

/// DESIGN.md: "An expired but unrevoked token may be rotated."
pub fn decide_rotate(status: TokenStatus) -> RotateDecision {
    match status {
        TokenStatus::Active | TokenStatus::Expired => RotateDecision::Rotate,
        TokenStatus::Revoked => RotateDecision::Refuse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::grant::{ClientKeySource, Finalization, GrantState};

    fn grant(state: GrantState) -> Grant {
        Grant {
            id: "g".into(),
            continue_id: "c".into(),
            continue_token_hash: TokenHash::of("c"),
            client: ClientKeySource::WalletAddress("https://w.example/a".into()),
            access: vec![],
            state,
            wait_secs: 5,
            created_at: 0,
            last_continued_at: None,
        }
    }

    fn token(revoked_at: Option<Millis>) -> AccessTokenRecord {
        AccessTokenRecord {
            manage_id: "m".into(),
            grant_id: "g".into(),
            hash: TokenHash::of("t"),
            created_at: 0,
            expires_at: 600_000,
            revoked_at,
        }
    }

    #[test]
    fn status_follows_expiry_revocation_and_grant_cancel() {
        let issued = grant(GrantState::Finalized(Finalization::Issued));
        assert_eq!(token(None).status(&issued, 1), TokenStatus::Active);
        assert_eq!(token(None).status(&issued, 600_000), TokenStatus::Expired);
        assert_eq!(token(Some(5)).status(&issued, 1), TokenStatus::Revoked);
        let cancelled = grant(GrantState::Finalized(Finalization::Revoked));
        assert_eq!(token(None).status(&cancelled, 1), TokenStatus::Revoked);
    }

    #[test]
    fn expired_tokens_rotate_revoked_ones_do_not() {
        assert_eq!(decide_rotate(TokenStatus::Active), RotateDecision::Rotate);
        assert_eq!(decide_rotate(TokenStatus::Expired), RotateDecision::Rotate);
        assert_eq!(decide_rotate(TokenStatus::Revoked), RotateDecision::Refuse);
    }

    #[test]
    fn expires_in_counts_down_and_stops_at_zero() {
        let t = token(None);
        assert_eq!(t.expires_in_secs(0), 600);
        assert_eq!(t.expires_in_secs(5), 600);
        assert_eq!(t.expires_in_secs(599_500), 1);
        assert_eq!(t.expires_in_secs(700_000), 0);
    }
}
