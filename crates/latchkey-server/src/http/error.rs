//! The one place where errors become HTTP responses.
//!
//! GNAP refusals render as `{"error":{"code","description"}}` with the Open Payments codes;
//! OAuth refusals as RFC 6749 §5.2 `{"error","error_description"}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use latchkey_proto::gnap::{ErrorBody, ErrorCode};
use latchkey_proto::oauth::{OAuthErrorBody, OAuthErrorCode};

use crate::client_keys::KeyResolveError;
use crate::domain::DomainError;
use crate::oauth::OAuthFailure;
use crate::store::StoreError;

/// A refusal on a GNAP endpoint.
#[derive(Debug, thiserror::Error)]
pub enum GnapError {
    /// Malformed or invalid request.
    #[error("{0}")]
    InvalidRequest(String),
    /// Authentication failed (signature, key, token binding).
    #[error("{0}")]
    InvalidClient(String),
    /// The client's key set cannot be fetched: RFC 9635 "invalid_client", status 400.
    #[error("{0}")]
    ClientUnreachable(String),
    /// Body over the limit.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// Wrong content type.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// No such route.
    #[error("no endpoint at {0}")]
    NoRoute(String),
    /// Method not allowed on this route.
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    /// Missing or wrong credentials on a private endpoint (admin).
    #[error("{0}")]
    Unauthorized(String),
    /// Missing or wrong `x-idp-secret` (id-provider.yaml: 401 `invalid_request`).
    #[error("{0}")]
    IdpUnauthorized(String),
    /// Refused by the lifecycle rules.
    #[error(transparent)]
    Domain(#[from] DomainError),
}

impl From<StoreError> for GnapError {
    fn from(e: StoreError) -> Self {
        GnapError::Domain(DomainError::Store(e))
    }
}

impl From<KeyResolveError> for GnapError {
    fn from(e: KeyResolveError) -> Self {
        match e {
            KeyResolveError::Unreachable(..)
            | KeyResolveError::InvalidKeySet(..)
            | KeyResolveError::BadUrl(..) => GnapError::ClientUnreachable(e.to_string()),
            KeyResolveError::UnknownKeyId(..) | KeyResolveError::BadKey(..) => {
                GnapError::InvalidClient(e.to_string())
            }
        }
    }
}

fn store_status(e: &StoreError) -> (StatusCode, ErrorCode, String) {
    match e {
        StoreError::Unavailable(_) => {
            tracing::warn!(error = %e, "storage unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::ServiceUnavailable,
                "the authorization server's storage is unavailable; retry shortly".into(),
            )
        }
        _ => {
            tracing::error!(error = %e, "storage failure");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::RequestDenied,
                "internal storage error".into(),
            )
        }
    }
}

impl GnapError {
    /// Status, code and description of the refusal.
    pub fn parts(&self) -> (StatusCode, ErrorCode, String) {
        let text = self.to_string();
        match self {
            GnapError::InvalidRequest(_) => {
                (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, text)
            }
            GnapError::InvalidClient(_) => {
                (StatusCode::UNAUTHORIZED, ErrorCode::InvalidClient, text)
            }
            GnapError::ClientUnreachable(_) => {
                (StatusCode::BAD_REQUEST, ErrorCode::InvalidClient, text)
            }
            GnapError::PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::InvalidRequest,
                text,
            ),
            GnapError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::InvalidRequest,
                text,
            ),
            GnapError::NoRoute(_) => (StatusCode::NOT_FOUND, ErrorCode::InvalidRequest, text),
            GnapError::MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::InvalidRequest,
                text,
            ),
            GnapError::IdpUnauthorized(_) => {
                (StatusCode::UNAUTHORIZED, ErrorCode::InvalidRequest, text)
            }
            GnapError::Unauthorized(_) => {
                (StatusCode::UNAUTHORIZED, ErrorCode::InvalidClient, text)
            }
            GnapError::Domain(d) => match d {
                DomainError::InvalidRequest(_) => {
                    (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, text)
                }
                // auth-server.yaml, `POST /token/{id}`: 404 `error-invalid-rotation`.
                // (`DELETE` has no 404; its handler answers `invalid_client` instead.)
                DomainError::UnknownToken => {
                    (StatusCode::NOT_FOUND, ErrorCode::InvalidRotation, text)
                }
                DomainError::UnknownGrant => {
                    (StatusCode::NOT_FOUND, ErrorCode::InvalidContinuation, text)
                }
                DomainError::TokenNotLive => {
                    (StatusCode::BAD_REQUEST, ErrorCode::InvalidRotation, text)
                }
                DomainError::GrantFinalized(_) | DomainError::InvalidContinuation(_) => (
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::InvalidContinuation,
                    text,
                ),
                DomainError::UnknownInteraction => {
                    (StatusCode::NOT_FOUND, ErrorCode::UnknownInteraction, text)
                }
                DomainError::InvalidInteraction(_) => (
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::InvalidInteraction,
                    text,
                ),
                DomainError::TooFast(_) => (StatusCode::BAD_REQUEST, ErrorCode::TooFast, text),
                DomainError::Rejected => (StatusCode::UNAUTHORIZED, ErrorCode::RequestDenied, text),
                DomainError::Store(e) => store_status(e),
            },
        }
    }
}

