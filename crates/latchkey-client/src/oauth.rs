//! OAuth 2.0 for machine clients, Kopo Kopo style: `client_credentials` tokens (RFC 6749 §4.4),
//! revocation (RFC 7009), introspection (RFC 7662) and Doorkeeper's token info.
//!
//! ```no_run
//! # async fn run() -> Result<(), latchkey_client::ClientError> {
//! use latchkey_client::OAuthClient;
//!
//! let tokens = OAuthClient::from_env()?; // CLIENT_ID, CLIENT_SECRET, BASE_URL
//! let access_token = tokens.request_access_token().await?.access_token;
//! tokens.revoke_access_token(&access_token).await?;
//! # Ok(()) }
//! ```

use latchkey_proto::oauth::{IntrospectionResponse, TokenInfo, TokenResponse};
use reqwest::header::AUTHORIZATION;
use reqwest::Method;
use std::fmt;
use std::time::Duration;
use url::Url;

use crate::config::{parse_url, DEFAULT_TIMEOUT};
use crate::error::ClientError;
use crate::transport::{check_token, Transport};

/// Environment variable holding the OAuth client id.
pub const ENV_CLIENT_ID: &str = "CLIENT_ID";
/// Environment variable holding the OAuth client secret.
pub const ENV_CLIENT_SECRET: &str = "CLIENT_SECRET";
/// Environment variable holding the authorization server's base URL (`/oauth/...` is appended).
pub const ENV_BASE_URL: &str = "BASE_URL";

/// How the client authenticates to the token, revoke and introspect endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuthMethod {
    /// `client_id` and `client_secret` as form fields, as the Kopo Kopo SDKs send them
    /// (RFC 6749 §2.3.1 `client_secret_post`).
    #[default]
    Body,
    /// HTTP Basic with the url-encoded id and secret (RFC 6749 §2.3.1 `client_secret_basic`).
    Basic,
}

/// A client of a Kopo Kopo-style OAuth 2.0 server (Latchkey's `/oauth/*` endpoints among them).
#[derive(Clone)]
pub struct OAuthClient {
    transport: Transport,
    base_url: Url,
    client_id: String,
    client_secret: String,
    auth_method: ClientAuthMethod,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("base_url", &self.base_url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("auth_method", &self.auth_method)
            .finish()
    }
}

impl OAuthClient {
    /// A client of the server at `base_url` (e.g. `https://sandbox.kopokopo.com`; the endpoints
    /// are `{base_url}/oauth/token`, `/oauth/revoke`, `/oauth/introspect`, `/oauth/token/info`).
    pub fn new(
        base_url: &str,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Result<OAuthClient, ClientError> {
        let mut base_url = parse_url(base_url, "OAuth base URL")?;
        base_url.set_query(None);
        if !base_url.path().ends_with('/') {
            let path = format!("{}/", base_url.path());
            base_url.set_path(&path);
        }
        let client_id = client_id.into();
        let client_secret = client_secret.into();
        if client_id.trim().is_empty() {
            return Err(ClientError::InvalidConfig(
                "the OAuth client id is empty".into(),
            ));
        }
        if client_secret.is_empty() {
            return Err(ClientError::InvalidConfig(
                "the OAuth client secret is empty".into(),
            ));
        }
        Ok(OAuthClient {
            transport: Transport::new(DEFAULT_TIMEOUT)?,
            base_url,
            client_id: client_id.trim().to_string(),
            client_secret,
            auth_method: ClientAuthMethod::Body,
        })
    }

    /// A client from `CLIENT_ID`, `CLIENT_SECRET` and `BASE_URL` (the Kopo Kopo snippets' names);
    /// the error names the variable that is missing or invalid.
    pub fn from_env() -> Result<OAuthClient, ClientError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`OAuthClient::from_env`], reading variables through `lookup`.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<OAuthClient, ClientError> {
        let get = |name: &str, hint: &str| -> Result<String, ClientError> {
            match lookup(name) {
                Some(v) if !v.trim().is_empty() => Ok(v),
                _ => Err(ClientError::MissingEnv {
                    name: name.to_string(),
                    hint: Some(hint.to_string()),
                }),
            }
        };
        let client_id = get(ENV_CLIENT_ID, "the OAuth application key")?;
        let client_secret = get(ENV_CLIENT_SECRET, "the OAuth application secret")?;
        let base_url = get(
            ENV_BASE_URL,
            "the authorization server, e.g. https://sandbox.kopokopo.com",
        )?;
        OAuthClient::new(&base_url, client_id, client_secret).map_err(|e| match e {
            ClientError::InvalidUrl { reason, .. } => ClientError::InvalidEnv {
                name: ENV_BASE_URL.into(),
                reason,
            },
            other => other,
        })
    }

    /// Sends the credentials by HTTP Basic instead of in the form body.
    pub fn with_auth_method(mut self, method: ClientAuthMethod) -> OAuthClient {
        self.auth_method = method;
        self
    }

