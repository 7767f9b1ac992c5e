//! Configuration of an [`AuthenticatedClient`](crate::AuthenticatedClient): the client's wallet
//! address, its Ed25519 private key and the key's id, explicitly or from the environment
//! variables the Open Payments snippets use.

use ed25519_dalek::SigningKey;
use latchkey_proto::keys::load_signing_key;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

use crate::error::ClientError;

/// Environment variable holding the client's wallet address URL.
pub const ENV_WALLET_ADDRESS_URL: &str = "WALLET_ADDRESS_URL";
/// Environment variable holding the private key: a PEM file path, PEM text, or base64 of either
/// the PEM or the PKCS#8 DER.
pub const ENV_PRIVATE_KEY: &str = "PRIVATE_KEY";
/// Environment variable holding the key id (the `kid` published at `{wallet address}/jwks.json`).
pub const ENV_KEY_ID: &str = "KEY_ID";

/// Default time limit of one HTTP request, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the client's private key comes from.
#[derive(Clone)]
pub enum PrivateKey {
    /// A file holding PKCS#8 PEM (or base64 of it).
    Path(PathBuf),
    /// PKCS#8 PEM text, base64 of it, or base64 of the PKCS#8 DER (the Go snippets'
    /// `PRIVATE_KEY_BASE_64`).
    Text(String),
    /// A key already in memory.
    Key(SigningKey),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivateKey::Path(path) => f.debug_tuple("Path").field(path).finish(),
            PrivateKey::Text(_) => f.write_str("Text(<redacted>)"),
            PrivateKey::Key(_) => f.write_str("Key(<redacted>)"),
        }
    }
}

impl PrivateKey {
    /// Interprets a `PRIVATE_KEY`-style value: PEM text (it contains `-----BEGIN`), the path of
    /// an existing file, base64 key text, or else (when it looks like a file name) a path, so
    /// that loading reports the file that is missing.
    pub fn from_value(value: &str) -> PrivateKey {
        let trimmed = value.trim();
        if trimmed.contains("-----BEGIN") {
            return PrivateKey::Text(value.to_string());
        }
        let path = PathBuf::from(trimmed);
        if path.is_file() {
            return PrivateKey::Path(path);
        }
        if load_signing_key(trimmed).is_err() && looks_like_path(trimmed) {
            PrivateKey::Path(path)
        } else {
            PrivateKey::Text(value.to_string())
        }
    }

    /// Loads the Ed25519 key.
    pub fn load(&self) -> Result<SigningKey, ClientError> {
        match self {
            PrivateKey::Key(key) => Ok(key.clone()),
            PrivateKey::Text(text) => Ok(load_signing_key(text)?),
            PrivateKey::Path(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ClientError::KeyFile {
                        path: path.clone(),
                        source,
                    })?;
                Ok(load_signing_key(&text)?)
            }
        }
    }
}

/// Whether a value that is not a usable key was meant as a file name.
fn looks_like_path(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    value.starts_with(['.', '~', '/'])
        || value.contains(std::path::MAIN_SEPARATOR)
        || value.contains('\\')
        || [".pem", ".key", ".der", ".txt"]
            .iter()
            .any(|ext| lower.ends_with(ext))
}

/// Everything an [`AuthenticatedClient`](crate::AuthenticatedClient) needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The client's wallet address URL; its `/jwks.json` publishes the public key.
    pub wallet_address_url: String,
    /// The private key.
    pub private_key: PrivateKey,
    /// The key id (`kid`) of that key in the wallet address' key set.
    pub key_id: String,
    /// Time limit of one HTTP request, connection included.
    pub timeout: Duration,
}

impl ClientConfig {
    /// A configuration with the default timeout.
    pub fn new(
        wallet_address_url: impl Into<String>,
        private_key: PrivateKey,
        key_id: impl Into<String>,
    ) -> ClientConfig {
        ClientConfig {
            wallet_address_url: wallet_address_url.into(),
            private_key,
            key_id: key_id.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets the per-request time limit.
    pub fn with_timeout(mut self, timeout: Duration) -> ClientConfig {
        self.timeout = timeout;
        self
    }

    /// Reads `WALLET_ADDRESS_URL`, `PRIVATE_KEY` (a PEM file path or PEM text) and `KEY_ID`.
    /// The error names the variable that is missing or invalid.
    pub fn from_env() -> Result<ClientConfig, ClientError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`ClientConfig::from_env`], reading variables through `lookup`.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<ClientConfig, ClientError> {
        let get = |name: &str, hint: &str| -> Result<String, ClientError> {
            match lookup(name) {
                Some(v) if !v.trim().is_empty() => Ok(v),
                Some(_) => Err(ClientError::MissingEnv {
                    name: name.to_string(),
                    hint: Some(format!("it is empty; {hint}")),
                }),
                None => Err(ClientError::MissingEnv {
                    name: name.to_string(),
                    hint: Some(hint.to_string()),
                }),
            }
        };
        let wallet_address_url = get(
            ENV_WALLET_ADDRESS_URL,
            "the client's wallet address URL, e.g. https://wallet.example/alice",
        )?;
        check_http_url(wallet_address_url.trim()).map_err(|reason| ClientError::InvalidEnv {
            name: ENV_WALLET_ADDRESS_URL.into(),
            reason,
        })?;
        let key_value = get(
            ENV_PRIVATE_KEY,
            "the path of the client's Ed25519 private key (PKCS#8 PEM) or the PEM text itself",
        )?;
        let private_key = PrivateKey::from_value(&key_value);
        // Load now, so a bad key is reported against the variable that holds it.
        let key = private_key.load().map_err(|e| ClientError::InvalidEnv {
            name: ENV_PRIVATE_KEY.into(),
            reason: match e {
                ClientError::KeyFile { path, source } => {
                    format!("cannot read key file {}: {source}", path.display())
                }
                other => other.to_string(),
            },
        })?;
        let key_id = get(
            ENV_KEY_ID,
            "the id of the key in the wallet address' jwks.json",
        )?;
        Ok(ClientConfig::new(
            wallet_address_url.trim(),
            PrivateKey::Key(key),
            key_id.trim(),
        ))
    }
}

/// Checks that `text` is an absolute `http` or `https` URL with a host.
pub(crate) fn check_http_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("`{text}` is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "`{text}` has scheme `{}`; expected http or https",
            url.scheme()
        ));
    }
    let has_host = matches!(url.host_str(), Some(host) if !host.is_empty());
    if !has_host {
        return Err(format!("`{text}` has no host"));
    }
    Ok(url)
}

