//! Layered configuration: built-in defaults, then an optional TOML file, then environment
//! variables and command-line flags (the binary merges those two with clap).

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::domain::lifecycle::{InteractionPolicy, Lifetimes};

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file cannot be read or parsed.
    #[error("config file {0}: {1}")]
    File(PathBuf, String),
    /// A value is invalid.
    #[error("invalid setting `{0}`: {1}")]
    Invalid(&'static str, String),
}

/// One layer of settings; every field optional. The TOML file uses these names.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigLayer {
    /// Development mode: sandbox wallets, `http://` and loopback client wallet addresses.
    pub dev: Option<bool>,
    /// Public listener address.
    pub listen: Option<String>,
    /// Private listener address (introspection, admin, health).
    pub private_listen: Option<String>,
    /// `sqlite:///path/file.db`.
    pub database: Option<String>,
    /// The URL clients reach the public listener at.
    pub public_url: Option<String>,
    /// Folder for the sandbox's data (database, keys).
    pub data_dir: Option<String>,
    /// Access token lifetime, seconds.
    pub access_token_lifetime_secs: Option<u64>,
    /// Continuation `wait`, seconds.
    pub continue_wait_secs: Option<u64>,
    /// Interaction lifetime, seconds.
    pub interaction_lifetime_secs: Option<u64>,
    /// Accepted clock skew / age of a signature's `created`, seconds.
    pub signature_window_secs: Option<u64>,
    /// Client key cache lifetime, seconds.
    pub key_cache_ttl_secs: Option<u64>,
    /// Largest accepted request body, bytes.
    pub max_body_bytes: Option<usize>,
    /// Token protecting the admin API; no token, no admin API.
    pub admin_token: Option<String>,
    /// OAuth access token lifetime, seconds.
    pub oauth_token_lifetime_secs: Option<u64>,
    /// Failed OAuth client authentications allowed per client id in the window (0: no limit).
    pub oauth_auth_failures_per_client: Option<u32>,
    /// Failed client (and admin) authentications allowed per source address (0: no limit).
    pub oauth_auth_failures_per_source: Option<u32>,
    /// The window of those limits, seconds.
    pub oauth_auth_failure_window_secs: Option<u64>,
    /// How long dead state (revoked or expired tokens, finalized grants) is kept, seconds.
    pub janitor_retention_secs: Option<u64>,
    /// Seconds between janitor rounds.
    pub janitor_interval_secs: Option<u64>,
    /// An identity provider's consent page (the built-in page is used without one).
    pub consent_url: Option<String>,
    /// Secret of the identity-provider API (`x-idp-secret`); the API is off without one.
    pub idp_secret: Option<String>,
    /// Incoming-payment grants need interaction too (default false).
    pub interaction_for_incoming_payment: Option<bool>,
    /// Quote grants need interaction too (default false).
    pub interaction_for_quote: Option<bool>,
    /// `list-all` access needs interaction (default true).
    pub interaction_for_list_all: Option<bool>,
}

