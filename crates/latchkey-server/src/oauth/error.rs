//! Refusals of the OAuth domain. `http::error` maps each to a status and an RFC 6749 §5.2 code.

use crate::store::StoreError;

/// Why an OAuth operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum OAuthFailure {
    /// Client authentication failed or was missing (RFC 6749 §5.2 `invalid_client`).
    #[error("{0}")]
    InvalidClient(String),
    /// Too many failed client authentications from this client id or source address.
    #[error("too many failed client authentications; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until an attempt will be accepted.
        retry_after_secs: u64,
    },
    /// The requested scope is malformed or not granted to the client (`invalid_scope`).
    #[error("{0}")]
    InvalidScope(String),
    /// A parameter is missing or malformed (`invalid_request`).
    #[error("{0}")]
    InvalidRequest(String),
    /// A bearer token is unknown, expired or revoked (RFC 6750 §3.1 `invalid_token`).
    #[error("{0}")]
    InvalidToken(String),
    /// No client with this id (admin operations).
    #[error("no OAuth client with id `{0}`")]
    UnknownClient(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
