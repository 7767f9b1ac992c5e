//! The token lifecycle: issue a grant, rotate and revoke its tokens, cancel it, introspect.
//!
//! Authentication (signatures, token binding) happens before these calls, in `http::auth`;
//! these functions apply the rules of [`super::grant`] and [`super::token`] and persist the
//! outcome through the [`Store`].

use latchkey_proto::gnap::{AccessItem, IntrospectResponse};
use std::time::Duration;

use super::clock::{now_ms, Millis};
use super::error::DomainError;
use super::grant::{CancelDecision, ClientKeySource, Finalization, Grant, GrantState};
use super::token::{decide_rotate, AccessTokenRecord, RotateDecision, TokenStatus};
use crate::store::{RotateOutcome, SharedStore};
use crate::token_format::{new_id, TokenHash, TokenValue};

/// Configurable lifetimes (DESIGN.md: token 600 s, `wait` 5 s, interaction 600 s).
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// Access token lifetime.
    pub access_token: Duration,
    /// Continuation `wait`.
    pub continue_wait: Duration,
    /// Interaction lifetime.
    pub interaction: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            access_token: Duration::from_secs(600),
            continue_wait: Duration::from_secs(5),
            interaction: Duration::from_secs(600),
        }
    }
}

/// A grant just issued, with the secret values to hand to the client once.
#[derive(Debug)]
pub struct IssuedGrant {
    /// The stored grant.
    pub grant: Grant,
    /// The continuation token value.
    pub continue_token: TokenValue,
    /// The access token, for grants approved at once.
    pub access_token: Option<(AccessTokenRecord, TokenValue)>,
}

/// The lifecycle service.
#[derive(Clone)]
pub struct Lifecycle {
    store: SharedStore,
    lifetimes: Lifetimes,
}