    /// Sets the per-request time limit.
    pub fn with_timeout(mut self, timeout: Duration) -> Result<OAuthClient, ClientError> {
        self.transport = Transport::new(timeout)?;
        Ok(self)
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The base URL, with a trailing slash.
    pub fn base_url(&self) -> &str {
        self.base_url.as_str()
    }

    fn endpoint(&self, path: &str) -> Result<Url, ClientError> {
        self.base_url
            .join(path)
            .map_err(|e| ClientError::InvalidUrl {
                url: format!("{}{path}", self.base_url),
                reason: e.to_string(),
            })
    }

    async fn post_form(
        &self,
        path: &str,
        mut fields: Vec<(&str, String)>,
    ) -> Result<crate::transport::Answer, ClientError> {
        let url = self.endpoint(path)?;
        let mut builder = self.transport.plain(Method::POST, &url);
        match self.auth_method {
            ClientAuthMethod::Body => {
                fields.push(("client_id", self.client_id.clone()));
                fields.push(("client_secret", self.client_secret.clone()));
            }
            ClientAuthMethod::Basic => {
                // RFC 6749 §2.3.1: "The client identifier is encoded using the
                // "application/x-www-form-urlencoded" encoding algorithm ... and the encoded
                // value is used as the username; the client password is encoded using the same
                // algorithm and used as the password."
                builder = builder.basic_auth(
                    form_encode(&self.client_id),
                    Some(form_encode(&self.client_secret)),
                );
            }
        }
        let request = builder
            .form(&fields)
            .build()
            .map_err(|e| ClientError::InvalidArgument(format!("cannot build the request: {e}")))?;
        self.transport.send(request).await
    }

    /// `POST /oauth/token` with `grant_type=client_credentials` (RFC 6749 §4.4).
    pub async fn request_access_token(&self) -> Result<TokenResponse, ClientError> {
        self.request_access_token_with_scope(None).await
    }

    /// Like [`OAuthClient::request_access_token`], asking for space-separated `scope`.
    pub async fn request_access_token_with_scope(
        &self,
        scope: Option<&str>,
    ) -> Result<TokenResponse, ClientError> {
        let mut fields = vec![("grant_type", "client_credentials".to_string())];
        if let Some(scope) = scope {
            fields.push(("scope", scope.to_string()));
        }
        self.post_form("oauth/token", fields).await?.json()
    }

    /// `POST /oauth/revoke` with `token` (RFC 7009): the token stops working. The server answers
    /// 200 for unknown or already revoked tokens too (RFC 7009 §2.2).
    pub async fn revoke_access_token(&self, token: &str) -> Result<(), ClientError> {
        check_token(token)?;
        self.post_form("oauth/revoke", vec![("token", token.to_string())])
            .await
            .map(|_| ())
    }

    /// `POST /oauth/introspect` with `token` (RFC 7662): `active` and, when active, the token's
    /// client, scope and times.
    pub async fn introspect(&self, token: &str) -> Result<IntrospectionResponse, ClientError> {
        check_token(token)?;
        self.post_form("oauth/introspect", vec![("token", token.to_string())])
            .await?
            .json()
    }

    /// `GET /oauth/token/info` with `Authorization: Bearer <token>` (Doorkeeper): the token's
    /// scopes, remaining lifetime and application. An inactive token is refused (401
    /// `invalid_token`).
    pub async fn token_info(&self, token: &str) -> Result<TokenInfo, ClientError> {
        check_token(token)?;
        let url = self.endpoint("oauth/token/info")?;
        let request = self
            .transport
            .plain(Method::GET, &url)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .build()
            .map_err(|e| ClientError::InvalidArgument(format!("cannot build the request: {e}")))?;
        self.transport.send(request).await?.json()
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_join_under_the_base_path() {
        let c = OAuthClient::new("https://k.example", "id", "secret").expect("client");
        assert_eq!(
            c.endpoint("oauth/token").expect("url").as_str(),
            "https://k.example/oauth/token"
        );
        let c = OAuthClient::new("https://k.example/api/v1", "id", "secret").expect("client");
        assert_eq!(
            c.endpoint("oauth/token/info").expect("url").as_str(),
            "https://k.example/api/v1/oauth/token/info"
        );
    }

    #[test]
    fn bad_configuration_is_refused() {
        assert!(matches!(
            OAuthClient::new("k.example", "id", "s"),
            Err(ClientError::InvalidUrl { .. })
        ));
        assert!(matches!(
            OAuthClient::new("https://k.example", " ", "s"),
            Err(ClientError::InvalidConfig(_))
        ));
        assert!(matches!(
            OAuthClient::new("https://k.example", "id", ""),
            Err(ClientError::InvalidConfig(_))
        ));
    }

    #[test]
    fn from_lookup_names_each_variable() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let e = OAuthClient::from_lookup(vars(&[])).expect_err("missing");
        assert!(matches!(&e, ClientError::MissingEnv { name, .. } if name == "CLIENT_ID"));
        let e = OAuthClient::from_lookup(vars(&[("CLIENT_ID", "a")])).expect_err("missing");
        assert!(matches!(&e, ClientError::MissingEnv { name, .. } if name == "CLIENT_SECRET"));
        let e = OAuthClient::from_lookup(vars(&[("CLIENT_ID", "a"), ("CLIENT_SECRET", "b")]))
            .expect_err("missing");
        assert!(matches!(&e, ClientError::MissingEnv { name, .. } if name == "BASE_URL"));
        let e = OAuthClient::from_lookup(vars(&[
            ("CLIENT_ID", "a"),
            ("CLIENT_SECRET", "b"),
            ("BASE_URL", "sandbox.kopokopo.com"),
        ]))
        .expect_err("invalid");
        assert!(matches!(&e, ClientError::InvalidEnv { name, .. } if name == "BASE_URL"));
        let ok = OAuthClient::from_lookup(vars(&[
            ("CLIENT_ID", "a"),
            ("CLIENT_SECRET", "b"),
            ("BASE_URL", "https://sandbox.kopokopo.com"),
        ]))
        .expect("valid");
        assert_eq!(ok.base_url(), "https://sandbox.kopokopo.com/");
    }

    #[test]
    fn debug_hides_the_secret() {
        let c = OAuthClient::new("https://k.example", "id", "s3cr3t").expect("client");
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn basic_credentials_are_form_encoded() {
        assert_eq!(form_encode("a b:c/d"), "a+b%3Ac%2Fd");
    }
}
