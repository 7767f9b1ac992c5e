//! The one error type of the SDK.
//!
//! A caller can tell the kinds of failure apart without parsing text:
//!
//! * configuration: [`ClientError::MissingEnv`], [`ClientError::InvalidEnv`],
//!   [`ClientError::InvalidConfig`], [`ClientError::KeyFile`], [`ClientError::InvalidKey`],
//!   [`ClientError::InvalidUrl`], [`ClientError::InvalidArgument`];
//! * network: [`ClientError::Unreachable`], [`ClientError::Timeout`], [`ClientError::Http`];
//! * the server said no: [`ClientError::Server`] with the HTTP status and the protocol's error
//!   `code` and `description` (GNAP `{"error":{"code","description"}}` or OAuth
//!   `{"error","error_description"}`), with helpers such as [`ClientError::is_token_inactive`];
//! * the server answered something this SDK cannot read: [`ClientError::InvalidResponse`].

use latchkey_proto::gnap::ErrorCode;
use latchkey_proto::httpsig::SignatureError;
use latchkey_proto::keys::KeyError;
use latchkey_proto::oauth::OAuthErrorCode;
use std::path::PathBuf;
use std::time::Duration;

/// Why an SDK call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A required environment variable is not set (or is empty).
    #[error("environment variable {name} is not set{}", hint_suffix(.hint))]
    MissingEnv {
        /// The variable, e.g. `WALLET_ADDRESS_URL`.
        name: String,
        /// What the variable should hold.
        hint: Option<String>,
    },
    /// An environment variable is set but its value is unusable.
    #[error("environment variable {name} is invalid: {reason}")]
    InvalidEnv {
        /// The variable, e.g. `PRIVATE_KEY`.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An explicit configuration value is unusable.
    #[error("invalid client configuration: {0}")]
    InvalidConfig(String),
    /// The private key file cannot be read.
    #[error("cannot read private key file {}: {source}", .path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The private key is not an Ed25519 PKCS#8 key in a supported form.
    #[error("invalid private key: {0}")]
    InvalidKey(#[from] KeyError),
    /// A URL given to the SDK is not an absolute http(s) URL.
    #[error("invalid URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// An argument is unusable (for example a token with spaces in it).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The request could not be signed.
    #[error("cannot sign the request: {0}")]
    Signing(#[from] SignatureError),
    /// The server could not be reached (connection refused, DNS failure, TLS failure).
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL of the request.
        url: String,
        /// The underlying cause.
        reason: String,
    },
    /// The server did not answer in time.
    #[error("request to {url} timed out after {} s", .timeout.as_secs_f64())]
    Timeout {
        /// The URL of the request.
        url: String,
        /// The configured timeout.
        timeout: Duration,
    },
    /// Another transport failure (connection reset while reading, ...).
    #[error("HTTP request to {url} failed: {reason}")]
    Http {
        /// The URL of the request.
        url: String,
        /// The underlying cause.
        reason: String,
    },
    /// The server refused the request with an HTTP error status.
    #[error("{}", server_message(*.status, .code.as_deref(), .description.as_deref(), .url))]
    Server {
        /// The HTTP status code.
        status: u16,
        /// The protocol error code (`invalid_rotation`, `invalid_client`, ...), if the body
        /// carried one.
        code: Option<String>,
        /// The server's human-readable description, if any.
        description: Option<String>,
        /// The URL of the request.
        url: String,
    },
    /// The server's success answer is not what the protocol specifies.
    #[error("unexpected response from {url} (HTTP {status}): {reason}")]
    InvalidResponse {
        /// The URL of the request.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// What could not be read.
        reason: String,
    },
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default()
}

fn server_message(status: u16, code: Option<&str>, description: Option<&str>, url: &str) -> String {
    let mut text = format!("server refused the request (HTTP {status}");
    if let Some(code) = code {
        text.push_str(", ");
        text.push_str(code);
    }
    text.push(')');
    if let Some(description) = description {
        text.push_str(": ");
        text.push_str(description);
    }
    text.push_str(" [");
    text.push_str(url);
    text.push(']');
    text
}

impl ClientError {
    /// The HTTP status of a [`ClientError::Server`] or [`ClientError::InvalidResponse`].
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Server { status, .. } | ClientError::InvalidResponse { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// The protocol error code sent by the server, as text.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Server { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// The server's error description.
    pub fn description(&self) -> Option<&str> {
        match self {
            ClientError::Server { description, .. } => description.as_deref(),
            _ => None,
        }
    }

    /// The GNAP / Open Payments error code, when the server sent one this SDK knows.
    pub fn gnap_code(&self) -> Option<ErrorCode> {
        self.code()
            .and_then(|c| serde_json::from_value(serde_json::Value::String(c.to_string())).ok())
    }

    /// The OAuth 2.0 error code, when the server sent one this SDK knows.
    pub fn oauth_code(&self) -> Option<OAuthErrorCode> {
        self.code()
            .and_then(|c| serde_json::from_value(serde_json::Value::String(c.to_string())).ok())
    }

    /// True when the server says the token is no longer live: it was revoked, rotated away, or
    /// its grant was cancelled (GNAP `invalid_rotation`, OAuth `invalid_token`). Rotating will not
    /// help; the client needs a new grant.
    pub fn is_token_inactive(&self) -> bool {
        matches!(self.code(), Some("invalid_rotation" | "invalid_token"))
    }

    /// True when the server did not accept the caller's credentials: signature, key, the token
    /// presented on a management URL, or OAuth client credentials (`invalid_client`).
    pub fn is_invalid_client(&self) -> bool {
        self.code() == Some("invalid_client")
    }

    /// True when the grant cannot be continued or cancelled: unknown continuation URI or a
    /// finalized grant (`invalid_continuation`).
    pub fn is_invalid_continuation(&self) -> bool {
        self.code() == Some("invalid_continuation")
    }

    /// True for HTTP 404: no token or grant at that URL.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// True when the request never got an answer from the server (unreachable, timed out or
    /// cut off).
    pub fn is_network(&self) -> bool {
        matches!(
            self,
            ClientError::Unreachable { .. }
                | ClientError::Timeout { .. }
                | ClientError::Http { .. }
        )
    }

    /// True when trying again later may succeed: network failures, HTTP 503 / 429, GNAP
    /// `too_fast`, OAuth `slow_down` / `temporarily_unavailable`.
    pub fn is_retryable(&self) -> bool {
        self.is_network()
            || matches!(self.status(), Some(503 | 429))
            || matches!(
                self.code(),
                Some("too_fast" | "slow_down" | "temporarily_unavailable")
            )
    }

    /// True for configuration problems (environment, key, URL, arguments): nothing was sent.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            ClientError::MissingEnv { .. }
                | ClientError::InvalidEnv { .. }
                | ClientError::InvalidConfig(_)
                | ClientError::KeyFile { .. }
                | ClientError::InvalidKey(_)
                | ClientError::InvalidUrl { .. }
                | ClientError::InvalidArgument(_)
                | ClientError::Signing(_)
        )
    }
}