impl ConfigLayer {
    /// Reads a TOML file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::File(path.to_path_buf(), e.to_string()))?;
        toml::from_str(&text).map_err(|e| ConfigError::File(path.to_path_buf(), e.to_string()))
    }

    /// `self` with every unset field taken from `lower`.
    pub fn over(self, lower: ConfigLayer) -> ConfigLayer {
        ConfigLayer {
            dev: self.dev.or(lower.dev),
            listen: self.listen.or(lower.listen),
            private_listen: self.private_listen.or(lower.private_listen),
            database: self.database.or(lower.database),
            public_url: self.public_url.or(lower.public_url),
            data_dir: self.data_dir.or(lower.data_dir),
            access_token_lifetime_secs: self
                .access_token_lifetime_secs
                .or(lower.access_token_lifetime_secs),
            continue_wait_secs: self.continue_wait_secs.or(lower.continue_wait_secs),
            interaction_lifetime_secs: self
                .interaction_lifetime_secs
                .or(lower.interaction_lifetime_secs),
            signature_window_secs: self.signature_window_secs.or(lower.signature_window_secs),
            key_cache_ttl_secs: self.key_cache_ttl_secs.or(lower.key_cache_ttl_secs),
            max_body_bytes: self.max_body_bytes.or(lower.max_body_bytes),
            admin_token: self.admin_token.or(lower.admin_token),
            oauth_token_lifetime_secs: self
                .oauth_token_lifetime_secs
                .or(lower.oauth_token_lifetime_secs),
            oauth_auth_failures_per_client: self
                .oauth_auth_failures_per_client
                .or(lower.oauth_auth_failures_per_client),
            oauth_auth_failures_per_source: self
                .oauth_auth_failures_per_source
                .or(lower.oauth_auth_failures_per_source),
            oauth_auth_failure_window_secs: self
                .oauth_auth_failure_window_secs
                .or(lower.oauth_auth_failure_window_secs),
            janitor_retention_secs: self.janitor_retention_secs.or(lower.janitor_retention_secs),
            janitor_interval_secs: self.janitor_interval_secs.or(lower.janitor_interval_secs),
            consent_url: self.consent_url.or(lower.consent_url),
            idp_secret: self.idp_secret.or(lower.idp_secret),
            interaction_for_incoming_payment: self
                .interaction_for_incoming_payment
                .or(lower.interaction_for_incoming_payment),
            interaction_for_quote: self.interaction_for_quote.or(lower.interaction_for_quote),
            interaction_for_list_all: self
                .interaction_for_list_all
                .or(lower.interaction_for_list_all),
        }
    }

    /// True when nothing was configured at all: `latchkey serve` alone starts the sandbox.
    pub fn is_empty(&self) -> bool {
        self.dev.is_none()
            && self.listen.is_none()
            && self.private_listen.is_none()
            && self.database.is_none()
            && self.public_url.is_none()
    }
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Development mode (sandbox wallets, http and loopback client wallet addresses allowed).
    pub dev: bool,
    /// Public listener.
    pub listen: SocketAddr,
    /// Private listener.
    pub private_listen: SocketAddr,
    /// Database URL.
    pub database: String,
    /// Public URL; `None` means "http:// + the bound public address".
    pub public_url: Option<String>,
    /// Sandbox data folder.
    pub data_dir: PathBuf,
    /// Token, continuation and interaction lifetimes.
    pub lifetimes: Lifetimes,
    /// Signature `created` window.
    pub signature_window: Duration,
    /// Client key cache lifetime.
    pub key_cache_ttl: Duration,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Admin API token.
    pub admin_token: Option<String>,
    /// OAuth access token lifetime.
    pub oauth_token_lifetime: Duration,
    /// Limits on failed OAuth client (and admin) authentications.
    pub oauth_limits: crate::oauth::LimiterConfig,
    /// Janitor retention.
    pub janitor_retention: Duration,
    /// Janitor interval.
    pub janitor_interval: Duration,
    /// An identity provider's consent page.
    pub consent_url: Option<String>,
    /// Identity-provider API secret.
    pub idp_secret: Option<String>,
    /// Which grants need interaction.
    pub interaction_policy: InteractionPolicy,
}