impl IntoResponse for GnapError {
    fn into_response(self) -> Response {
        let (status, code, description) = self.parts();
        let mut response = (status, Json(ErrorBody::new(code, description))).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A refusal on an OAuth endpoint (RFC 6749 §5.2).
#[derive(Debug, thiserror::Error)]
#[error("{description}")]
pub struct OAuthError {
    /// HTTP status.
    pub status: StatusCode,
    /// RFC 6749 code.
    pub code: OAuthErrorCode,
    /// Explanation.
    pub description: String,
    /// `Retry-After` seconds, for rate limiting and outages.
    pub retry_after: Option<u64>,
    /// The `WWW-Authenticate` challenge sent with a 401.
    pub challenge: Challenge,
}

/// The authentication scheme a 401 asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// Client authentication (RFC 6749 §5.2: "the authorization server MUST respond with an
    /// HTTP 401 (Unauthorized) status code and include the "WWW-Authenticate" response header
    /// field matching the authentication scheme used by the client").
    Basic,
    /// A bearer token (RFC 6750 §3): token info and the admin API.
    Bearer,
}

impl OAuthError {
    /// 400 `invalid_request`.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            OAuthErrorCode::InvalidRequest,
            description,
        )
    }

    /// 401 `invalid_client` (with `WWW-Authenticate`, RFC 6749 §5.2).
    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            OAuthErrorCode::InvalidClient,
            description,
        )
    }

    /// Any status and code.
    pub fn new(status: StatusCode, code: OAuthErrorCode, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            code,
            description: description.into(),
            retry_after: None,
            challenge: Challenge::Basic,
        }
    }

    /// 413 `invalid_request`: the body is over the limit.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            OAuthErrorCode::InvalidRequest,
            format!("request body is larger than {limit} bytes"),
        )
    }

    /// 401 `invalid_token` with a Bearer challenge (RFC 6750 §3.1).
    pub fn invalid_token(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            OAuthErrorCode::InvalidToken,
            description,
        )
        .with_challenge(Challenge::Bearer)
    }

    /// The same refusal with another `WWW-Authenticate` scheme.
    pub fn with_challenge(mut self, challenge: Challenge) -> Self {
        self.challenge = challenge;
        self
    }
}

impl From<OAuthFailure> for OAuthError {
    fn from(failure: OAuthFailure) -> Self {
        let text = failure.to_string();
        match failure {
            OAuthFailure::InvalidClient(_) => OAuthError::invalid_client(text),
            OAuthFailure::RateLimited { retry_after_secs } => OAuthError {
                retry_after: Some(retry_after_secs),
                ..OAuthError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    OAuthErrorCode::SlowDown,
                    text,
                )
            },
            OAuthFailure::InvalidScope(_) => {
                OAuthError::new(StatusCode::BAD_REQUEST, OAuthErrorCode::InvalidScope, text)
            }
            OAuthFailure::InvalidRequest(_) => OAuthError::invalid_request(text),
            OAuthFailure::InvalidToken(_) => OAuthError::invalid_token(text),
            OAuthFailure::UnknownClient(_) => {
                OAuthError::new(StatusCode::NOT_FOUND, OAuthErrorCode::InvalidRequest, text)
            }
            OAuthFailure::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        let (status, _, description) = store_status(&e);
        let code = if status == StatusCode::SERVICE_UNAVAILABLE {
            OAuthErrorCode::TemporarilyUnavailable
        } else {
            OAuthErrorCode::ServerError
        };
        OAuthError {
            status,
            code,
            description,
            retry_after: (status == StatusCode::SERVICE_UNAVAILABLE).then_some(1),
            challenge: Challenge::Basic,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = OAuthErrorBody {
            error: self.code,
            error_description: self.description,
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = match self.challenge {
                Challenge::Basic => {
                    HeaderValue::from_static("Basic realm=\"latchkey\", charset=\"UTF-8\"")
                }
                // RFC 6750 §3: `error` names the refusal; the code is a fixed ASCII word.
                Challenge::Bearer => HeaderValue::from_str(&format!(
                    "Bearer realm=\"latchkey\", error=\"{}\"",
                    self.code
                ))
                .unwrap_or_else(|_| HeaderValue::from_static("Bearer realm=\"latchkey\"")),
            };
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                headers.insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}
