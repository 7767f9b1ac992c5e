//! Reading requests: the raw body under a size limit (413 over it), headers, the target URI.

use axum::body::Bytes;
use axum::extract::{FromRequest, OriginalUri, Request};
use axum::http::{header, HeaderMap, Method};

use super::error::GnapError;
use super::AppState;

/// A request read whole: what signature verification and the handlers need.
#[derive(Debug)]
pub struct RawRequest {
    /// Method.
    pub method: Method,
    /// Path and query as received.
    pub path_and_query: String,
    /// Headers.
    pub headers: HeaderMap,
    /// The raw body (Content-Digest is computed over these exact bytes).
    pub body: Bytes,
}

impl FromRequest<AppState> for RawRequest {
    type Rejection = GnapError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.settings.max_body_bytes;
        let (parts, body) = req.into_parts();
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(GnapError::PayloadTooLarge(limit));
        }
        let body = axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| GnapError::PayloadTooLarge(limit))?;
        let path_and_query = parts
            .extensions
            .get::<OriginalUri>()
            .map(|u| u.0.clone())
            .unwrap_or_else(|| parts.uri.clone())
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        Ok(RawRequest {
            method: parts.method,
            path_and_query,
            headers: parts.headers,
            body,
        })
    }
}

impl RawRequest {
    /// Refuses a body whose declared type is not JSON.
    pub fn require_json(&self) -> Result<(), GnapError> {
        if self.body.is_empty() {
            return Ok(());
        }
        match self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        {
            None => Ok(()),
            Some(ct) if ct.to_ascii_lowercase().starts_with("application/json") => Ok(()),
            Some(ct) => Err(GnapError::UnsupportedMediaType(format!(
                "content type `{ct}` is not supported; send application/json"
            ))),
        }
    }

    /// Parses the body as JSON of type `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, GnapError> {
        self.require_json()?;
        serde_json::from_slice(&self.body)
            .map_err(|e| GnapError::InvalidRequest(format!("malformed request body: {e}")))
    }
}

/// 404 for unknown paths.
pub async fn no_route(uri: axum::http::Uri) -> GnapError {
    GnapError::NoRoute(uri.path().to_string())
}

/// 405 for a known path with the wrong method.
pub async fn method_not_allowed(method: Method) -> GnapError {
    GnapError::MethodNotAllowed(method.to_string())
}
