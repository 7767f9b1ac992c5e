//! OAuth 2.0 for machine clients (Kopo Kopo style), on the same core as GNAP:
//! `client_credentials` tokens (RFC 6749 §4.4), revocation (RFC 7009), introspection
//! (RFC 7662) and Doorkeeper-style token info.
//!
//! * [`client`]: the client aggregate (id, secret hash, scopes, enabled).
//! * [`token`]: token records and liveness.
//! * [`scope`]: scope rules.
//! * [`limiter`]: rate limiting of failed client authentications.
//! * [`admin`]: client management (CLI and admin API).
//!
//! Secrets and token values carry 256 bits from the OS CSPRNG and are stored as SHA-256 only:
//! the hot path does one indexed read, one SHA-256 and one constant-time comparison, no slow
//! password hash. Token state is never cached, so a revocation is visible at once.

pub mod admin;
pub mod client;
pub mod error;
pub mod limiter;
pub mod scope;
pub mod token;

use latchkey_proto::oauth::{
    IntrospectionResponse, TokenInfo, TokenInfoApplication, TokenResponse,
};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::clock::{now_ms, Millis};
use crate::store::SharedOAuthStore;
use crate::token_format::{TokenHash, TokenValue};

pub use admin::ClientAdmin;
pub use client::OAuthClient;
pub use error::OAuthFailure;
pub use limiter::{FailureLimiter, LimiterConfig};
pub use token::OAuthTokenRecord;

/// RFC 6749 §7.1 / RFC 6750: the only token type issued.
pub const TOKEN_TYPE: &str = "Bearer";

/// Settings of the OAuth service.
#[derive(Debug, Clone, Copy)]
pub struct OAuthSettings {
    /// Access token lifetime (default 3600 s).
    pub token_lifetime: Duration,
    /// Failed-authentication limits.
    pub limits: LimiterConfig,
}

impl Default for OAuthSettings {
    fn default() -> Self {
        OAuthSettings {
            token_lifetime: Duration::from_secs(3600),
            limits: LimiterConfig::default(),
        }
    }
}

/// Client credentials as presented (by HTTP Basic or in the body); either may be missing.
#[derive(Clone, Copy, Default)]
pub struct Credentials<'a> {
    /// `client_id`.
    pub client_id: Option<&'a str>,
    /// `client_secret`.
    pub client_secret: Option<&'a str>,
}

impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.map(|_| "<redacted>"))
            .finish()
    }
}

/// A token just issued, with its value to hand to the client once.
#[derive(Debug)]
pub struct IssuedToken {
    /// The stored record.
    pub record: OAuthTokenRecord,
    /// The value.
    pub value: TokenValue,
}

impl IssuedToken {
    /// RFC 6749 §5.1 response, with Doorkeeper's `created_at`.
    pub fn response(&self) -> TokenResponse {
        TokenResponse {
            access_token: self.value.expose().to_string(),
            token_type: TOKEN_TYPE.to_string(),
            expires_in: u64::try_from(
                (self.record.expires_at - self.record.created_at).max(0) / 1000,
            )
            .unwrap_or(0),
            created_at: self.record.created_at_secs(),
            scope: scope::join(&self.record.scopes),
        }
    }
}

struct Inner {
    store: SharedOAuthStore,
    settings: OAuthSettings,
    limiter: FailureLimiter,
    admin: ClientAdmin,
}

/// The OAuth service: client authentication, token issue, revocation, introspection.
#[derive(Clone)]
pub struct OAuthService {
    inner: Arc<Inner>,
}

