//! OAuth 2.0 for machine clients: `client_credentials` (RFC 6749 §4.4), revocation (RFC 7009),
//! introspection (RFC 7662), and the Doorkeeper-style token info that Kopo Kopo serves.

use serde::{Deserialize, Serialize};
use std::fmt;

/// `POST /oauth/token` form or JSON body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    /// Must be `client_credentials`.
    #[serde(default)]
    pub grant_type: Option<String>,
    /// Client id, when not sent by HTTP Basic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Client secret, when not sent by HTTP Basic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Space-separated scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// `POST /oauth/token` success (RFC 6749 §5.1, plus Doorkeeper's `created_at`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The bearer token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// Issue time, seconds since the Unix epoch.
    pub created_at: i64,
    /// Space-separated granted scopes (empty when none).
    pub scope: String,
}

/// `POST /oauth/revoke` and `POST /oauth/introspect` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenActionRequest {
    /// The token to revoke or introspect.
    #[serde(default)]
    pub token: Option<String>,
    /// `access_token` or `refresh_token`; a hint only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type_hint: Option<String>,
    /// Client id, when not sent by HTTP Basic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Client secret, when not sent by HTTP Basic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// RFC 7662 §2.2 introspection response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntrospectionResponse {
    /// Whether the token is active.
    pub active: bool,
    /// Space-separated scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The client the token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `Bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Expiry, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Issue time, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
}

/// The application of a token, in token info.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfoApplication {
    /// The client id.
    pub uid: String,
}

/// `GET /oauth/token/info` response, in the shape Doorkeeper (and so Kopo Kopo) serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Always null for client-credentials tokens.
    pub resource_owner_id: Option<String>,
    /// Granted scopes.
    pub scope: Vec<String>,
    /// Seconds left.
    pub expires_in: i64,
    /// The client.
    pub application: TokenInfoApplication,
    /// Issue time, seconds since the Unix epoch.
    pub created_at: i64,
}

/// RFC 6749 §5.2 error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OAuthErrorCode {
    /// Missing or malformed parameter.
    InvalidRequest,
    /// Client authentication failed.
    InvalidClient,
    /// The grant is invalid (unused for client credentials).
    InvalidGrant,
    /// The client may not use this grant type.
    UnauthorizedClient,
    /// The grant type is not supported.
    UnsupportedGrantType,
    /// The scope is invalid or exceeds what the client may have.
    InvalidScope,
    /// RFC 7009 §2.2.1: the server does not revoke this token type.
    UnsupportedTokenType,
    /// RFC 6750 §3.1: the bearer token is unknown, expired or revoked.
    InvalidToken,
    /// Too many failed attempts; retry later.
    SlowDown,
    /// The server cannot serve now.
    TemporarilyUnavailable,
    /// An unexpected condition prevented the server from answering (RFC 6749 §4.1.2.1).
    ServerError,
}

impl OAuthErrorCode {
    /// The wire name of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthErrorCode::InvalidRequest => "invalid_request",
            OAuthErrorCode::InvalidClient => "invalid_client",
            OAuthErrorCode::InvalidGrant => "invalid_grant",
            OAuthErrorCode::UnauthorizedClient => "unauthorized_client",
            OAuthErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            OAuthErrorCode::InvalidScope => "invalid_scope",
            OAuthErrorCode::UnsupportedTokenType => "unsupported_token_type",
            OAuthErrorCode::InvalidToken => "invalid_token",
            OAuthErrorCode::SlowDown => "slow_down",
            OAuthErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            OAuthErrorCode::ServerError => "server_error",
        }
    }
}

impl fmt::Display for OAuthErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RFC 6749 §5.2 error body: `{"error", "error_description"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthErrorBody {
    /// The code.
    pub error: OAuthErrorCode,
    /// Human-readable explanation.
    pub error_description: String,
}

/// Admin API: `POST /admin/oauth-clients` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateClientRequest {
    /// Human-readable name of the application.
    pub name: String,
    /// Scopes the client may request (scope-tokens of RFC 6749 §3.3).
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// Admin API: `POST /admin/oauth-clients/{id}/rotate-secret` body (optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateSecretRequest {
    /// Also revoke every live token of the client (for a leaked secret).
    #[serde(default)]
    pub revoke_tokens: bool,
}

/// A client's credentials, shown once: on creation and on secret rotation.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientCredentials {
    /// The public client identifier.
    pub client_id: String,
    /// The secret; the server keeps only its SHA-256.
    pub client_secret: String,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// An OAuth client as the admin API and CLI list it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The public client identifier.
    pub client_id: String,
    /// Human-readable name.
    pub name: String,
    /// Scopes the client may request.
    pub scopes: Vec<String>,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: i64,
    /// Last secret rotation, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_rotated_at: Option<i64>,
    /// When the client was disabled, seconds since the Unix epoch; absent while enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<i64>,
}

/// Admin API: result of disabling a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisableClientResponse {
    /// The client, now disabled.
    pub client: ClientInfo,
    /// How many live tokens the disable revoked.
    pub revoked_tokens: u64,
}