/// The error code and description parsed from an error body.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ErrorParts {
    pub code: Option<String>,
    pub description: Option<String>,
}

/// Reads GNAP `{"error":{"code","description"}}`, OAuth `{"error","error_description"}`, or a
/// plain `{"message"}`; anything else gives no code and, for short text bodies, the text as the
/// description.
pub(crate) fn parse_error_body(body: &[u8]) -> ErrorParts {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        return ErrorParts {
            code: None,
            description: (!text.is_empty() && text.len() <= 500).then(|| text.to_string()),
        };
    };
    let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_string);
    match value.get("error") {
        Some(serde_json::Value::Object(inner)) => ErrorParts {
            code: text(inner.get("code")),
            description: text(inner.get("description")),
        },
        Some(serde_json::Value::String(code)) => ErrorParts {
            code: Some(code.clone()),
            description: text(value.get("error_description")),
        },
        _ => ErrorParts {
            code: None,
            description: text(value.get("message")).or_else(|| text(value.get("description"))),
        },
    }
}

/// Describes a `reqwest` error by its chain of causes, without the URL (reported apart).
pub(crate) fn cause_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    // reqwest's own top-level text repeats the URL ("error sending request for url (...)"); the
    // innermost causes say what happened.
    if parts.len() > 1 {
        parts.remove(0);
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gnap_oauth_and_other_bodies() {
        assert_eq!(
            parse_error_body(br#"{"error":{"code":"invalid_rotation","description":"dead"}}"#),
            ErrorParts {
                code: Some("invalid_rotation".into()),
                description: Some("dead".into())
            }
        );
        assert_eq!(
            parse_error_body(br#"{"error":"invalid_client","error_description":"bad secret"}"#),
            ErrorParts {
                code: Some("invalid_client".into()),
                description: Some("bad secret".into())
            }
        );
        assert_eq!(
            parse_error_body(br#"{"message":"Not Found"}"#),
            ErrorParts {
                code: None,
                description: Some("Not Found".into())
            }
        );
        assert_eq!(
            parse_error_body(b"Bad Gateway"),
            ErrorParts {
                code: None,
                description: Some("Bad Gateway".into())
            }
        );
        assert_eq!(parse_error_body(b""), ErrorParts::default());
    }

    #[test]
    fn helpers_classify_server_errors() {
        let e = ClientError::Server {
            status: 400,
            code: Some("invalid_rotation".into()),
            description: Some("the access token was revoked".into()),
            url: "http://as.example/token/x".into(),
        };
        assert!(e.is_token_inactive());
        assert!(!e.is_invalid_client());
        assert_eq!(e.gnap_code(), Some(ErrorCode::InvalidRotation));
        assert_eq!(e.status(), Some(400));
        assert_eq!(
            e.to_string(),
            "server refused the request (HTTP 400, invalid_rotation): the access token was \
             revoked [http://as.example/token/x]"
        );
        let o = ClientError::Server {
            status: 401,
            code: Some("invalid_client".into()),
            description: None,
            url: "u".into(),
        };
        assert!(o.is_invalid_client());
        assert_eq!(o.oauth_code(), Some(OAuthErrorCode::InvalidClient));
        assert!(!o.is_retryable());
        let busy = ClientError::Server {
            status: 503,
            code: Some("service_unavailable".into()),
            description: None,
            url: "u".into(),
        };
        assert!(busy.is_retryable());
    }

    #[test]
    fn config_errors_name_the_variable() {
        let e = ClientError::MissingEnv {
            name: "KEY_ID".into(),
            hint: Some("the key id of the client's key".into()),
        };
        assert_eq!(
            e.to_string(),
            "environment variable KEY_ID is not set (the key id of the client's key)"
        );
        assert!(e.is_config());
    }
}
