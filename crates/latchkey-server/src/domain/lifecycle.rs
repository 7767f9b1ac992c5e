//! The token lifecycle: issue a grant, rotate and revoke its tokens, cancel it, introspect.
//!
//! Authentication (signatures, token binding) happens before these calls, in `http::auth`;
//! these functions apply the rules of [`super::grant`] and [`super::token`] and persist the
//! outcome through the [`Store`](crate::store::Store).

use latchkey_proto::gnap::{AccessItem, Action, InteractRequest};
use std::time::Duration;

use super::clock::{now_ms, Millis};
use super::error::DomainError;
use super::grant::{CancelDecision, ClientKeySource, Finalization, Grant, GrantState};
use super::interaction::Interaction;
use super::introspection::{AnsweredAccess, IntrospectAnswer};
use super::token::{decide_rotate, AccessTokenRecord, RotateDecision, TokenStatus};
use crate::store::{RotateOutcome, SharedStore};
use crate::token_format::{new_id, new_random_id, TokenHash, TokenValue};

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

/// Which grants need the resource owner's consent.
///
/// Open Payments: every `outgoing-payment` grant does; `list-all` access does by default;
/// incoming-payment and quote grants do when the operator says so.
#[derive(Debug, Clone, Copy)]
pub struct InteractionPolicy {
    /// Incoming-payment grants need interaction.
    pub incoming_payment: bool,
    /// Quote grants need interaction.
    pub quote: bool,
    /// Access with the `list-all` action needs interaction.
    pub list_all: bool,
}

impl Default for InteractionPolicy {
    fn default() -> Self {
        InteractionPolicy {
            incoming_payment: false,
            quote: false,
            list_all: true,
        }
    }
}

impl InteractionPolicy {
    /// True when `access` needs the resource owner.
    pub fn requires_interaction(&self, access: &[AccessItem]) -> bool {
        access.iter().any(|item| match item {
            AccessItem::OutgoingPayment(_) => true,
            AccessItem::IncomingPayment(_) if self.incoming_payment => true,
            AccessItem::Quote(_) if self.quote => true,
            other => self.list_all && other.actions().contains(&Action::ListAll),
        })
    }
}

/// What a continuation request produced.
#[derive(Debug)]
pub enum ContinueOutcome {
    /// Still waiting for the resource owner; poll again after `wait` seconds.
    Pending {
        /// Seconds to wait.
        wait_secs: u64,
    },
    /// The grant was approved: here is its access token.
    Issued(AccessTokenRecord, TokenValue),
}

/// What the end of an interaction tells the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishOutcome {
    /// Approved: redirect to `finish_uri` with `hash` and `interact_ref`, or, without a finish
    /// URI, tell the user the client will pick the grant up.
    Approved {
        /// The interaction (finish URI, nonces).
        interaction: Interaction,
        /// The interaction reference.
        interact_ref: String,
    },
    /// Rejected: redirect with `result=grant_rejected`.
    Rejected {
        /// The interaction.
        interaction: Interaction,
    },
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
    /// The interaction, for grants that need the resource owner.
    pub interaction: Option<Interaction>,
}

/// The lifecycle service.
#[derive(Clone)]
pub struct Lifecycle {
    store: SharedStore,
    lifetimes: Lifetimes,
    policy: InteractionPolicy,
}