fn millis(d: Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A source address for logs.
pub(crate) fn shown(source: Option<IpAddr>) -> String {
    source.map_or_else(|| "unknown".into(), |ip| ip.to_string())
}

const AUTH_FAILED: &str = "client authentication failed: unknown client or wrong secret";

impl OAuthService {
    /// A service over `store`.
    pub fn new(store: SharedOAuthStore, settings: OAuthSettings) -> Self {
        OAuthService {
            inner: Arc::new(Inner {
                admin: ClientAdmin::new(store.clone()),
                limiter: FailureLimiter::new(settings.limits),
                store,
                settings,
            }),
        }
    }

    /// Client management.
    pub fn admin(&self) -> &ClientAdmin {
        &self.inner.admin
    }

    /// The failed-authentication limiter (the admin API uses it for its own token too).
    pub fn limiter(&self) -> &FailureLimiter {
        &self.inner.limiter
    }

    /// The settings.
    pub fn settings(&self) -> OAuthSettings {
        self.inner.settings
    }

    /// Authenticates a client (RFC 6749 §2.3.1), under the failed-authentication limits.
    ///
    /// Unknown ids and wrong secrets get the same answer. Only failures are counted; a
    /// success exempts its (client id, source) pair (see [`limiter`]).
    pub async fn authenticate(
        &self,
        credentials: Credentials<'_>,
        source: Option<IpAddr>,
    ) -> Result<OAuthClient, OAuthFailure> {
        self.check_limits(credentials, source)?;
        self.authenticate_within_limits(credentials, source, None)
            .await
    }

    /// Refuses an attempt from a client id or source over its failed-authentication limits,
    /// before anything is read.
    fn check_limits(
        &self,
        credentials: Credentials<'_>,
        source: Option<IpAddr>,
    ) -> Result<(), OAuthFailure> {
        self.inner
            .limiter
            .check(credentials.client_id, source)
            .map_err(|limited| {
                tracing::debug!(
                    client_id = credentials.client_id.unwrap_or_default(),
                    source = %shown(source),
                    per_client = limited.per_client,
                    "client authentication refused: too many failures"
                );
                OAuthFailure::RateLimited {
                    retry_after_secs: limited.retry_after_secs,
                }
            })
    }

    /// [`OAuthService::authenticate`] once [`OAuthService::check_limits`] has let the attempt
    /// through, given a client row already read (with a token it owns): when it is the row of
    /// the presented client id, it is not read again.
    async fn authenticate_within_limits(
        &self,
        credentials: Credentials<'_>,
        source: Option<IpAddr>,
        known: Option<&OAuthClient>,
    ) -> Result<OAuthClient, OAuthFailure> {
        let limiter = &self.inner.limiter;
        let (Some(id), Some(secret)) = (credentials.client_id, credentials.client_secret) else {
            limiter.record_failure(None, source);
            return Err(OAuthFailure::InvalidClient(
                match credentials.client_id {
                    Some(_) => "client authentication failed: client_secret is missing",
                    None => {
                        "client authentication is required: send client_id and client_secret \
                         in the body or as HTTP Basic credentials (RFC 6749 §2.3.1)"
                    }
                }
                .into(),
            ));
        };
        // RFC 6749 §A.1: "client-id = *VSCHAR" (printable ASCII). Anything else (a NUL byte,
        // which PostgreSQL refuses in text, or a kilobyte of text) is an unknown client,
        // answered without a database read.
        let client = match known {
            Some(known) if known.id == id => Some(known.clone()),
            _ if is_vschar_id(id) => self.inner.store.client_by_id(id).await?,
            _ => None,
        };
        let Some(client) = client else {
            limiter.record_failure(None, source);
            tracing::debug!(source = %shown(source), "client authentication failed: unknown client id");
            return Err(OAuthFailure::InvalidClient(AUTH_FAILED.into()));
        };
        if !client.secret_matches(secret) {
            limiter.record_failure(Some(&client.id), source);
            tracing::info!(client_id = %client.id, source = %shown(source), "client authentication failed: wrong secret");
            return Err(OAuthFailure::InvalidClient(AUTH_FAILED.into()));
        }
        if !client.is_enabled() {
            return Err(OAuthFailure::InvalidClient(
                "this client is disabled".into(),
            ));
        }
        limiter.record_success(&client.id, source);
        Ok(client)
    }

    /// Refuses an authentication attempt that could not even be read (say, malformed HTTP
    /// Basic credentials): counted as a failure of the source, under the same limits.
    pub fn refuse(&self, source: Option<IpAddr>, description: &str) -> OAuthFailure {
        let limiter = &self.inner.limiter;
        if let Err(limited) = limiter.check(None, source) {
            return OAuthFailure::RateLimited {
                retry_after_secs: limited.retry_after_secs,
            };
        }
        limiter.record_failure(None, source);
        OAuthFailure::InvalidClient(description.to_string())
    }

    /// Issues a `client_credentials` access token (RFC 6749 §4.4.3).
    ///
    /// RFC 6749 §4.4.3: "A refresh token SHOULD NOT be included." None is.
    pub async fn issue(
        &self,
        client: &OAuthClient,
        requested_scope: Option<&str>,
    ) -> Result<IssuedToken, OAuthFailure> {
        let scopes = scope::grant(requested_scope, &client.scopes)
            .map_err(|e| OAuthFailure::InvalidScope(e.to_string()))?;
        let now = now_ms();
        let value = TokenValue::generate_access_token();
        let record = OAuthTokenRecord {
            hash: value.hash(),
            client_id: client.id.clone(),
            scopes,
            created_at: now,
            expires_at: now.saturating_add(millis(self.inner.settings.token_lifetime)),
            revoked_at: None,
        };
        // The secret the client was just authenticated with: if it has been replaced since
        // (or the client disabled or deleted), no token is issued.
        if !self
            .inner
            .store
            .insert_token(&record, &client.secret_hash)
            .await?
        {
            return Err(OAuthFailure::InvalidClient(
                "this client was disabled or deleted, or its secret was replaced".into(),
            ));
        }
        tracing::debug!(client_id = %client.id, "oauth access token issued");
        Ok(IssuedToken { record, value })
    }

    /// Revokes `token` if it was issued to `client` (RFC 7009 §2.1).
    ///
    /// RFC 7009 §2.2: "The authorization server responds with HTTP status code 200 if the
    /// token has been revoked successfully or if the client submitted an invalid token. Note:
    /// invalid tokens do not cause an error response since the client cannot handle such an
    /// error in a reasonable way." A token of another client is treated the same way: it is
    /// left alone, and the caller learns nothing about it.
    pub async fn revoke(&self, client: &OAuthClient, token: &str) -> Result<(), OAuthFailure> {
        let hash = TokenHash::of(token);
        let revoked = self
            .inner
            .store
            .revoke_token(&hash, &client.id, now_ms())
            .await?;
        if revoked {
            tracing::info!(client_id = %client.id, token_hash = ?hash, "oauth access token revoked");
        } else {
            tracing::debug!(client_id = %client.id, "revocation had no effect (unknown, already revoked, or another client's token)");
        }
        Ok(())
    }

    /// Authenticates the caller ([`OAuthService::authenticate`]) and introspects `token` for it
    /// (RFC 7662 §2.2, see the `introspection` module), with one store read in the usual case.
    ///
    /// A token's row is read together with its owner's row. When the caller presents the
    /// owner's id (a resource server checking its own client's token), that row is the
    /// caller's, and the secret is checked against it instead of reading the client a second
    /// time (issue 7: on PostgreSQL the two reads made an OAuth introspection cost 51 µs of
    /// server CPU against 28 µs for a GNAP one). The failed-authentication limits are asked
    /// before anything is read, so a refused caller costs no read.
    pub async fn authenticate_and_introspect(
        &self,
        credentials: Credentials<'_>,
        source: Option<IpAddr>,
        token: &str,
    ) -> Result<IntrospectionResponse, OAuthFailure> {
        self.check_limits(credentials, source)?;
        let presented = credentials.client_id.is_some() && credentials.client_secret.is_some();
        let found = if presented {
            self.inner
                .store
                .token_by_hash(&TokenHash::of(token))
                .await?
        } else {
            None
        };
        let owner = found.as_ref().map(|(_, owner)| owner);
        let client = self
            .authenticate_within_limits(credentials, source, owner)
            .await?;
        Ok(introspection(&client, found))
    }

    /// Doorkeeper's token info for a bearer token (what Kopo Kopo serves at
    /// `GET /oauth/token/info`); an inactive token is `invalid_token` (RFC 6750 §3.1: "The
    /// access token provided is expired, revoked, malformed, or invalid for other reasons").
    pub async fn token_info(&self, token: &str) -> Result<TokenInfo, OAuthFailure> {
        let now = now_ms();
        match self
            .inner
            .store
            .token_by_hash(&TokenHash::of(token))
            .await?
        {
            Some((record, owner)) if record.is_active(&owner, now) => Ok(TokenInfo {
                resource_owner_id: None,
                scope: record.scopes.clone(),
                expires_in: record.expires_in_secs(now),
                application: TokenInfoApplication { uid: owner.id },
                created_at: record.created_at_secs(),
            }),
            _ => Err(OAuthFailure::InvalidToken(
                "the access token is unknown, expired or revoked".into(),
            )),
        }
    }

    /// Deletes tokens that have expired (they can never be active again). Returns how many.
    pub async fn purge_expired(&self) -> Result<u64, OAuthFailure> {
        Ok(self.inner.store.delete_expired_tokens(now_ms()).await?)
    }
}

/// RFC 7662 §2.2's answer to `client` for a token row and its owner's (`None`: no such
/// token).
///
/// RFC 7662 §2.2: "If the introspection call is properly authorized but the token is not
/// active, does not exist on this server, or the protected resource is not allowed to
/// introspect this particular token, then the authorization server MUST return an
/// introspection response with the "active" field set to "false"." Another client's token is
/// "not allowed", so it gets `{"active": false}`.
fn introspection(
    client: &OAuthClient,
    found: Option<(OAuthTokenRecord, OAuthClient)>,
) -> IntrospectionResponse {
    match found {
        Some((record, owner)) if owner.id == client.id && record.is_active(&owner, now_ms()) => {
            IntrospectionResponse {
                active: true,
                scope: Some(scope::join(&record.scopes)),
                client_id: Some(record.client_id.clone()),
                token_type: Some(TOKEN_TYPE.to_string()),
                exp: Some(record.expires_at_secs()),
                iat: Some(record.created_at_secs()),
            }
        }
        _ => IntrospectionResponse {
            active: false,
            ..IntrospectionResponse::default()
        },
    }
}

/// True for a client id made of RFC 6749's VSCHAR (`%x20-7E`), at most 255 of them.
fn is_vschar_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 255 && id.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::is_vschar_id;

    /// RFC 6749 §A.1 client ids: printable ASCII only, and not absurdly long; anything else is
    /// an unknown client without a database read (PostgreSQL refuses a NUL in text).
    #[test]
    fn client_ids_outside_vschar_are_not_looked_up() {
        assert!(is_vschar_id("WD_8RiLsGzUUiUWYfpnCbg"));
        assert!(is_vschar_id(" ~"));
        assert!(is_vschar_id(&"a".repeat(255)));
        assert!(!is_vschar_id(""));
        assert!(!is_vschar_id("no\0body"));
        assert!(!is_vschar_id("tab\there"));
        assert!(!is_vschar_id("caf\u{e9}"));
        assert!(!is_vschar_id(&"a".repeat(256)));
    }
}
