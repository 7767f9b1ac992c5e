//! The Open Payments clients: [`AuthenticatedClient`] (signed GNAP calls) and
//! [`UnauthenticatedClient`] (public wallet address documents).

use latchkey_proto::gnap::{
    AccessItem, AccessTokenRequest, ClientRef, ContinueRequest, GrantRequest, GrantResponse,
    InteractFinish, InteractRequest, RotateResponse,
};
use latchkey_proto::keys::{Jwk, JwkSet};
use latchkey_proto::wallet::WalletAddress;
use reqwest::Method;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{check_http_url, parse_url, ClientConfig, DEFAULT_TIMEOUT};
use crate::error::ClientError;
use crate::transport::{Signer, Transport};

/// Builds an [`AuthenticatedClient`] from `WALLET_ADDRESS_URL`, `PRIVATE_KEY` (a PEM file path or
/// PEM text) and `KEY_ID`, as the Open Payments Rust snippets do:
///
/// ```no_run
/// # async fn run() -> Result<(), latchkey_client::ClientError> {
/// use latchkey_client::{create_authenticated_client, get_env_var};
///
/// let client = create_authenticated_client()?;
/// let access_token = get_env_var("ACCESS_TOKEN")?;
/// let token_manage_url = get_env_var("TOKEN_MANAGE_URL")?;
/// client
///     .token()
///     .revoke(&token_manage_url, Some(&access_token))
///     .await?;
/// println!("Access token revoked successfully");
/// # Ok(()) }
/// ```
pub fn create_authenticated_client() -> Result<AuthenticatedClient, ClientError> {
    AuthenticatedClient::from_env()
}

#[derive(Debug)]
struct Inner {
    transport: Transport,
    signer: Signer,
    wallet_address_url: String,
}

/// An Open Payments client that signs every request with its Ed25519 key (RFC 9421) and
/// identifies itself by its wallet address. Cheap to clone; clones share one connection pool.
#[derive(Debug, Clone)]
pub struct AuthenticatedClient {
    inner: Arc<Inner>,
}

impl AuthenticatedClient {
    /// A client from explicit configuration. The key is loaded now, so a bad key fails here.
    pub fn new(config: ClientConfig) -> Result<AuthenticatedClient, ClientError> {
        let wallet_address_url = config.wallet_address_url.trim().to_string();
        check_http_url(&wallet_address_url).map_err(|reason| {
            ClientError::InvalidConfig(format!("wallet address URL: {reason}"))
        })?;
        let key_id = config.key_id.trim().to_string();
        if key_id.is_empty() {
            return Err(ClientError::InvalidConfig("the key id is empty".into()));
        }
        let key = config.private_key.load()?;
        Ok(AuthenticatedClient {
            inner: Arc::new(Inner {
                transport: Transport::new(config.timeout)?,
                signer: Signer::new(key, key_id),
                wallet_address_url,
            }),
        })
    }

    /// A client from `WALLET_ADDRESS_URL`, `PRIVATE_KEY` and `KEY_ID`; the error names the
    /// variable that is missing or invalid.
    pub fn from_env() -> Result<AuthenticatedClient, ClientError> {
        AuthenticatedClient::new(ClientConfig::from_env()?)
    }

    /// The client's wallet address URL.
    pub fn wallet_address_url(&self) -> &str {
        &self.inner.wallet_address_url
    }

    /// The id of the signing key.
    pub fn key_id(&self) -> &str {
        self.inner.signer.key_id()
    }

    /// The public key as a JWK, as it must appear at `{wallet address}/jwks.json` (or inline in
    /// a grant request's `client`).
    pub fn public_jwk(&self) -> Jwk {
        Jwk::from_verifying_key(self.key_id(), &self.inner.signer.key().verifying_key())
    }

    /// Grant calls: request, continue, cancel.
    pub fn grant(&self) -> GrantResource<'_> {
        GrantResource { client: self }
    }

    /// Access token calls: rotate, revoke.
    pub fn token(&self) -> TokenResource<'_> {
        TokenResource { client: self }
    }

    /// Public wallet address documents and key sets.
    pub fn wallet_address(&self) -> WalletAddressResource<'_> {
        WalletAddressResource {
            transport: &self.inner.transport,
        }
    }

    /// A grant request for `access`, with `client` set to this client's wallet address and no
    /// interaction (what incoming-payment and quote grants need).
    pub fn grant_request(&self, access: Vec<AccessItem>) -> GrantRequest {
        GrantRequest {
            access_token: Some(AccessTokenRequest { access }),
            client: ClientRef::Url(self.wallet_address_url().to_string()),
            interact: None,
            subject: None,
        }
    }

    /// Like [`AuthenticatedClient::grant_request`], asking for interaction by redirect (what
    /// outgoing-payment grants need); `finish` is where the user's browser comes back.
    pub fn interactive_grant_request(
        &self,
        access: Vec<AccessItem>,
        finish: Option<InteractFinish>,
    ) -> GrantRequest {
        GrantRequest {
            interact: Some(InteractRequest {
                start: vec!["redirect".to_string()],
                finish,
            }),
            ..self.grant_request(access)
        }
    }

    async fn call(
        &self,
        method: Method,
        url: &str,
        what: &str,
        access_token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<crate::transport::Answer, ClientError> {
        let url = parse_url(url, what)?;
        let request =
            self.inner
                .signer
                .request(&self.inner.transport, method, &url, access_token, body)?;
        self.inner.transport.send(request).await
    }
}