fn millis(d: Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Lifecycle {
    /// A lifecycle over `store`.
    pub fn new(store: SharedStore, lifetimes: Lifetimes) -> Self {
        Lifecycle {
            store,
            lifetimes,
            policy: InteractionPolicy::default(),
        }
    }

    /// The same lifecycle with another interaction policy.
    pub fn with_policy(mut self, policy: InteractionPolicy) -> Self {
        self.policy = policy;
        self
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
        AccessTokenRecord::issue(grant_id, now, millis(self.lifetimes.access_token))
    }

    /// Handles a grant request: grants that need no interaction (incoming-payment and quote
    /// access by default) are issued at once; the others wait for the resource owner.
    pub async fn request_grant(
        &self,
        client: ClientKeySource,
        access: Vec<AccessItem>,
        interact: Option<InteractRequest>,
    ) -> Result<IssuedGrant, DomainError> {
        validate_access(&access)?;
        let now = now_ms();
        let (mut grant, continue_token) =
            Grant::issue(client, access, self.lifetimes.continue_wait.as_secs(), now);
        if !self.policy.requires_interaction(&grant.access) {
            let access_token = self.new_token(&grant.id, now);
            self.store
                .create_grant(&grant, Some(&access_token.0))
                .await?;
            return Ok(IssuedGrant {
                grant,
                continue_token,
                access_token: Some(access_token),
                interaction: None,
            });
        }
        let interaction = self.interaction_for(&grant, interact, now)?;
        grant.state = GrantState::Pending;
        // The first poll must wait `wait` seconds too.
        grant.last_continued_at = Some(now);
        self.store
            .create_interactive_grant(&grant, &interaction)
            .await?;
        Ok(IssuedGrant {
            grant,
            continue_token,
            access_token: None,
            interaction: Some(interaction),
        })
    }

    fn interaction_for(
        &self,
        grant: &Grant,
        interact: Option<InteractRequest>,
        now: Millis,
    ) -> Result<Interaction, DomainError> {
        let Some(interact) = interact else {
            return Err(DomainError::InvalidRequest(
                "this access needs the resource owner's consent: send `interact` with \
                 start [\"redirect\"]"
                    .into(),
            ));
        };
        if !interact.start.iter().any(|s| s == "redirect") {
            return Err(DomainError::InvalidRequest(
                "interact.start must include `redirect`".into(),
            ));
        }
        if matches!(grant.client, ClientKeySource::Jwk(_)) {
            return Err(DomainError::InvalidRequest(
                "a client identified by a bare `jwk` may only request grants that need no \
                 interaction; identify the client by its wallet address"
                    .into(),
            ));
        }
        if let Some(item) = grant.access.iter().find(|i| i.identifier().is_none()) {
            return Err(DomainError::InvalidRequest(format!(
                "every access item of an interactive grant must carry an `identifier` \
                 ({} has none)",
                item.type_name()
            )));
        }
        let (finish_uri, client_nonce) = match interact.finish {
            None => (None, None),
            Some(finish) => {
                if finish.method != "redirect" {
                    return Err(DomainError::InvalidRequest(format!(
                        "interact.finish.method `{}` is not supported; use `redirect`",
                        finish.method
                    )));
                }
                let uri = url::Url::parse(&finish.uri).map_err(|e| {
                    DomainError::InvalidRequest(format!("interact.finish.uri is not a URL: {e}"))
                })?;
                if !matches!(uri.scheme(), "http" | "https") {
                    return Err(DomainError::InvalidRequest(
                        "interact.finish.uri must be an http(s) URL".into(),
                    ));
                }
                if finish.nonce.is_empty() || finish.nonce.len() > 256 {
                    return Err(DomainError::InvalidRequest(
                        "interact.finish.nonce must be 1 to 256 characters".into(),
                    ));
                }
                (Some(finish.uri), Some(finish.nonce))
            }
        };
        Ok(Interaction {
            id: new_id(),
            nonce: new_random_id(),
            grant_id: grant.id.clone(),
            finish_uri,
            client_nonce,
            interact_ref: None,
            session_hash: None,
            created_at: now,
            expires_at: now.saturating_add(millis(self.lifetimes.interaction)),
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

    /// Continues a grant (RFC 9635 §5): with the `interact_ref` from the finish redirect, or by
    /// polling when the client gave no finish URI.
    pub async fn continue_grant(
        &self,
        grant: &Grant,
        interact_ref: Option<&str>,
    ) -> Result<ContinueOutcome, DomainError> {
        match grant.state {
            GrantState::Finalized(Finalization::Issued) => {
                return Err(DomainError::GrantFinalized("its access token was issued"))
            }
            GrantState::Finalized(Finalization::Revoked) => {
                return Err(DomainError::GrantFinalized("it was cancelled"))
            }
            GrantState::Finalized(Finalization::Rejected) => return Err(DomainError::Rejected),
            GrantState::Pending | GrantState::Approved => {}
        }
        let interaction = self
            .store
            .interaction_by_grant(&grant.id)
            .await?
            .ok_or(DomainError::UnknownGrant)?;
        let now = now_ms();
        match interact_ref {
            Some(presented) => {
                // RFC 9635 §5.1: "the AS MUST verify that the interaction reference ... is
                // associated with the grant request being continued".
                let matches = interaction
                    .interact_ref
                    .as_deref()
                    .is_some_and(|own| TokenHash::secrets_match(own, presented));
                if !matches {
                    return Err(DomainError::InvalidContinuation(
                        "interact_ref does not belong to this grant".into(),
                    ));
                }
            }
            None => {
                if interaction.finish_uri.is_some() {
                    return Err(DomainError::InvalidRequest(
                        "interact_ref is required: the client asked for a finish redirect".into(),
                    ));
                }
                let wait_ms = millis(std::time::Duration::from_secs(grant.wait_secs));
                if !self
                    .store
                    .touch_continuation(&grant.id, now, wait_ms)
                    .await?
                {
                    return Err(DomainError::TooFast(grant.wait_secs));
                }
            }
        }
        if grant.state == GrantState::Pending {
            if interaction.is_expired(now) {
                // Nobody answered in time: the grant is finalized as rejected, for good.
                self.store.decide_grant(&grant.id, false, now).await?;
                return Err(DomainError::InvalidContinuation(
                    "the interaction expired before the resource owner answered; the grant is \
                     finalized"
                        .into(),
                ));
            }
            return Ok(ContinueOutcome::Pending {
                wait_secs: grant.wait_secs,
            });
        }
        let (token, value) = self.new_token(&grant.id, now);
        if self
            .store
            .issue_approved_grant(&grant.id, &token, now)
            .await?
        {
            Ok(ContinueOutcome::Issued(token, value))
        } else {
            Err(DomainError::GrantFinalized("its access token was issued"))
        }
    }

    /// The interaction with `id`, if `nonce` is its nonce.
    pub async fn interaction(
        &self,
        id: &str,
        nonce: &str,
    ) -> Result<(Interaction, Grant), DomainError> {
        let (interaction, grant) = self
            .store
            .interaction_by_id(id)
            .await?
            .ok_or(DomainError::UnknownInteraction)?;
        if !TokenHash::secrets_match(&interaction.nonce, nonce) {
            return Err(DomainError::UnknownInteraction);
        }
        Ok((interaction, grant))
    }

    /// Starts the interaction in the user's browser: binds a new session to it and returns the
    /// session value for the cookie.
    pub async fn start_interaction(
        &self,
        id: &str,
        nonce: &str,
        presented_session: Option<&str>,
    ) -> Result<(Interaction, Grant, TokenValue), DomainError> {
        let (interaction, grant) = self.interaction(id, nonce).await?;
        if interaction.is_expired(now_ms()) {
            return Err(DomainError::InvalidInteraction(
                "the interaction has expired".into(),
            ));
        }
        if grant.state != GrantState::Pending {
            return Err(DomainError::InvalidInteraction(
                "the grant is no longer waiting for consent".into(),
            ));
        }
        if interaction.session_hash.is_some() {
            // Opened again: only the browser that started it may go on.
            Self::require_session(&interaction, presented_session).map_err(|_| {
                DomainError::InvalidInteraction(
                    "this interaction was already started in another browser".into(),
                )
            })?;
            let session = TokenValue::from_presented(presented_session.unwrap_or_default());
            return Ok((interaction, grant, session));
        }
        let session = TokenValue::generate();
        if !self
            .store
            .bind_interaction_session(&interaction.id, &session.secret_hash())
            .await?
        {
            return Err(DomainError::InvalidInteraction(
                "this interaction was already started in another browser".into(),
            ));
        }
        Ok((interaction, grant, session))
    }

    /// Checks that `session` (the cookie value) is the session bound to the interaction.
    pub fn require_session(
        interaction: &Interaction,
        session: Option<&str>,
    ) -> Result<(), DomainError> {
        let bound = interaction.session_hash.as_ref();
        match (bound, session) {
            (Some(bound), Some(presented)) if bound.matches_secret(presented) => Ok(()),
            _ => Err(DomainError::InvalidInteraction(
                "no interaction session in this browser: start again from the client".into(),
            )),
        }
    }

    /// Records the resource owner's decision on a pending grant.
    pub async fn decide(
        &self,
        interaction: &Interaction,
        grant: &Grant,
        approve: bool,
    ) -> Result<(), DomainError> {
        let now = now_ms();
        if interaction.is_expired(now) {
            return Err(DomainError::InvalidInteraction(
                "the interaction has expired".into(),
            ));
        }
        if grant.state != GrantState::Pending
            || !self.store.decide_grant(&grant.id, approve, now).await?
        {
            return Err(DomainError::InvalidInteraction(
                "the grant was already accepted, rejected or cancelled".into(),
            ));
        }
        Ok(())
    }

    /// Ends the interaction: approved grants get an interaction reference, rejected ones a
    /// rejection; the browser session must be the one that started it.
    pub async fn finish_interaction(
        &self,
        id: &str,
        nonce: &str,
        session: Option<&str>,
    ) -> Result<FinishOutcome, DomainError> {
        let (interaction, grant) = self.interaction(id, nonce).await?;
        Self::require_session(&interaction, session)?;
        if grant.state == GrantState::Pending && interaction.is_expired(now_ms()) {
            return Err(DomainError::InvalidInteraction(
                "the interaction has expired".into(),
            ));
        }
        match grant.state {
            GrantState::Approved => {
                let interact_ref = self
                    .store
                    .set_interact_ref(&interaction.id, &new_random_id())
                    .await?;
                Ok(FinishOutcome::Approved {
                    interaction,
                    interact_ref,
                })
            }
            GrantState::Finalized(Finalization::Rejected) => {
                Ok(FinishOutcome::Rejected { interaction })
            }
            GrantState::Pending => Err(DomainError::InvalidInteraction(
                "the grant was neither accepted nor rejected yet".into(),
            )),
            GrantState::Finalized(_) => Err(DomainError::InvalidInteraction(
                "the interaction is already finished".into(),
            )),
        }
    }

    /// Token introspection for resource servers: `{active:false}` unless the token is live; with
    /// `access`, only when every requested item is covered, and then only the covering items.
    pub async fn introspect(
        &self,
        presented: &str,
        requested: Option<&[AccessItem]>,
    ) -> Result<IntrospectAnswer, DomainError> {
        let Some(record) = self
            .store
            .introspection_by_hash(&TokenHash::of(presented))
            .await?
        else {
            return Ok(IntrospectAnswer::inactive());
        };
        if record.token.status_under(record.grant_state, now_ms()) != TokenStatus::Active {
            return Ok(IntrospectAnswer::inactive());
        }
        let access = match requested {
            // The whole list, as the store keeps it: no parse, no re-serialization.
            None => AnsweredAccess::AsStored(record.access_json),
            Some(wanted) => {
                let access = record.parsed_access()?;
                if !wanted.iter().all(|w| access.iter().any(|g| g.covers(w))) {
                    return Ok(IntrospectAnswer::inactive());
                }
                AnsweredAccess::Covering(
                    access
                        .into_iter()
                        .filter(|g| wanted.iter().any(|w| g.covers(w)))
                        .collect(),
                )
            }
        };
        Ok(IntrospectAnswer::active(
            record.grant_id,
            access,
            record.client,
        ))
    }
}

/// The spec's rules on an access list: 1 to 3 unique, valid items.
fn validate_access(access: &[AccessItem]) -> Result<(), DomainError> {
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
    Ok(())
}
