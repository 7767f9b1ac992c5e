//! # latchkey-client
//!
//! A Rust SDK for the whole life of an access token, against Latchkey or any other Open Payments
//! (GNAP) authorization server, and against Kopo Kopo-style OAuth 2.0 servers. Calls read like
//! the Open Payments snippets:
//!
//! ```no_run
//! # async fn run() -> Result<(), latchkey_client::ClientError> {
//! use latchkey_client::{create_authenticated_client, get_env_var};
//!
//! // WALLET_ADDRESS_URL, PRIVATE_KEY (PEM path or PEM text), KEY_ID
//! let client = create_authenticated_client()?;
//!
//! let access_token = get_env_var("ACCESS_TOKEN")?;
//! let token_manage_url = get_env_var("TOKEN_MANAGE_URL")?;
//! let response = client
//!     .token()
//!     .rotate(&token_manage_url, Some(&access_token))
//!     .await?;
//! println!("ACCESS_TOKEN = {}", response.access_token.value);
//! println!("MANAGE_URL = {}", response.access_token.manage);
//! # Ok(()) }
//! ```
//!
//! * [`AuthenticatedClient`]: `grant().request / continue_grant / cancel`,
//!   `token().rotate / revoke`, `wallet_address().get / keys`. Every request is signed with
//!   HTTP Message Signatures (RFC 9421, Ed25519, strict form: quoted components, `sig1=:…:`)
//!   covering `@method`, `@target-uri`, `authorization` and, with a body, `content-digest`,
//!   `content-length`, `content-type`; bodies carry `Content-Digest` (RFC 9530) and tokens go in
//!   `Authorization: GNAP <token>`. Every request has a time limit; redirects are not followed.
//! * [`UnauthenticatedClient`]: wallet address documents and key sets.
//! * [`OAuthClient`]: `request_access_token`, `revoke_access_token`, `introspect`, `token_info`.
//! * [`IntrospectionClient`]: GNAP token introspection, for resource servers.
//! * [`ClientError`]: one error type; a refusal carries the HTTP status and the protocol's
//!   `code` and `description` ([`ClientError::Server`]), with helpers such as
//!   [`ClientError::is_token_inactive`].
//!
//! Requests and responses are the types of [`latchkey_proto`], re-exported as [`gnap`],
//! [`oauth`](mod@oauth_types), [`keys`] and [`wallet`].

#![warn(missing_docs)]

pub mod access;
mod client;
pub mod config;
mod env;
pub mod error;
pub mod interaction;
mod introspection;
mod oauth;
mod transport;

pub use client::{
    create_authenticated_client, AuthenticatedClient, GrantResource, TokenResource,
    UnauthenticatedClient, WalletAddressResource,
};
pub use config::{ClientConfig, PrivateKey, DEFAULT_TIMEOUT};
pub use env::{get_env_var, load_env, load_env_from};
pub use error::ClientError;
pub use introspection::IntrospectionClient;
pub use oauth::{ClientAuthMethod, OAuthClient, ENV_BASE_URL, ENV_CLIENT_ID, ENV_CLIENT_SECRET};

/// GNAP / Open Payments wire types (grant request and response, access items, tokens, errors).
pub use latchkey_proto::gnap;
/// Ed25519 keys and JWKs.
pub use latchkey_proto::keys;
/// OAuth 2.0 wire types.
pub use latchkey_proto::oauth as oauth_types;
/// The wallet address document.
pub use latchkey_proto::wallet;