fn millis(d: Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Lifecycle {
    /// A lifecycle over `store`.
    pub fn new(store: SharedStore, lifetimes: Lifetimes) -> Self {
        Lifecycle { store, lifetimes }
    }

    /// The store (for health checks).
    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// The configured lifetimes.
    pub fn lifetimes(&self) -> Lifetimes {
        self.lifetimes
    }

    fn new_token(&self, grant_id: &str, now: Millis) -> (AccessTokenRecord, TokenValue) {
        let value = TokenValue::generate();
        let record = AccessTokenRecord {
            manage_id: new_id(),
            grant_id: grant_id.to_string(),
            hash: value.hash(),
            created_at: now,
            expires_at: now.saturating_add(millis(self.lifetimes.access_token)),
            revoked_at: None,
        };
        (record, value)
    }

    /// Issues a grant that needs no interaction: incoming-payment and quote access.
    ///
    /// Open Payments: "incoming-payment and quote grants are issued at once"; `outgoing-payment`
    /// needs the resource owner's consent, which comes with interactive grants.
    pub async fn request_grant(
        &self,
        client: ClientKeySource,
        access: Vec<AccessItem>,
        interact_requested: bool,
    ) -> Result<IssuedGrant, DomainError> {
        if access.is_empty() {
            return Err(DomainError::InvalidRequest(
                "access_token.access must name at least one access item".into(),
            ));
        }
        if access.len() > 3 {
            return Err(DomainError::InvalidRequest(
                "access_token.access may hold at most 3 items".into(),
            ));
        }
        for (i, item) in access.iter().enumerate() {
            item.validate()
                .map_err(|e| DomainError::InvalidRequest(format!("access item {i}: {e}")))?;
            if access[..i].contains(item) {
                return Err(DomainError::InvalidRequest(format!(
                    "access item {i} repeats an earlier item"
                )));
            }
        }
        if access
            .iter()
            .any(|item| matches!(item, AccessItem::OutgoingPayment(_)))
        {
            return Err(DomainError::InteractionNotSupported(
                "outgoing-payment access needs the resource owner's consent through interaction, \
                 which this server does not offer yet"
                    .into(),
            ));
        }
        let _ = interact_requested;
        let now = now_ms();
        let continue_token = TokenValue::generate();
        let grant = Grant {
            id: new_id(),
            continue_id: new_id(),
            continue_token_hash: continue_token.hash(),
            client,
            access,
            state: GrantState::Finalized(Finalization::Issued),
            wait_secs: self.lifetimes.continue_wait.as_secs(),
            created_at: now,
            last_continued_at: None,
        };
        let access_token = self.new_token(&grant.id, now);
        self.store
            .create_grant(&grant, Some(&access_token.0))
            .await?;
        Ok(IssuedGrant {
            grant,
            continue_token,
            access_token: Some(access_token),
        })
    }

    /// The token a manage URL names, with its grant.
    pub async fn token_by_manage_id(
        &self,
        manage_id: &str,
    ) -> Result<(AccessTokenRecord, Grant), DomainError> {
        self.store
            .token_by_manage_id(manage_id)
            .await?
            .ok_or(DomainError::UnknownToken)
    }

    /// The grant a continue URI names.
    pub async fn grant_by_continue_id(&self, continue_id: &str) -> Result<Grant, DomainError> {
        self.store
            .grant_by_continue_id(continue_id)
            .await?
            .ok_or(DomainError::UnknownGrant)
    }

    /// Revokes a token. RFC 9635 §6.2: revoking an already revoked or expired token succeeds.
    pub async fn revoke_token(&self, token: &AccessTokenRecord) -> Result<(), DomainError> {
        if token.revoked_at.is_some() {
            return Ok(());
        }
        self.store.revoke_token(&token.manage_id, now_ms()).await?;
        Ok(())
    }

    /// Rotates a token: the old one dies and a successor with the same grant and access lives,
    /// atomically. RFC 9635 §6.1: "the AS MUST revoke the existing access token".
    pub async fn rotate_token(
        &self,
        token: &AccessTokenRecord,
        grant: &Grant,
    ) -> Result<(AccessTokenRecord, TokenValue), DomainError> {
        let now = now_ms();
        if decide_rotate(token.status(grant, now)) == RotateDecision::Refuse {
            return Err(DomainError::TokenNotLive);
        }
        let (successor, value) = self.new_token(&grant.id, now);
        match self
            .store
            .rotate_token(&token.manage_id, &successor, now)
            .await?
        {
            RotateOutcome::Rotated => Ok((successor, value)),
            RotateOutcome::NotLive => Err(DomainError::TokenNotLive),
        }
    }

    /// Cancels a grant in any state; idempotent.
    pub async fn cancel_grant(&self, grant: &Grant) -> Result<(), DomainError> {
        match grant.decide_cancel() {
            CancelDecision::AlreadyRevoked => Ok(()),
            CancelDecision::Revoke => Ok(self.store.cancel_grant(&grant.id, now_ms()).await?),
        }
    }

    /// Continues a grant. Grants issued at once and cancelled grants are finalized.
    pub async fn continue_grant(
        &self,
        grant: &Grant,
        _interact_ref: Option<&str>,
    ) -> Result<std::convert::Infallible, DomainError> {
        match grant.state {
            GrantState::Finalized(Finalization::Issued) => {
                Err(DomainError::GrantFinalized("its access token was issued"))
            }
            GrantState::Finalized(Finalization::Revoked) => {
                Err(DomainError::GrantFinalized("it was cancelled"))
            }
            GrantState::Finalized(Finalization::Rejected) => Err(DomainError::GrantFinalized(
                "the resource owner rejected it",
            )),
            GrantState::Pending | GrantState::Approved => Err(
                DomainError::InteractionNotSupported("interactive grants are not supported".into()),
            ),
        }
    }

    /// Token introspection for resource servers: `{active:false}` unless the token is live; with
    /// `access`, only when every requested item is covered, and then only the covering items.
    pub async fn introspect(
        &self,
        presented: &str,
        requested: Option<&[AccessItem]>,
    ) -> Result<IntrospectResponse, DomainError> {
        let Some((token, grant)) = self.store.token_by_hash(&TokenHash::of(presented)).await?
        else {
            return Ok(IntrospectResponse::inactive());
        };
        if token.status(&grant, now_ms()) != TokenStatus::Active {
            return Ok(IntrospectResponse::inactive());
        }
        let access = match requested {
            None => grant.access.clone(),
            Some(wanted) => {
                if !wanted
                    .iter()
                    .all(|w| grant.access.iter().any(|g| g.covers(w)))
                {
                    return Ok(IntrospectResponse::inactive());
                }
                grant
                    .access
                    .iter()
                    .filter(|g| wanted.iter().any(|w| g.covers(w)))
                    .cloned()
                    .collect()
            }
        };
        Ok(IntrospectResponse {
            active: true,
            grant: Some(grant.id.clone()),
            access: Some(access),
            client: Some(grant.client.to_introspect_client()),
        })
    }
}