/// `client.grant()`: RFC 9635 grant request, continuation and cancellation.
#[derive(Debug, Clone, Copy)]
pub struct GrantResource<'a> {
    client: &'a AuthenticatedClient,
}

impl GrantResource<'_> {
    /// `POST {auth_server_url}` with the grant request (RFC 9635 §2), signed.
    ///
    /// The answer holds an `access_token` (non-interactive grants: incoming payment, quote) or
    /// `interact` instructions (outgoing payment), and always `continue`.
    pub async fn request(
        &self,
        auth_server_url: &str,
        request: &GrantRequest,
    ) -> Result<GrantResponse, ClientError> {
        let body = serde_json::to_vec(request)
            .map_err(|e| ClientError::InvalidArgument(format!("grant request: {e}")))?;
        self.client
            .call(
                Method::POST,
                auth_server_url,
                "auth server URL",
                None,
                Some(body),
            )
            .await?
            .json()
    }

    /// `POST {continue_uri}` with `Authorization: GNAP <continue token>` (RFC 9635 §5):
    /// with `interact_ref` after the user finished interacting (§5.1), without it to poll (§5.2;
    /// then no body is sent).
    pub async fn continue_grant(
        &self,
        continue_uri: &str,
        access_token: Option<&str>,
        interact_ref: Option<&str>,
    ) -> Result<GrantResponse, ClientError> {
        let body = match interact_ref {
            Some(interact_ref) => Some(
                serde_json::to_vec(&ContinueRequest {
                    interact_ref: Some(interact_ref.to_string()),
                })
                .map_err(|e| ClientError::InvalidArgument(format!("continue request: {e}")))?,
            ),
            None => None,
        };
        self.client
            .call(
                Method::POST,
                continue_uri,
                "continue URI",
                access_token,
                body,
            )
            .await?
            .json()
    }

    /// `DELETE {continue_uri}` (RFC 9635 §5.4): cancels (revokes) the grant; every token of it
    /// stops working. Latchkey answers 204 again for a grant already cancelled.
    pub async fn cancel(
        &self,
        continue_uri: &str,
        access_token: Option<&str>,
    ) -> Result<(), ClientError> {
        self.client
            .call(
                Method::DELETE,
                continue_uri,
                "continue URI",
                access_token,
                None,
            )
            .await
            .map(|_| ())
    }
}

/// `client.token()`: RFC 9635 §6 token management.
#[derive(Debug, Clone, Copy)]
pub struct TokenResource<'a> {
    client: &'a AuthenticatedClient,
}

impl TokenResource<'_> {
    /// `POST {manage_url}` (RFC 9635 §6.1): the old token stops working and a new one, with the
    /// same access and a new manage URL, is returned.
    pub async fn rotate(
        &self,
        manage_url: &str,
        access_token: Option<&str>,
    ) -> Result<RotateResponse, ClientError> {
        self.client
            .call(
                Method::POST,
                manage_url,
                "token manage URL",
                access_token,
                None,
            )
            .await?
            .json()
    }

    /// `DELETE {manage_url}` (RFC 9635 §6.2): the token stops working. Latchkey answers 204 again
    /// for a token already revoked or expired.
    pub async fn revoke(
        &self,
        manage_url: &str,
        access_token: Option<&str>,
    ) -> Result<(), ClientError> {
        self.client
            .call(
                Method::DELETE,
                manage_url,
                "token manage URL",
                access_token,
                None,
            )
            .await
            .map(|_| ())
    }
}

/// An Open Payments client without a key, for public documents: wallet addresses and their key
/// sets.
#[derive(Debug, Clone)]
pub struct UnauthenticatedClient {
    transport: Transport,
}

impl UnauthenticatedClient {
    /// A client with the default timeout.
    pub fn new() -> Result<UnauthenticatedClient, ClientError> {
        Self::with_timeout(DEFAULT_TIMEOUT)
    }

    /// A client with a per-request time limit.
    pub fn with_timeout(timeout: Duration) -> Result<UnauthenticatedClient, ClientError> {
        Ok(UnauthenticatedClient {
            transport: Transport::new(timeout)?,
        })
    }

    /// Public wallet address documents and key sets.
    pub fn wallet_address(&self) -> WalletAddressResource<'_> {
        WalletAddressResource {
            transport: &self.transport,
        }
    }
}

/// `client.wallet_address()`: the public documents of a wallet address.
#[derive(Debug, Clone, Copy)]
pub struct WalletAddressResource<'a> {
    transport: &'a Transport,
}

impl WalletAddressResource<'_> {
    /// `GET {url}` with `Accept: application/json`: the wallet address document, whose
    /// `authServer` is where grants are requested.
    pub async fn get(&self, url: &str) -> Result<WalletAddress, ClientError> {
        let url = parse_url(url, "wallet address URL")?;
        let request = self
            .transport
            .plain(Method::GET, &url)
            .build()
            .map_err(|e| ClientError::InvalidArgument(format!("cannot build the request: {e}")))?;
        self.transport.send(request).await?.json()
    }

    /// `GET {url}/jwks.json`: the wallet address' public keys.
    pub async fn keys(&self, url: &str) -> Result<JwkSet, ClientError> {
        let mut url = parse_url(url, "wallet address URL")?;
        let path = format!("{}/jwks.json", url.path().trim_end_matches('/'));
        url.set_path(&path);
        let request = self
            .transport
            .plain(Method::GET, &url)
            .build()
            .map_err(|e| ClientError::InvalidArgument(format!("cannot build the request: {e}")))?;
        self.transport.send(request).await?.json()
    }
}
