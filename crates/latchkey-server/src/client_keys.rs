//! Client key resolution: `{wallet address}/jwks.json`, cached with a TTL, refreshed by one
//! caller at a time (single flight), refreshed early when a `kid` is unknown.
//!
//! Outbound fetches refuse loopback, private and link-local addresses unless the server runs in
//! development mode: the check is made on every address DNS returns (a custom resolver), so a
//! name cannot be rebound to an internal address between check and connect.

use ed25519_dalek::VerifyingKey;
use latchkey_proto::keys::{Jwk, JwkSet};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::grant::ClientKeySource;
use crate::store::postgres_notify::{Invalidation, InvalidationFeed};

/// Why a client key could not be found.
#[derive(Debug, thiserror::Error)]
pub enum KeyResolveError {
    /// The wallet address is not an acceptable URL.
    #[error("client wallet address `{0}` is not allowed: {1}")]
    BadUrl(String, String),
    /// Fetching the key set failed.
    #[error("could not fetch the client's keys from {0}: {1}")]
    Unreachable(String, String),
    /// The key set is not a valid JWK set.
    #[error("the client's key set at {0} is invalid: {1}")]
    InvalidKeySet(String, String),
    /// No key has this id.
    #[error("the client has no key with id `{0}`")]
    UnknownKeyId(String),
    /// The key is not an Ed25519 public key.
    #[error("the client's key `{0}` is unusable: {1}")]
    BadKey(String, String),
}

/// Settings of the resolver.
#[derive(Debug, Clone)]
pub struct KeyResolverConfig {
    /// How long a fetched key set is trusted.
    pub ttl: Duration,
    /// Minimum time between two fetches of one key set caused by an unknown `kid`.
    pub min_refresh_interval: Duration,
    /// Timeout of one fetch.
    pub fetch_timeout: Duration,
    /// Largest accepted key set, in bytes.
    pub max_body_bytes: usize,
    /// Development mode: allow `http://` and loopback/private addresses.
    pub allow_private: bool,
}

impl Default for KeyResolverConfig {
    fn default() -> Self {
        KeyResolverConfig {
            ttl: Duration::from_secs(300),
            min_refresh_interval: Duration::from_secs(5),
            fetch_timeout: Duration::from_secs(5),
            max_body_bytes: 64 * 1024,
            allow_private: false,
        }
    }
}

struct CachedSet {
    keys: HashMap<String, VerifyingKey>,
    fetched_at: Instant,
    /// The invalidation channel's epoch when the fetch started (multi-node deployments): the
    /// set is trusted only while the channel has stayed up since, so no eviction was missed.
    epoch: Option<u64>,
}

#[derive(Default)]
struct Entry {
    cached: Mutex<Option<Arc<CachedSet>>>,
    refresh: tokio::sync::Mutex<()>,
}

/// Resolves client keys; cheap to clone.
#[derive(Clone)]
pub struct ClientKeyResolver {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: KeyResolverConfig,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    feed: Option<Arc<InvalidationFeed>>,
    /// Where to announce "this wallet's keys changed" to the other nodes.
    publisher: Option<sqlx::PgPool>,
}

const MAX_CACHED_WALLETS: usize = 100_000;

