//! GNAP token introspection for resource servers (`token-introspection.yaml`): ask the
//! authorization server whether a token presented to you is active and what it allows.
//!
//! Latchkey serves it on its private listener: `POST {private_url}/`.

use latchkey_proto::gnap::{AccessItem, IntrospectRequest, IntrospectResponse};
use reqwest::Method;
use std::time::Duration;
use url::Url;

use crate::config::{parse_url, DEFAULT_TIMEOUT};
use crate::error::ClientError;
use crate::transport::Transport;

/// A client of a GNAP token introspection endpoint.
#[derive(Debug, Clone)]
pub struct IntrospectionClient {
    transport: Transport,
    url: Url,
}

impl IntrospectionClient {
    /// A client of the introspection endpoint at `url` (for Latchkey: its `PRIVATE_URL`).
    pub fn new(url: &str) -> Result<IntrospectionClient, ClientError> {
        Self::with_timeout(url, DEFAULT_TIMEOUT)
    }

    /// Like [`IntrospectionClient::new`] with a per-request time limit.
    pub fn with_timeout(url: &str, timeout: Duration) -> Result<IntrospectionClient, ClientError> {
        Ok(IntrospectionClient {
            transport: Transport::new(timeout)?,
            url: parse_url(url, "introspection URL")?,
        })
    }

    /// `POST {url}` with `{"access_token", "access"?}`. With `access`, the token is active only
    /// if it allows all of it, and only the matching items come back.
    pub async fn introspect(
        &self,
        access_token: &str,
        access: Option<&[AccessItem]>,
    ) -> Result<IntrospectResponse, ClientError> {
        let body = serde_json::to_vec(&IntrospectRequest {
            access_token: access_token.to_string(),
            access: access.map(<[AccessItem]>::to_vec),
        })
        .map_err(|e| ClientError::InvalidArgument(format!("introspection request: {e}")))?;
        let request = self
            .transport
            .plain(Method::POST, &self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .build()
            .map_err(|e| ClientError::InvalidArgument(format!("cannot build the request: {e}")))?;
        self.transport.send(request).await?.json()
    }

    /// True when the token is active (with no access filter).
    pub async fn is_active(&self, access_token: &str) -> Result<bool, ClientError> {
        Ok(self.introspect(access_token, None).await?.active)
    }
}