/// Parses a URL argument, naming `what` it is in the error.
pub(crate) fn parse_url(text: &str, what: &str) -> Result<Url, ClientError> {
    let mut url = check_http_url(text.trim()).map_err(|reason| ClientError::InvalidUrl {
        url: text.to_string(),
        reason: format!("{what}: {reason}"),
    })?;
    url.set_fragment(None);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_proto::keys::{generate_signing_key, signing_key_to_pkcs8_pem};
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn err(vars: &[(&str, &str)]) -> ClientError {
        ClientConfig::from_lookup(lookup(vars)).expect_err("should fail")
    }

    #[test]
    fn reads_pem_text_and_pem_path() {
        let key = generate_signing_key();
        let pem = signing_key_to_pkcs8_pem(&key);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("alice.pem");
        std::fs::write(&path, &pem).expect("write");
        for value in [pem.as_str(), path.to_str().expect("utf-8 path")] {
            let config = ClientConfig::from_lookup(lookup(&[
                ("WALLET_ADDRESS_URL", "http://127.0.0.1:1/wallet/alice"),
                ("PRIVATE_KEY", value),
                ("KEY_ID", "alice-1"),
            ]))
            .expect("config");
            assert_eq!(config.key_id, "alice-1");
            assert_eq!(
                config.private_key.load().expect("key").to_bytes(),
                key.to_bytes()
            );
        }
    }

    #[test]
    fn each_missing_variable_is_named() {
        let e = err(&[]);
        assert!(matches!(&e, ClientError::MissingEnv { name, .. } if name == "WALLET_ADDRESS_URL"));
        let e = err(&[("WALLET_ADDRESS_URL", "https://w.example/a")]);
        assert!(matches!(&e, ClientError::MissingEnv { name, .. } if name == "PRIVATE_KEY"));
        let pem = signing_key_to_pkcs8_pem(&generate_signing_key());
        let e = err(&[
            ("WALLET_ADDRESS_URL", "https://w.example/a"),
            ("PRIVATE_KEY", &pem),
            ("KEY_ID", "  "),
        ]);
        assert!(matches!(&e, ClientError::MissingEnv { name, .. } if name == "KEY_ID"));
        assert!(e.to_string().contains("empty"));
    }

    #[test]
    fn invalid_values_are_named() {
        let e = err(&[("WALLET_ADDRESS_URL", "wallet.example/alice")]);
        assert!(matches!(&e, ClientError::InvalidEnv { name, .. } if name == "WALLET_ADDRESS_URL"));
        let e = err(&[("WALLET_ADDRESS_URL", "ftp://wallet.example/alice")]);
        assert!(e.to_string().contains("scheme `ftp`"), "{e}");
        let e = err(&[
            ("WALLET_ADDRESS_URL", "https://w.example/a"),
            ("PRIVATE_KEY", "/no/such/dir/key.pem"),
        ]);
        assert!(matches!(&e, ClientError::InvalidEnv { name, .. } if name == "PRIVATE_KEY"));
        assert!(e.to_string().contains("/no/such/dir/key.pem"), "{e}");
        let e = err(&[
            ("WALLET_ADDRESS_URL", "https://w.example/a"),
            (
                "PRIVATE_KEY",
                "-----BEGIN PRIVATE KEY-----\nnonsense\n-----END PRIVATE KEY-----",
            ),
        ]);
        assert!(matches!(&e, ClientError::InvalidEnv { name, .. } if name == "PRIVATE_KEY"));
        let e = err(&[
            ("WALLET_ADDRESS_URL", "https://w.example/a"),
            ("PRIVATE_KEY", "not-a-key"),
        ]);
        assert!(matches!(&e, ClientError::InvalidEnv { name, .. } if name == "PRIVATE_KEY"));
    }

    #[test]
    fn private_key_debug_redacts() {
        let text = format!("{:?}", PrivateKey::Text("-----BEGIN SECRET".into()));
        assert!(!text.contains("SECRET"));
        let key = format!("{:?}", PrivateKey::Key(generate_signing_key()));
        assert_eq!(key, "Key(<redacted>)");
    }

    #[test]
    fn url_checks() {
        assert!(parse_url("http://127.0.0.1:8080", "auth server").is_ok());
        let e = parse_url("127.0.0.1:8080", "auth server").expect_err("no scheme");
        assert!(e.to_string().contains("auth server"), "{e}");
        assert!(parse_url("mailto:a@b", "x").is_err());
        let u = parse_url("https://a.example/x#frag", "x").expect("ok");
        assert_eq!(u.as_str(), "https://a.example/x");
    }
}