impl ClientKeyResolver {
    /// A resolver with its own HTTP client.
    pub fn new(config: KeyResolverConfig) -> Result<Self, KeyResolveError> {
        let mut builder = reqwest::Client::builder()
            .timeout(config.fetch_timeout)
            .connect_timeout(config.fetch_timeout)
            .redirect(reqwest::redirect::Policy::none())
            // Fetches are rare (the cache absorbs them); an idle pooled connection would only
            // race the wallet server closing it ("connection closed before message completed").
            .pool_max_idle_per_host(0)
            .user_agent(concat!("latchkey/", env!("CARGO_PKG_VERSION")));
        if !config.allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnlyResolver));
        }
        let http = builder
            .build()
            .map_err(|e| KeyResolveError::Unreachable("-".into(), e.to_string()))?;
        Ok(ClientKeyResolver {
            inner: Arc::new(Inner {
                http,
                config,
                entries: Mutex::new(HashMap::new()),
                feed: None,
                publisher: None,
            }),
        })
    }

    /// A resolver whose cache follows a cross-node invalidation feed (PostgreSQL
    /// `LISTEN/NOTIFY`): `keys:` events evict a wallet's set, and while the channel is down (or
    /// after it was down) nothing cached is trusted: the resolver fails closed and refetches.
    pub fn with_feed(
        config: KeyResolverConfig,
        feed: Arc<InvalidationFeed>,
    ) -> Result<Self, KeyResolveError> {
        Self::with_feed_and_publisher(config, feed, None)
    }

    /// Like [`Self::with_feed`]; besides, when this node refetches a wallet's key set and finds
    /// it changed (a key added or removed), it publishes a `keys:` event on `publisher` so the
    /// other nodes drop their copy at once instead of trusting a removed key until the TTL.
    pub fn with_feed_and_publisher(
        config: KeyResolverConfig,
        feed: Arc<InvalidationFeed>,
        publisher: Option<sqlx::PgPool>,
    ) -> Result<Self, KeyResolveError> {
        let mut resolver = Self::new(config)?;
        if let Some(inner) = Arc::get_mut(&mut resolver.inner) {
            inner.feed = Some(feed.clone());
            inner.publisher = publisher;
        }
        let weak = Arc::downgrade(&resolver.inner);
        let mut events = feed.subscribe();
        tokio::spawn(async move {
            loop {
                let event = events.recv().await;
                let Some(inner) = weak.upgrade() else { return };
                let mut entries = match inner.entries.lock() {
                    Ok(guard) => guard,
                    Err(poisoned) => poisoned.into_inner(),
                };
                match event {
                    Ok(Invalidation::ClientKeys(url)) => {
                        let wallet = url.trim_end_matches("/jwks.json").trim_end_matches('/');
                        entries.retain(|k, _| k.trim_end_matches('/') != wallet);
                    }
                    Ok(Invalidation::All)
                    | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => entries.clear(),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(resolver)
    }

    /// True while a cached set may be served.
    fn trusted(&self, set: &CachedSet) -> bool {
        if set.fetched_at.elapsed() >= self.inner.config.ttl {
            return false;
        }
        match &self.inner.feed {
            None => true,
            Some(feed) => set.epoch.is_some() && feed.trusted_epoch() == set.epoch,
        }
    }

    /// Number of wallets with a cached key set (for tests and metrics).
    pub fn cached_wallets(&self) -> usize {
        match self.inner.entries.lock() {
            Ok(guard) => guard.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        }
    }

    /// The key with id `kid` of the client.
    pub async fn key_for(
        &self,
        client: &ClientKeySource,
        kid: &str,
    ) -> Result<VerifyingKey, KeyResolveError> {
        match client {
            ClientKeySource::Jwk(jwk) => {
                if jwk.kid != kid {
                    return Err(KeyResolveError::UnknownKeyId(kid.to_string()));
                }
                jwk.to_verifying_key()
                    .map_err(|e| KeyResolveError::BadKey(kid.to_string(), e.to_string()))
            }
            ClientKeySource::WalletAddress(url) => self.wallet_key(url, kid).await,
        }
    }

    fn entry(&self, wallet: &str) -> Arc<Entry> {
        let mut entries = match self.inner.entries.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if entries.len() >= MAX_CACHED_WALLETS && !entries.contains_key(wallet) {
            entries.clear();
        }
        entries.entry(wallet.to_string()).or_default().clone()
    }

    fn cached(entry: &Entry) -> Option<Arc<CachedSet>> {
        match entry.cached.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    async fn wallet_key(&self, wallet: &str, kid: &str) -> Result<VerifyingKey, KeyResolveError> {
        let config = &self.inner.config;
        let entry = self.entry(wallet);
        if let Some(set) = Self::cached(&entry) {
            if self.trusted(&set) {
                if let Some(key) = set.keys.get(kid) {
                    return Ok(*key);
                }
            }
        }
        // Single flight: one caller fetches, the others wait and reuse its result.
        let _guard = entry.refresh.lock().await;
        if let Some(set) = Self::cached(&entry) {
            if self.trusted(&set) {
                if let Some(key) = set.keys.get(kid) {
                    return Ok(*key);
                }
                if set.fetched_at.elapsed() < config.min_refresh_interval {
                    return Err(KeyResolveError::UnknownKeyId(kid.to_string()));
                }
            }
        }
        let set = Arc::new(self.fetch(wallet).await?);
        let found = set.keys.get(kid).copied();
        let previous = match entry.cached.lock() {
            Ok(mut guard) => guard.replace(set.clone()),
            Err(poisoned) => poisoned.into_inner().replace(set.clone()),
        };
        if let (Some(previous), Some(pool)) = (previous, &self.inner.publisher) {
            if previous.keys != set.keys {
                let (pool, event) = (pool.clone(), Invalidation::ClientKeys(wallet.to_string()));
                tokio::spawn(async move {
                    if let Err(e) = crate::store::postgres_notify::publish(&pool, &event).await {
                        tracing::warn!(error = %e, "could not announce a client key change");
                    }
                });
            }
        }
        found.ok_or_else(|| KeyResolveError::UnknownKeyId(kid.to_string()))
    }

    /// Fetches a wallet address document (for the client's `publicName` on the consent page),
    /// under the same address rules, timeout and size limit as key sets.
    pub async fn wallet_address_document(
        &self,
        wallet: &str,
    ) -> Result<latchkey_proto::wallet::WalletAddress, KeyResolveError> {
        // The same scheme and address rules as for key sets.
        jwks_url(wallet, self.inner.config.allow_private)?;
        let url = url::Url::parse(wallet)
            .map_err(|e| KeyResolveError::BadUrl(wallet.to_string(), e.to_string()))?;
        let body = self.fetch_bytes(url).await?;
        serde_json::from_slice(&body)
            .map_err(|e| KeyResolveError::InvalidKeySet(wallet.to_string(), e.to_string()))
    }

    async fn fetch(&self, wallet: &str) -> Result<CachedSet, KeyResolveError> {
        let config = &self.inner.config;
        let jwks_url = jwks_url(wallet, config.allow_private)?;
        let shown = jwks_url.to_string();
        let epoch = self
            .inner
            .feed
            .as_ref()
            .and_then(|feed| feed.ticket())
            .map(|ticket| ticket.epoch);
        let body = self.fetch_bytes(jwks_url).await?;
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| KeyResolveError::InvalidKeySet(shown.clone(), e.to_string()))?;
        let keys = set
            .keys
            .iter()
            .filter_map(|jwk: &Jwk| Some((jwk.kid.clone(), jwk.to_verifying_key().ok()?)))
            .collect();
        Ok(CachedSet {
            keys,
            fetched_at: Instant::now(),
            epoch,
        })
    }

    async fn fetch_bytes(&self, url: url::Url) -> Result<Vec<u8>, KeyResolveError> {
        let config = &self.inner.config;
        let shown = url.to_string();
        // One retry for a GET that failed before any answer (connection reset or refused).
        let mut attempt = 0;
        let response = loop {
            attempt += 1;
            match self
                .inner
                .http
                .get(url.clone())
                .header("accept", "application/json")
                .send()
                .await
            {
                Ok(response) => break response,
                Err(e) if attempt < 2 && !e.is_timeout() && (e.is_connect() || e.is_request()) => {
                    tracing::debug!(error = %e, "retrying a client key fetch");
                }
                Err(e) => {
                    return Err(KeyResolveError::Unreachable(shown, describe_reqwest(&e)));
                }
            }
        };
        if !response.status().is_success() {
            return Err(KeyResolveError::Unreachable(
                shown,
                format!("status {}", response.status()),
            ));
        }
        let mut body = Vec::new();
        let mut response = response;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| KeyResolveError::Unreachable(shown.clone(), e.to_string()))?
        {
            if body.len() + chunk.len() > config.max_body_bytes {
                return Err(KeyResolveError::InvalidKeySet(
                    shown,
                    format!("larger than {} bytes", config.max_body_bytes),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// `{wallet}/jwks.json`, after checking the scheme and, for IP literals, the address.
pub fn jwks_url(wallet: &str, allow_private: bool) -> Result<url::Url, KeyResolveError> {
    let bad = |why: &str| KeyResolveError::BadUrl(wallet.to_string(), why.to_string());
    let url = url::Url::parse(wallet).map_err(|e| bad(&e.to_string()))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        "http" => return Err(bad("http:// is only allowed in development mode (--dev)")),
        _ => return Err(bad("the scheme must be https")),
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(bad("a wallet address has no query, fragment or user info"));
    }
    match url.host() {
        None => return Err(bad("no host")),
        Some(url::Host::Ipv4(ip)) if !allow_private && !is_public(IpAddr::V4(ip)) => {
            return Err(bad(
                "private or loopback addresses are refused outside --dev",
            ))
        }
        Some(url::Host::Ipv6(ip)) if !allow_private && !is_public(IpAddr::V6(ip)) => {
            return Err(bad(
                "private or loopback addresses are refused outside --dev",
            ))
        }
        _ => {}
    }
    let text = format!("{}/jwks.json", wallet.trim_end_matches('/'));
    url::Url::parse(&text).map_err(|e| bad(&e.to_string()))
}

/// True for globally routable unicast addresses.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// A DNS resolver that drops non-public addresses, so no fetch reaches an internal host.
struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            let iter: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(iter)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_loopback_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["8.8.8.8", "2606:4700::1111", "1.1.1.1"] {
            assert!(is_public(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[test]
    fn jwks_url_checks_scheme_and_literal_addresses() {
        assert_eq!(
            jwks_url("https://wallet.example/alice", false)
                .expect("ok")
                .as_str(),
            "https://wallet.example/alice/jwks.json"
        );
        assert!(jwks_url("http://wallet.example/alice", false).is_err());
        assert!(jwks_url("https://127.0.0.1/alice", false).is_err());
        assert!(jwks_url("https://[::1]/alice", false).is_err());
        assert!(jwks_url("ftp://wallet.example/alice", false).is_err());
        assert!(jwks_url("https://wallet.example/alice?x=1", false).is_err());
        assert!(jwks_url("http://127.0.0.1:9/alice", true).is_ok());
    }
}