impl Config {
    /// Resolves a merged layer. When nothing was configured, development mode is on.
    pub fn resolve(layer: ConfigLayer) -> Result<Config, ConfigError> {
        let dev = layer.dev.unwrap_or(layer.is_empty());
        let data_dir = PathBuf::from(layer.data_dir.unwrap_or_else(|| "latchkey-data".into()));
        let listen = parse_addr(
            "listen",
            layer.listen.as_deref().unwrap_or("127.0.0.1:8080"),
        )?;
        let private_listen = parse_addr(
            "private_listen",
            layer.private_listen.as_deref().unwrap_or("127.0.0.1:8081"),
        )?;
        let database = layer.database.unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                data_dir.join("latchkey.db").to_string_lossy()
            )
        });
        if let Some(url) = layer.consent_url.as_deref().filter(|u| !u.is_empty()) {
            url::Url::parse(url).map_err(|e| ConfigError::Invalid("consent_url", e.to_string()))?;
        }
        if layer.oauth_token_lifetime_secs == Some(0) {
            return Err(ConfigError::Invalid(
                "oauth_token_lifetime_secs",
                "must be at least 1".into(),
            ));
        }
        if layer.oauth_auth_failure_window_secs == Some(0) {
            return Err(ConfigError::Invalid(
                "oauth_auth_failure_window_secs",
                "must be at least 1".into(),
            ));
        }
        if let Some(url) = &layer.public_url {
            let parsed = url::Url::parse(url)
                .map_err(|e| ConfigError::Invalid("public_url", e.to_string()))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ConfigError::Invalid("public_url", "must be http(s)".into()));
            }
        }
        let secs = |v: Option<u64>, d: u64| Duration::from_secs(v.unwrap_or(d));
        Ok(Config {
            dev,
            listen,
            private_listen,
            database,
            public_url: layer
                .public_url
                .map(|u| u.trim_end_matches('/').to_string()),
            data_dir,
            lifetimes: Lifetimes {
                access_token: secs(layer.access_token_lifetime_secs, 600),
                continue_wait: secs(layer.continue_wait_secs, 5),
                interaction: secs(layer.interaction_lifetime_secs, 600),
            },
            signature_window: secs(layer.signature_window_secs, 300),
            key_cache_ttl: secs(layer.key_cache_ttl_secs, 300),
            max_body_bytes: layer.max_body_bytes.unwrap_or(64 * 1024),
            admin_token: layer.admin_token.filter(|t| !t.is_empty()),
            janitor_retention: secs(layer.janitor_retention_secs, 7 * 24 * 3600),
            janitor_interval: secs(layer.janitor_interval_secs, 300),
            consent_url: layer.consent_url.filter(|u| !u.is_empty()),
            idp_secret: layer.idp_secret.filter(|t| !t.is_empty()),
            interaction_policy: InteractionPolicy {
                incoming_payment: layer.interaction_for_incoming_payment.unwrap_or(false),
                quote: layer.interaction_for_quote.unwrap_or(false),
                list_all: layer.interaction_for_list_all.unwrap_or(true),
            },
            oauth_token_lifetime: secs(layer.oauth_token_lifetime_secs, 3600),
            oauth_limits: {
                let d = crate::oauth::LimiterConfig::default();
                crate::oauth::LimiterConfig {
                    per_client: layer.oauth_auth_failures_per_client.unwrap_or(d.per_client),
                    per_source: layer.oauth_auth_failures_per_source.unwrap_or(d.per_source),
                    window: layer
                        .oauth_auth_failure_window_secs
                        .map(Duration::from_secs)
                        .unwrap_or(d.window),
                    trust_ttl: d.trust_ttl,
                }
            },
        })
    }
}

fn parse_addr(name: &'static str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse()
        .map_err(|e| ConfigError::Invalid(name, format!("`{text}`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_configured_means_sandbox_defaults() {
        let c = Config::resolve(ConfigLayer::default()).expect("ok");
        assert!(c.dev);
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert!(c.database.ends_with("latchkey-data/latchkey.db"));
        assert_eq!(c.lifetimes.access_token, Duration::from_secs(600));
        assert_eq!(c.signature_window, Duration::from_secs(300));
    }

    #[test]
    fn higher_layers_win_and_configuring_anything_turns_dev_off() {
        let file: ConfigLayer = toml::from_str(
            "listen = \"0.0.0.0:9000\"\naccess_token_lifetime_secs = 60\npublic_url = \"https://a.example/\"",
        )
        .expect("toml");
        let flags = ConfigLayer {
            listen: Some("127.0.0.1:1".into()),
            ..ConfigLayer::default()
        };
        let c = Config::resolve(flags.over(file)).expect("ok");
        assert!(!c.dev);
        assert_eq!(c.listen.to_string(), "127.0.0.1:1");
        assert_eq!(c.lifetimes.access_token, Duration::from_secs(60));
        assert_eq!(c.public_url.as_deref(), Some("https://a.example"));
    }

    #[test]
    fn bad_values_are_named() {
        let bad = ConfigLayer {
            listen: Some("nowhere".into()),
            ..ConfigLayer::default()
        };
        let err = Config::resolve(bad).expect_err("invalid");
        assert!(err.to_string().contains("listen"));
        assert!(toml::from_str::<ConfigLayer>("typo = 1").is_err());
    }
}
