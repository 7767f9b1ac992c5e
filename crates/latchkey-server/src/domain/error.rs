//! Errors of the domain layer. `http::error` maps each to a status and protocol code.

use crate::store::StoreError;

/// Why a lifecycle operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The request body breaks a protocol rule.
    #[error("{0}")]
    InvalidRequest(String),
    /// No token has this management URL.
    #[error("no access token has this management URL")]
    UnknownToken,
    /// No grant has this continuation URI.
    #[error("no grant has this continuation URI")]
    UnknownGrant,
    /// The token was revoked, rotated away, or its grant cancelled.
    #[error("the access token was revoked, already rotated, or its grant was cancelled")]
    TokenNotLive,
    /// The grant is finalized and accepts no further continuation.
    #[error("the grant is finalized ({0}) and accepts no further updates")]
    GrantFinalized(&'static str),
    /// No interaction has this id and nonce.
    #[error("no interaction has this id and nonce")]
    UnknownInteraction,
    /// The interaction cannot do this now (expired, already decided, no session).
    #[error("{0}")]
    InvalidInteraction(String),
    /// The continuation is not allowed now (wrong `interact_ref`).
    #[error("{0}")]
    InvalidContinuation(String),
    /// The client polled before `wait` elapsed.
    #[error("the client must wait {0} seconds between continuation requests")]
    TooFast(u64),
    /// The resource owner rejected the grant.
    #[error("the resource owner rejected the grant")]
    Rejected,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
